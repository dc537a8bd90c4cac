package chat

import (
	"slices"
	"time"
)

// newConversation returns a new open conversation of customer, before its first entry.
func newConversation(id, tenantID string, customer Participant, subject string, shopCtx *ShopContext, now time.Time) *Conversation {
	return &Conversation{
		Header: Header{ID: id, TenantID: tenantID, Subject: subject, Customer: customer, Context: shopCtx, CreatedAt: now},
		State:  State{Status: StatusOpen, UpdatedAt: now},
	}
}

// conversationAt returns the conversation of header h in state st, without its latest messages.
func conversationAt(h Header, st State) *Conversation {
	return &Conversation{Header: h, State: st.clone()}
}

// clone returns a copy of c whose slices and pointers can be changed without touching c.
func (c *Conversation) clone() *Conversation {
	n := *c
	n.Header = c.Header.clone()
	n.State = c.State.clone()
	n.Latest = slices.Clone(c.Latest)
	return &n
}

// clone returns a copy of h sharing nothing with it.
func (h Header) clone() Header {
	h.Context = clonePtr(h.Context)
	return h
}

// clone returns a copy of st sharing nothing with it.
func (st State) clone() State {
	st.Admins = slices.Clone(st.Admins)
	st.FirstReplyAt = clonePtr(st.FirstReplyAt)
	st.AwayNoticeAt = clonePtr(st.AwayNoticeAt)
	return st
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// touch moves UpdatedAt to now, never backwards (a replica with a slow clock must not move a
// conversation down the list: keyset paging relies on UpdatedAt only growing).
func (c *Conversation) touch(now time.Time) {
	if now.After(c.UpdatedAt) {
		c.UpdatedAt = now
	}
}

// addMessage adds the message id by sender at seq to c: it becomes the newest of Latest and
// moves the counters, read marks, participants, status and first-reply time along. Its time is
// now, or the conversation's last change if a replica's clock is behind, so the history stays
// in order.
func (c *Conversation) addMessage(id string, seq int64, sender Participant, body string, now time.Time) Message {
	c.touch(now)
	now = c.UpdatedAt
	switch sender.Role {
	case RoleCustomer:
		c.CustomerCount++
		c.CustomerRead = c.AdminCount // writing means having seen the conversation
		if c.Status == StatusResolved {
			c.Status = StatusOpen
		}
	case RoleAdmin:
		c.AdminCount++
		c.TeamRead = c.CustomerCount
		if !slices.ContainsFunc(c.Admins, func(p Participant) bool { return p.ID == sender.ID }) {
			c.Admins = append(c.Admins, sender)
		}
		if c.FirstReplyAt == nil {
			at := now
			c.FirstReplyAt = &at
			c.FirstReplySeconds = int64(now.Sub(c.CreatedAt) / time.Second)
		}
	}
	m := Message{
		ID:             id,
		ConversationID: c.ID,
		Seq:            seq,
		Sender:         sender,
		Body:           body,
		CreatedAt:      now,
		CustomerN:      c.CustomerCount,
		AdminN:         c.AdminCount,
	}
	c.Latest = append(c.Latest, m)
	if len(c.Latest) > MaxLatest {
		c.Latest = slices.Clone(c.Latest[len(c.Latest)-MaxLatest:])
	}
	return m
}

// markRead moves the caller's side's read mark to m. Read marks never move backwards; it reports
// whether anything changed.
func (c *Conversation) markRead(caller Caller, m Message) bool {
	if caller.IsAdmin() {
		if m.CustomerN <= c.TeamRead {
			return false
		}
		c.TeamRead = m.CustomerN
		return true
	}
	if m.AdminN <= c.CustomerRead {
		return false
	}
	c.CustomerRead = m.AdminN
	return true
}

// newest returns the newest message of c, if it has any.
func (c *Conversation) newest() (Message, bool) {
	if len(c.Latest) == 0 {
		return Message{}, false
	}
	return c.Latest[len(c.Latest)-1], true
}

// latestMessage returns the message with id if c's latest messages hold it.
func (c *Conversation) latestMessage(id string) (Message, bool) {
	for _, m := range c.Latest {
		if m.ID == id {
			return m, true
		}
	}
	return Message{}, false
}
