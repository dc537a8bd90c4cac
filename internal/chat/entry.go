package chat

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
)

// Every write to a conversation appends entries to its log, one per change; the log protocol
// (internal/convlog) commits them and keeps the views lists read. This file holds what an
// entry is and which changes a write can make: the domain side of the log.

// EntryKind says what an entry of a conversation's log records.
type EntryKind string

// The kinds of entries.
const (
	// EntryMessage adds a message: the customer's, an admin's, or the away notice. The first
	// entry of a conversation is its first message and carries its Header.
	EntryMessage EntryKind = "message"
	// EntryRead moves a read mark.
	EntryRead EntryKind = "read"
	// EntryUpdate changes the status or the assignee.
	EntryUpdate EntryKind = "update"
	// EntryErased seals a conversation that is being erased (internal/datarights): it is the
	// last entry its log will ever have, so a write racing the erasure loses its race for the
	// Seq, reads the seal and answers not found instead of adding to a log being deleted. It
	// carries no customer data.
	EntryErased EntryKind = "erased"
)

// SealID is the id of a seal entry: one per conversation.
const SealID = "erased"

// Seal returns the entry that seals conversation c, at the log's end c.Seq (see EntryErased).
func Seal(c *Conversation, at time.Time) Entry {
	seq := c.Seq + 1
	return Entry{ID: SealID, TenantID: c.TenantID, ConversationID: c.ID, Seq: seq, Kind: EntryErased, At: at,
		By: Participant{ID: "system", Role: RoleSystem}, State: State{Seq: seq, UpdatedAt: at}}
}

// Entry is one committed change of a conversation: the unit of its log. Entries are never
// changed once stored, except that Pending is cleared once their events are published.
type Entry struct {
	// ID is unique within its conversation: the id of the change it records (a message entry
	// has its message's id).
	ID             string
	TenantID       string
	ConversationID string
	// CustomerID is the conversation's customer.
	CustomerID string
	// Seq numbers the entries of a conversation from 1; no two entries share one.
	Seq  int64
	Kind EntryKind
	At   time.Time
	// By is who made the change.
	By Participant
	// Header is set on the first entry only.
	Header *Header
	// Message is the message a message entry adds.
	Message *Message
	// State is the conversation's state after this entry (State.Seq == Seq).
	State State
	// Pending asks the store, on an entry given to Append, to mark it pending until its
	// events are published (the log appends every entry so); the entries Pending returns
	// carry it. Entries read otherwise need not say (see internal/convlog).
	Pending bool
}

// Committed is what one write committed: the conversation right after the write's last
// entry, and the write's entries in log order, whether this attempt appended them or an
// earlier attempt of the same write (a retry with the same Idempotency-Key, or a racing twin)
// had. Both are functions of the log alone, so every attempt of one write sees the same.
type Committed struct {
	// Conversation is the conversation after the write's last entry (or as it was, when the
	// write had nothing to do), with its latest messages up to that entry.
	Conversation *Conversation
	Entries      []Entry
}

// Message returns the message with id among the write's entries.
func (c *Committed) Message(id string) (*Message, bool) {
	for _, e := range c.Entries {
		if e.ID == id && e.Message != nil {
			m := *e.Message
			return &m, true
		}
	}
	return nil, false
}

// Change is one effect of a write on a conversation, recorded as one entry. Its id is fixed
// before the first attempt, so an attempt can recognise the entry an earlier attempt of the
// same write (a retry with the same Idempotency-Key, or a racing twin) stored.
type Change struct {
	id   string
	kind EntryKind
	by   Participant
	// body is the text of a message change.
	body string
	// apply moves c to the state after the change at seq, returning the message it adds; it
	// returns false, changing nothing, when the change has nothing left to do.
	apply func(c *Conversation, seq int64, now time.Time) (*Message, bool)
}

// ID returns the id the change's entry gets.
func (ch Change) ID() string { return ch.id }

// Same reports whether the stored entry e, which has the change's id, records this change: a
// message of the same sender and body, or another entry of the same kind by the same caller.
// Away notices are the same whatever their text (the prompt may have been edited meanwhile).
func (ch Change) Same(e *Entry) bool {
	if e.Kind != ch.kind || e.By.ID != ch.by.ID || e.By.Role != ch.by.Role {
		return false
	}
	if ch.kind == EntryMessage && ch.by.Role != RoleSystem {
		return e.Message != nil && e.Message.Body == ch.body
	}
	return true
}

// Record applies ch to c and returns the entry recording it, or false when ch changes nothing
// (c is then unchanged).
func (c *Conversation) Record(ch Change, now time.Time) (Entry, bool) {
	seq := c.Seq + 1
	msg, ok := ch.apply(c, seq, now)
	if !ok {
		return Entry{}, false
	}
	c.Seq = seq
	e := Entry{
		ID:             ch.id,
		TenantID:       c.TenantID,
		ConversationID: c.ID,
		CustomerID:     c.Customer.ID,
		Seq:            seq,
		Kind:           ch.kind,
		At:             now,
		By:             ch.by,
		Message:        msg,
		State:          c.State.clone(),
	}
	if seq == 1 {
		h := c.Header.clone()
		e.Header = &h
	}
	return e, true
}

// messageChange adds a message by sender.
func messageChange(id string, sender Participant, body string) Change {
	return Change{id: id, kind: EntryMessage, by: sender, body: body,
		apply: func(c *Conversation, seq int64, now time.Time) (*Message, bool) {
			m := c.addMessage(id, seq, sender, body, now)
			return &m, true
		}}
}

// awayNoticeChange posts the away prompt as a system message, unless the conversation had one
// since period began (the last time support was online).
func awayNoticeChange(id string, system Participant, prompt string, period time.Time) Change {
	return Change{id: id, kind: EntryMessage, by: system, body: prompt,
		apply: func(c *Conversation, seq int64, now time.Time) (*Message, bool) {
			if c.AwayNoticeAt != nil && !c.AwayNoticeAt.Before(period) {
				return nil, false
			}
			m := c.addMessage(id, seq, system, prompt, now)
			at := m.CreatedAt
			c.AwayNoticeAt = &at
			return &m, true
		}}
}

// readChange moves the read mark of reader's side up to m, or up to the newest message of the
// conversation as it stands when the change is recorded when m is nil.
func readChange(id string, reader Caller, m *Message) Change {
	return Change{id: id, kind: EntryRead, by: reader.participant(),
		apply: func(c *Conversation, _ int64, _ time.Time) (*Message, bool) {
			target, ok := c.newest()
			if m != nil {
				target, ok = *m, true
			}
			return nil, ok && c.markRead(reader, target)
		}}
}

// updateChange applies mutate, touching UpdatedAt when mutate reports that it changed the
// conversation.
func updateChange(id string, by Participant, mutate func(c *Conversation) bool) Change {
	return Change{id: id, kind: EntryUpdate, by: by,
		apply: func(c *Conversation, _ int64, now time.Time) (*Message, bool) {
			if !mutate(c) {
				return nil, false
			}
			c.touch(now)
			return nil, true
		}}
}

// systemParticipant is the service itself, named for the tenant where it speaks to customers.
func systemParticipant(name string) Participant {
	return Participant{ID: string(RoleSystem), Role: RoleSystem, Name: name}
}

// awayNoticeID returns the id of the away notice of conversation convID in the away period that
// began at period: the same on every replica, so the conversation's log takes one notice per
// period however many customer messages race for it.
func awayNoticeID(tenantID, convID string, period time.Time) string {
	sum := sha256.Sum256([]byte(tenantID + "\x00" + convID + "\x00away\x00" + strconv.FormatInt(period.UnixMilli(), 10)))
	return hex.EncodeToString(sum[:12])
}

// FromLog returns the conversation after entries, the whole log of a conversation from its
// first entry (which carries the header) or its tail after a known state. It returns false when
// entries do not start the conversation.
func FromLog(entries []Entry) (*Conversation, bool) {
	if len(entries) == 0 || entries[0].Seq != 1 || entries[0].Header == nil {
		return nil, false
	}
	return (&Conversation{Header: entries[0].Header.clone()}).FollowedBy(entries), true
}

// FollowedBy returns the conversation after entries, the entries that follow c.Seq in its log
// (none: c itself): the last one's state, with the messages of all of them added to Latest.
func (c *Conversation) FollowedBy(entries []Entry) *Conversation {
	if len(entries) == 0 {
		return c
	}
	last := entries[len(entries)-1]
	n := conversationAt(c.Header, last.State)
	n.Erased = c.Erased || last.Kind == EntryErased
	n.Latest = slices.Clone(c.Latest)
	for _, e := range entries {
		if e.Message != nil {
			n.Latest = append(n.Latest, *e.Message)
		}
	}
	if len(n.Latest) > MaxLatest {
		n.Latest = slices.Clone(n.Latest[len(n.Latest)-MaxLatest:])
	}
	return n
}

// At returns the conversation as it stood right after its entry e: e's state, with the
// latest messages of c up to e. c must be at e or after it.
func (c *Conversation) At(e Entry) *Conversation {
	n := conversationAt(c.Header, e.State)
	for _, m := range c.Latest {
		if m.Seq <= e.Seq {
			n.Latest = append(n.Latest, m)
		}
	}
	return n
}

// Clone returns a copy of c whose slices and pointers can be changed without touching c.
func (c *Conversation) Clone() *Conversation { return c.clone() }

// EventsOf returns the events entry e publishes, rendered from c, the conversation at e or
// after it whose Latest holds e's newest message (see At): its first entry announces the
// conversation and its first message, a message entry the message, and a read mark or an
// update the conversation as it stands after it. Each event's ID names e and the event's
// type, so every publication of one entry's events carries the same ids.
func EventsOf(c *Conversation, e Entry) []Event {
	at := c.At(e)
	event := func(t EventType) Event {
		return Event{ID: EventID(e, t), Type: t, TenantID: e.TenantID, ConversationID: e.ConversationID,
			CustomerID: e.CustomerID, At: e.At, Seq: e.Seq, Conversation: at}
	}
	var out []Event
	switch {
	case e.Kind == EntryMessage && e.Message != nil:
		if e.Seq == 1 {
			out = append(out, event(EventConversationCreated))
		}
		m := event(EventMessageCreated)
		msg := *e.Message
		m.Message = &msg
		out = append(out, m)
	case e.Kind == EntryRead || e.Kind == EntryUpdate:
		out = append(out, event(EventConversationUpdated))
	}
	return out
}

// EventID returns the id of the event of type t that entry e publishes: its tenant,
// conversation and place in the log, and the type.
func EventID(e Entry, t EventType) string {
	return e.TenantID + ":" + e.ConversationID + ":" + strconv.FormatInt(e.Seq, 10) + "/" + string(t)
}
