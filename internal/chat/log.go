package chat

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// The write path. Every write to a conversation appends entries to the conversation's log; the
// insert of an entry, made unique by (tenant, conversation, Seq), is the commit point. The
// conversation document the lists read is a view of the log, kept up to date after each commit
// and repaired by readers when a writer died before it could. docs/CONSISTENCY.md explains why
// this holds on MongoDB and on FerretDB.

// Bounds of the write path.
const (
	// maxCommitAttempts bounds how often one write retries on the next sequence number while
	// other writers take the one it tried.
	maxCommitAttempts = 32
	// maxProjectRounds bounds how often one write brings the view up to the log after its own
	// projection; readers repair what is left.
	maxProjectRounds = 4
	// maxWriteDuration bounds one write, from its first insert to its last projection.
	maxWriteDuration = 30 * time.Second
	// staleMarkAge is how old an entry still marked unprojected must be before a reader clears
	// its mark: far beyond maxWriteDuration, so its writer is surely gone and none of its writes
	// can land any more.
	staleMarkAge = 5 * time.Minute
	// maxRepairsPerRead bounds how many conversations one list repairs before answering.
	maxRepairsPerRead = 10
)

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
	// EntryRepair changes nothing: a reader appended it to bring the conversation's view up to
	// date after a writer died before doing so.
	EntryRepair EntryKind = "repair"
)

// Entry is one committed change of a conversation: the unit of its log. Entries are never
// changed once stored.
type Entry struct {
	// ID is unique among all entries; a message entry has its message's id.
	ID             string
	TenantID       string
	ConversationID string
	// CustomerID is the conversation's customer, so a customer's unprojected entries can be found.
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
}

// change is one effect of a write on a conversation, recorded as one entry. Its id is fixed
// before the first attempt, so an attempt can recognise the entry an earlier attempt of the
// same write (a retry with the same Idempotency-Key, or a racing twin) stored.
type change struct {
	id   string
	kind EntryKind
	by   Participant
	// body is the text of a message change.
	body string
	// apply moves c to the state after the change at seq, returning the message it adds; it
	// returns false, changing nothing, when the change has nothing left to do.
	apply func(c *Conversation, seq int64, now time.Time) (*Message, bool)
}

// same reports whether the stored entry e, which has the change's id, records this change: a
// message of the same sender and body, or another entry of the same kind by the same caller.
// Away notices are the same whatever their text (the prompt may have been edited meanwhile).
func (ch change) same(e *Entry) bool {
	if e.Kind != ch.kind || e.By.ID != ch.by.ID || e.By.Role != ch.by.Role {
		return false
	}
	if ch.kind == EntryMessage && ch.by.Role != RoleSystem {
		return e.Message != nil && e.Message.Body == ch.body
	}
	return true
}

// record applies ch to c and returns the entry recording it, or false when ch changes nothing.
func (c *Conversation) record(ch change, now time.Time) (Entry, bool) {
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
func messageChange(id string, sender Participant, body string) change {
	return change{id: id, kind: EntryMessage, by: sender, body: body,
		apply: func(c *Conversation, seq int64, now time.Time) (*Message, bool) {
			m := c.addMessage(id, seq, sender, body, now)
			return &m, true
		}}
}

// awayNoticeChange posts the away prompt as a system message, unless the conversation had one
// since period began (the last time support was online).
func awayNoticeChange(id string, system Participant, prompt string, period time.Time) change {
	return change{id: id, kind: EntryMessage, by: system, body: prompt,
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

// readChange moves the read mark of reader's side up to m.
func readChange(id string, reader Caller, m Message) change {
	return change{id: id, kind: EntryRead, by: reader.participant(),
		apply: func(c *Conversation, _ int64, _ time.Time) (*Message, bool) {
			return nil, c.markRead(reader, m)
		}}
}

// updateChange applies edit, touching UpdatedAt when it changes something.
func updateChange(id string, by Participant, edit func(c *Conversation) bool) change {
	return change{id: id, kind: EntryUpdate, by: by,
		apply: func(c *Conversation, _ int64, now time.Time) (*Message, bool) {
			if !edit(c) {
				return nil, false
			}
			c.touch(now)
			return nil, true
		}}
}

// repairChange changes nothing; see EntryRepair.
func repairChange(id string) change {
	return change{id: id, kind: EntryRepair, by: systemParticipant(""),
		apply: func(*Conversation, int64, time.Time) (*Message, bool) { return nil, true }}
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

// committed is the outcome of a write: the conversation after it and the entries of the write
// now in the log.
type committed struct {
	conv *Conversation
	// appended are the entries this call stored; found those an earlier attempt of the same
	// write had stored.
	appended []Entry
	found    []Entry
}

// entries returns the entries of the write, in log order.
func (r *committed) entries() []Entry {
	all := append(slices.Clone(r.found), r.appended...)
	slices.SortFunc(all, func(a, b Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return all
}

// message returns the message with id among the write's entries.
func (r *committed) message(id string) (*Message, bool) {
	for _, e := range r.entries() {
		if e.ID == id && e.Message != nil {
			m := *e.Message
			return &m, true
		}
	}
	return nil, false
}

// commit makes the changes of one write to conversation c, in order: it appends them to the
// log (see appendChanges), which commits them, then brings the conversation's view up to date
// (see project). c is exactly the state after its entry c.Seq; exact says whether c.Latest holds
// its latest messages too (a stored view does).
//
// Once the write's first change is committed, the write succeeds: a later change (the away
// notice after a message) that cannot be committed is logged and left out, since failing the
// request would invite the client to send the message again. Bringing the view up to date
// cannot undo a commit either; its failures are logged and left to readers (see repair).
//
// Returns Conflict when the conversation stays too busy, KeyReused when an entry's id holds
// another change, and the store's errors, all with nothing committed.
func (s *Service) commit(ctx context.Context, c *Conversation, exact bool, changes []change) (*committed, error) {
	ctx, cancel := context.WithTimeout(ctx, maxWriteDuration)
	defer cancel()
	res, exact, err := s.appendChanges(ctx, c, exact, changes)
	if err != nil {
		done := res.entries()
		if len(done) == 0 {
			return nil, err
		}
		s.log.WarnContext(ctx, "a write is committed without its later changes",
			"tenant", c.TenantID, "conversation", c.ID, "error", err)
		res.conv, exact = conversationAt(res.conv.Header, done[len(done)-1].State), false
	}
	switch {
	case len(res.appended) > 0:
		ids := make([]string, len(res.appended))
		for i, e := range res.appended {
			ids[i] = e.ID
		}
		if err := s.project(ctx, res.conv, exact, ids); err != nil {
			s.log.WarnContext(ctx, "conversation view not updated after a commit; the next reader repairs it",
				"tenant", c.TenantID, "conversation", c.ID, "error", err)
		}
	case len(res.found) > 0:
		// An earlier attempt committed this write and may have died before updating the view.
		if _, err := s.repair(ctx, c.TenantID, c.ID, nil); err != nil {
			s.log.WarnContext(ctx, "conversation view not repaired after a retried write", "tenant", c.TenantID, "conversation", c.ID, "error", err)
		}
	}
	return res, nil
}

// appendChanges appends the changes to conversation c's log. Each attempt records the changes
// that still have something to do as entries after the newest state it knows and appends them;
// when another writer took a sequence number first, it reads the log's last entry and tries
// again after it. An entry refused because its id is stored already is this write's own,
// stored by an earlier attempt (a retry or a racing twin): it counts as done, so nothing is
// stored twice. It returns what it committed, with res.conv the state after it and whether
// res.conv.Latest is exact; on error, res holds what was committed before the error.
func (s *Service) appendChanges(ctx context.Context, c *Conversation, exact bool, changes []change) (*committed, bool, error) {
	res := &committed{conv: c}
	header := c.Header
	pending := changes
	for attempt := 0; ; attempt++ {
		if attempt == maxCommitAttempts {
			return res, exact, Errorf(Conflict, "the conversation is too busy right now; retry the request")
		}
		next := res.conv.clone()
		now := s.clock()
		var entries []Entry
		live := pending[:0:0]
		for _, ch := range pending {
			if e, ok := next.record(ch, now); ok {
				entries = append(entries, e)
				live = append(live, ch)
			}
		}
		pending = live
		if len(entries) == 0 {
			return res, exact, nil
		}
		n, err := s.store.Append(ctx, entries)
		res.appended = append(res.appended, entries[:n]...)
		pending = pending[n:]
		if err == nil {
			res.conv = next
			return res, exact, nil
		}
		if !errors.Is(err, ErrConflict) {
			return res, exact, err
		}
		stored, err := s.store.Entry(ctx, c.TenantID, c.ID, entries[n].ID)
		switch {
		case err == nil:
			if !pending[0].same(stored) {
				return res, exact, Errorf(KeyReused, "this Idempotency-Key belongs to another request, which was stored; use a new key")
			}
			if stored.Header != nil {
				header = *stored.Header // a retried start: the conversation is the first attempt's
			}
			res.found = append(res.found, *stored)
			pending = pending[1:]
		case !isNotFound(err):
			return res, exact, err
		}
		last, err := s.store.LastEntry(ctx, c.TenantID, c.ID)
		if err != nil {
			return res, exact, err
		}
		res.conv, exact = conversationAt(header, last.State), false
		if len(pending) > 0 {
			backoff(ctx, attempt)
		}
	}
}

// backoff waits a little, more after more failed attempts, with jitter so racing writers spread out.
func backoff(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// project makes the stored view of conversation c show at least c, the state after the entries
// ids this write appended, and then clears their unprojected marks. With exact false, c's latest
// messages are read from the log first.
//
// On MongoDB the conditional replace alone keeps the view moving forward. A server whose
// updates are not atomic (FerretDB) may let a slower writer's older view land after a newer
// one. So each writer checks after its replace: if the log has entries beyond what it wrote
// and the stored view is still its own, its write may have buried a newer view whose writer
// has already checked and left, and it brings the view up to the log's last entry itself. (A
// stored view newer than its own is someone else's to finish; an older one is the older
// writer's to fix, since that writer checks after its own write too.) The marks stay until the
// check passes: a writer that dies before it leaves them for readers to find.
func (s *Service) project(ctx context.Context, c *Conversation, exact bool, ids []string) error {
	view := c
	for round := 0; round < maxProjectRounds; round++ {
		if !exact {
			latest, err := s.store.Messages(ctx, view.TenantID, view.ID, view.Seq+1, MaxLatest)
			if err != nil {
				return err
			}
			slices.Reverse(latest)
			view.Latest = latest
		}
		if err := s.store.Project(ctx, view); err != nil {
			return err
		}
		last, err := s.store.LastEntry(ctx, view.TenantID, view.ID)
		if err != nil {
			return err
		}
		if last.Seq > view.Seq {
			stored, err := s.store.Conversation(ctx, view.TenantID, view.ID)
			if err != nil {
				return err
			}
			if stored.Seq == view.Seq {
				view, exact = conversationAt(view.Header, last.State), false
				continue
			}
		}
		return s.store.MarkProjected(ctx, view.TenantID, view.ID, ids)
	}
	return errors.New("the log kept growing while the view was brought up to date")
}

// repair brings the view of conversation convID up to its log if a writer died between
// committing and updating the view, or is still on its way: it appends a repair entry and
// projects it as a writer would, so a reader that dies meanwhile leaves a mark as well. marked
// are entries of the conversation found marked unprojected; those older than staleMarkAge and
// covered by the view are cleared. It reports whether it appended.
func (s *Service) repair(ctx context.Context, tenantID, convID string, marked []Entry) (bool, error) {
	last, err := s.store.LastEntry(ctx, tenantID, convID)
	if err != nil {
		return false, err
	}
	view, err := s.store.Conversation(ctx, tenantID, convID)
	if err != nil && !isNotFound(err) {
		return false, err
	}
	repaired := false
	if view == nil || view.Seq < last.Seq {
		var header Header
		if view != nil {
			header = view.Header
		} else {
			first, err := s.store.FirstEntry(ctx, tenantID, convID)
			if err != nil {
				return false, err
			}
			if first.Header == nil {
				return false, errors.New("the conversation's first entry has no header")
			}
			header = *first.Header
		}
		res, err := s.commit(ctx, conversationAt(header, last.State), false, []change{repairChange(s.newID())})
		if err != nil {
			return false, err
		}
		if len(res.appended) == 0 {
			return false, nil
		}
		repaired = true
		if view, err = s.store.Conversation(ctx, tenantID, convID); err != nil {
			return repaired, err
		}
	}
	var stale []string
	for _, e := range marked {
		if e.Seq <= view.Seq && s.clock().Sub(e.At) > staleMarkAge {
			stale = append(stale, e.ID)
		}
	}
	if len(stale) > 0 {
		return repaired, s.store.MarkProjected(ctx, tenantID, convID, stale)
	}
	return repaired, nil
}

// catchUp repairs the views of the conversations in a list's scope (a customer's, or with
// customerID "" the whole tenant's) that have entries still marked unprojected, so the list
// that follows agrees with the history. Failures are logged: the list is then as fresh as the
// views are.
func (s *Service) catchUp(ctx context.Context, tenantID, customerID string) {
	marked, err := s.store.Unprojected(ctx, tenantID, customerID, 10*maxRepairsPerRead)
	if err != nil {
		s.log.WarnContext(ctx, "unprojected entries not checked", "tenant", tenantID, "error", err)
		return
	}
	byConv := map[string][]Entry{}
	var order []string
	for _, e := range marked {
		if _, ok := byConv[e.ConversationID]; !ok {
			order = append(order, e.ConversationID)
		}
		byConv[e.ConversationID] = append(byConv[e.ConversationID], e)
	}
	for i, convID := range order {
		if i == maxRepairsPerRead {
			break
		}
		if _, err := s.repair(ctx, tenantID, convID, byConv[convID]); err != nil {
			s.log.WarnContext(ctx, "conversation view not repaired", "tenant", tenantID, "conversation", convID, "error", err)
		}
	}
}
