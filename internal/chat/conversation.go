package chat

import (
	"slices"
	"time"
)

// newConversation returns a new open conversation of customer, without messages.
func newConversation(id, tenantID string, customer Participant, subject string, cctx *Context, now time.Time) *Conversation {
	return &Conversation{
		ID:           id,
		TenantID:     tenantID,
		Status:       StatusOpen,
		Subject:      subject,
		Customer:     customer,
		Participants: []Participant{customer},
		Context:      cctx,
		CreatedAt:    now,
		UpdatedAt:    now,
		Version:      1,
	}
}

// clone returns a copy of c whose slices can be changed without touching c.
func (c *Conversation) clone() *Conversation {
	n := *c
	n.Participants = slices.Clone(c.Participants)
	n.Latest = slices.Clone(c.Latest)
	n.Pending = slices.Clone(c.Pending)
	if c.Context != nil {
		cc := *c.Context
		n.Context = &cc
	}
	return &n
}

// touch moves UpdatedAt to now, never backwards (a replica with a slow clock must not move a
// conversation down the list: keyset paging relies on UpdatedAt only growing).
func (c *Conversation) touch(now time.Time) {
	if now.After(c.UpdatedAt) {
		c.UpdatedAt = now
	}
}

// addMessage appends a message by sender to c: it becomes pending, the newest of Latest, and
// moves the counters, read marks, participants, status and first-reply time along.
func (c *Conversation) addMessage(id string, sender Participant, body string, now time.Time) Message {
	if n := len(c.Latest); n > 0 && c.Latest[n-1].CreatedAt.After(now) {
		now = c.Latest[n-1].CreatedAt // keep message times in order when clocks disagree
	}
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
		if !slices.ContainsFunc(c.Participants, func(p Participant) bool { return p.ID == sender.ID && p.Role == RoleAdmin }) {
			c.Participants = append(c.Participants, sender)
		}
		if c.FirstReplyAt == nil {
			at := now
			c.FirstReplyAt = &at
			c.FirstReplySeconds = int64(now.Sub(c.CreatedAt) / time.Second)
		}
	}
	c.LastSeq++
	m := Message{
		ID:             id,
		ConversationID: c.ID,
		Seq:            c.LastSeq,
		Sender:         sender,
		Body:           body,
		CreatedAt:      now,
		CustomerN:      c.CustomerCount,
		AdminN:         c.AdminCount,
	}
	c.Pending = append(c.Pending, m)
	c.Latest = append(c.Latest, m)
	if len(c.Latest) > MaxLatest {
		c.Latest = slices.Clone(c.Latest[len(c.Latest)-MaxLatest:])
	}
	c.touch(now)
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

// pendingMessage returns the pending or latest message with id, if c still holds it.
func (c *Conversation) heldMessage(id string) (Message, bool) {
	for _, list := range [][]Message{c.Pending, c.Latest} {
		for _, m := range list {
			if m.ID == id {
				return m, true
			}
		}
	}
	return Message{}, false
}
