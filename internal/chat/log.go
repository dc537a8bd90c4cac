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
	// staleMarkAge is how old a write's mark must be before a reader deletes it: far beyond
	// maxWriteDuration, so its writer is surely gone and none of its writes can land any more.
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
}

// WriteMark says that a write to a conversation is in progress: it is stored before the write's
// first entry and deleted once the conversation's view is checked to show the write. A mark
// that outlives its write (the writer died) tells readers to repair the view. A writer that
// met another writer's mark at its check leaves its own mark Done instead of deleting it, so
// that other writer, if it is older, learns that a newer one came and went (see project).
type WriteMark struct {
	ID             string
	TenantID       string
	ConversationID string
	CustomerID     string
	At             time.Time
	Done           bool
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
	// mark is the id of the write's mark, stored before its first append; unsure is set when
	// an append failed without saying whether it stored anything, so the mark must stay.
	mark   string
	unsure bool
	// marked is set once the write stored its mark, after telling the caches of the change.
	marked bool
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
	res, err := s.appendChanges(ctx, c, changes)
	if res.marked {
		defer s.viewsChanged(ctx, c.TenantID, res.conv.Customer.ID)
	}
	if err != nil {
		done := res.entries()
		if len(done) == 0 {
			s.unmark(ctx, res)
			return nil, err
		}
		s.log.WarnContext(ctx, "a write is committed without its later changes",
			"tenant", c.TenantID, "conversation", c.ID, "error", err)
		res.conv, exact = conversationAt(res.conv.Header, done[len(done)-1].State), false
	}
	switch {
	case len(res.appended) > 0:
		if err := s.project(ctx, res.conv, exact, res.mark); err != nil {
			s.log.WarnContext(ctx, "conversation view not updated after a commit; the next reader repairs it",
				"tenant", c.TenantID, "conversation", c.ID, "error", err)
			return res, nil // the mark stays for readers
		}
		res.mark = ""
		return res, nil
	case len(res.found) > 0:
		// An earlier attempt committed this write and may have died before updating the view.
		if _, err := s.repair(ctx, c.TenantID, c.ID); err != nil {
			s.log.WarnContext(ctx, "conversation view not repaired after a retried write", "tenant", c.TenantID, "conversation", c.ID, "error", err)
		}
	}
	s.unmark(ctx, res)
	return res, nil
}

// unmark deletes the mark of a write that appended nothing (a write that appended leaves its
// mark to project). It keeps the mark when an append may have stored entries after all. A
// failure only leaves a mark for readers to check.
func (s *Service) unmark(ctx context.Context, res *committed) {
	if res.mark == "" || res.unsure {
		return
	}
	if err := s.store.Unmark(ctx, res.conv.TenantID, []string{res.mark}); err != nil {
		s.log.WarnContext(ctx, "write mark not deleted", "tenant", res.conv.TenantID, "conversation", res.conv.ID, "error", err)
		return
	}
	res.mark = ""
}

// appendChanges appends the changes to conversation c's log. Each attempt records the changes
// that still have something to do as entries after the newest state it knows and appends them;
// when another writer took a sequence number first, it reads the entries that followed and
// tries again after them. An entry refused because its id is stored already is this write's
// own, stored by an earlier attempt (a retry or a racing twin): it counts as done, so nothing
// is stored twice. It returns what it committed, with res.conv the state after it (its Latest
// as exact as c's); on error, res holds what was committed before the error.
func (s *Service) appendChanges(ctx context.Context, c *Conversation, changes []change) (*committed, error) {
	res := &committed{conv: c.clone()}
	pending := changes
	for attempt := 0; ; attempt++ {
		if attempt == maxCommitAttempts {
			return res, Errorf(Conflict, "the conversation is too busy right now; retry the request")
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
			return res, nil
		}
		if !res.marked {
			// Cached lists built from now on are not kept while the mark is in flight, and
			// those built before are invalidated; commit invalidates again once the view shows
			// the write (docs/CACHING.md).
			s.viewsChanged(ctx, c.TenantID, c.Customer.ID)
			m := WriteMark{ID: s.newID(), TenantID: c.TenantID, ConversationID: c.ID, CustomerID: c.Customer.ID, At: now}
			if err := s.store.Mark(ctx, m); err != nil {
				return res, err
			}
			res.mark, res.marked = m.ID, true
		}
		n, err := s.store.Append(ctx, entries)
		res.appended = append(res.appended, entries[:n]...)
		pending = pending[n:]
		if err == nil {
			res.conv = next
			return res, nil
		}
		if !errors.Is(err, ErrConflict) {
			res.unsure = true
			return res, err
		}
		// entries[n] was refused: another writer took its seq, or its id is stored already,
		// by an earlier attempt of this write. Read what follows the state this attempt knew.
		newer, err := s.store.EntriesAfter(ctx, c.TenantID, c.ID, res.conv.Seq)
		if err != nil {
			return res, err
		}
		stored, err := s.storedChange(ctx, c, entries[n], newer)
		if err != nil {
			return res, err
		}
		if stored != nil {
			if !pending[0].same(stored) {
				return res, Errorf(KeyReused, "this Idempotency-Key belongs to another request, which was stored; use a new key")
			}
			if stored.Header != nil {
				res.conv.Header = *stored.Header // a retried start: the conversation is the first attempt's
			}
			res.found = append(res.found, *stored)
			pending = pending[1:]
		}
		res.conv = res.conv.followedBy(newer)
		if len(pending) > 0 {
			backoff(ctx, attempt)
		}
	}
}

// storedChange returns the stored entry holding the id of the refused entry e, if it is
// stored: among newer (the entries after the state e was recorded on, which a racing twin may
// have appended), or, when nothing took e's sequence number, anywhere in the log (an earlier
// attempt that the state already covered). It returns nil when another writer took the
// sequence number and the id is not among newer.
func (s *Service) storedChange(ctx context.Context, c *Conversation, e Entry, newer []Entry) (*Entry, error) {
	for i := range newer {
		if newer[i].ID == e.ID {
			return &newer[i], nil
		}
	}
	if slices.ContainsFunc(newer, func(n Entry) bool { return n.Seq == e.Seq }) {
		return nil, nil
	}
	stored, err := s.store.Entry(ctx, c.TenantID, c.ID, e.ID)
	if isNotFound(err) {
		return nil, nil
	}
	return stored, err
}

// backoff waits a little, more after more failed attempts, with jitter so racing writers spread out.
func backoff(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5))) //nolint:gosec // jitter, not a secret
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// project makes the stored view of conversation c show at least c, the state after the entries
// this write appended, checks it, and then retires the write's mark. With exact false, c's
// latest messages are read from the log first.
//
// On MongoDB the conditional replace alone keeps the view moving forward. A server whose
// updates are not atomic (FerretDB) may let a slower writer's older view land after a newer
// one, burying it. The check: the writer reads the conversation's marks. A newer writer that
// could have been buried appended after this write's mark was stored and checked before this
// write's view landed, so it met this write's mark and left its own, Done; an older writer
// still in flight has its mark too. Without other marks, nothing can have been buried and no
// older writer needs to hear of this one: the mark goes. With other marks, the writer looks
// for entries beyond what it wrote: if there are some and the stored view is still its own,
// it brings the view up to the log's end itself (a newer stored view is someone else's to
// finish), then leaves its own mark Done for older writers, or deletes it and the other Done
// marks when none is in flight any more. A writer that dies before its check leaves its mark
// for readers to find.
func (s *Service) project(ctx context.Context, c *Conversation, exact bool, mark string) error {
	view := c
	if !exact {
		latest, err := s.store.Messages(ctx, view.TenantID, view.ID, view.Seq+1, MaxLatest)
		if err != nil {
			return err
		}
		slices.Reverse(latest)
		view.Latest = latest
	}
	for range maxProjectRounds {
		if err := s.store.Project(ctx, view); err != nil {
			return err
		}
		marks, err := s.store.ConversationMarks(ctx, view.TenantID, view.ID)
		if err != nil {
			return err
		}
		others := slices.DeleteFunc(marks, func(m WriteMark) bool { return m.ID == mark })
		if len(others) == 0 {
			return s.store.Unmark(ctx, view.TenantID, []string{mark})
		}
		newer, err := s.store.EntriesAfter(ctx, view.TenantID, view.ID, view.Seq)
		if err != nil {
			return err
		}
		if len(newer) > 0 {
			stored, err := s.store.Conversation(ctx, view.TenantID, view.ID)
			if err != nil {
				return err
			}
			if stored.Seq == view.Seq {
				view = view.followedBy(newer)
				continue
			}
		}
		if slices.ContainsFunc(others, func(m WriteMark) bool { return !m.Done }) {
			return s.store.FinishMark(ctx, view.TenantID, mark)
		}
		ids := []string{mark}
		for _, m := range others {
			ids = append(ids, m.ID)
		}
		return s.store.Unmark(ctx, view.TenantID, ids)
	}
	return errors.New("the log kept growing while the view was brought up to date")
}

// repairLocked is repair under the replica's lock of the conversation.
func (s *Service) repairLocked(ctx context.Context, tenantID, convID string) (bool, error) {
	unlock, err := s.lockConversation(ctx, tenantID, convID)
	if err != nil {
		return false, err
	}
	defer unlock()
	return s.repair(ctx, tenantID, convID)
}

// repair brings the view of conversation convID up to its log if a writer died between
// committing and updating the view, or is still on its way: it appends a repair entry and
// projects it as a writer would, so a reader that dies meanwhile leaves a mark as well. Once
// the view is up to the log, the conversation's marks older than staleMarkAge (their writers
// are gone) are deleted. It reports whether it appended.
func (s *Service) repair(ctx context.Context, tenantID, convID string) (bool, error) {
	view, err := s.store.Conversation(ctx, tenantID, convID)
	if err != nil && !isNotFound(err) {
		return false, err
	}
	base := view
	if view == nil {
		base = &Conversation{} // its start died before making the view: make it from the log
	}
	newer, err := s.store.EntriesAfter(ctx, tenantID, convID, base.Seq)
	if err != nil {
		return false, err
	}
	repaired := false
	if len(newer) > 0 {
		if view == nil {
			if newer[0].Header == nil {
				return false, errors.New("the conversation's first entry has no header")
			}
			base.Header = *newer[0].Header
		}
		// The view (or nothing) followed by every newer entry: the latest messages are exact.
		res, err := s.commit(ctx, base.followedBy(newer), true, []change{repairChange(s.newID())})
		if err != nil {
			return false, err
		}
		if res.mark != "" {
			return true, nil // the repair's own check did not pass: its mark stays, and so do the others
		}
		repaired = true
	}
	marks, err := s.store.ConversationMarks(ctx, tenantID, convID)
	if err != nil {
		return repaired, err
	}
	var stale []string
	for _, m := range marks {
		if s.clock().Sub(m.At) > staleMarkAge {
			stale = append(stale, m.ID)
		}
	}
	if len(stale) > 0 {
		return repaired, s.store.Unmark(ctx, tenantID, stale)
	}
	return repaired, nil
}

// catchUp repairs the views of the conversations in a list's scope (a customer's, or with
// customerID "" the whole tenant's) that have marks of writes in flight, so the list that
// follows agrees with the history. Such marks exist only while writes are in flight or after a
// writer died, so this usually finds nothing. Failures are logged: the list is then as fresh as
// the views are.
//
// It reports whether the scope was settled: no write was in flight, so a list read now may be
// cached until the next write invalidates it.
func (s *Service) catchUp(ctx context.Context, tenantID, customerID string) bool {
	marks, err := s.store.Marks(ctx, tenantID, customerID, 10*maxRepairsPerRead)
	if err != nil {
		s.log.WarnContext(ctx, "write marks not checked", "tenant", tenantID, "error", err)
		return false
	}
	var convs []string
	for _, m := range marks {
		if !slices.Contains(convs, m.ConversationID) {
			convs = append(convs, m.ConversationID)
		}
	}
	for i, convID := range convs {
		if i == maxRepairsPerRead {
			break
		}
		if _, err := s.repairLocked(ctx, tenantID, convID); err != nil {
			s.log.WarnContext(ctx, "conversation view not repaired", "tenant", tenantID, "conversation", convID, "error", err)
		}
	}
	return len(marks) == 0
}

// viewsChanged tells the caches that the lists of a customer and of the tenant's admins
// change. A failure (Redis is down) is logged: cached lists then live at most their TTL.
func (s *Service) viewsChanged(ctx context.Context, tenantID, customerID string) {
	if s.caches == nil {
		return
	}
	if err := s.caches.ConversationChanged(context.WithoutCancel(ctx), tenantID, customerID); err != nil {
		s.log.WarnContext(ctx, "cached lists not invalidated; they expire on their own", "tenant", tenantID, "error", err)
	}
}

// supportChanged tells the caches that the tenant's support block changed.
func (s *Service) supportChanged(ctx context.Context, tenantID string) {
	if s.caches == nil {
		return
	}
	if err := s.caches.SupportChanged(context.WithoutCancel(ctx), tenantID); err != nil {
		s.log.WarnContext(ctx, "cached support block not invalidated; it expires on its own", "tenant", tenantID, "error", err)
	}
}
