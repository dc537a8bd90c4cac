package convlog

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// The write path. A write appends one entry per change to its conversation's log; the insert
// of an entry, unique by (tenant, conversation, Seq) and by its id within the conversation, is
// the commit point. Then the write brings the conversation's view up to what it committed,
// publishes the events of its entries and clears their Pending mark. A writer that dies after
// the commit leaves its entries pending, and the relay (relay.go) finishes its work.

// Commit makes changes, in order, to conversation base: a view, exact at its Seq, perhaps
// behind the log. It appends the changes and projects the view (the write is then committed
// and visible, and its answer known), then publishes the entries' events, looks past the
// projection where replaces are not atomic, and clears the entries' pending marks. See
// chat.Log.
func (l *Log) Commit(ctx context.Context, base *chat.Conversation, changes []chat.Change) (*chat.Committed, error) {
	ctx, cancel := context.WithTimeout(ctx, maxWriteDuration)
	defer cancel()
	w, err := l.appendChanges(ctx, base, changes)
	if len(w.mine) == 0 {
		if err != nil {
			return nil, err
		}
		return &chat.Committed{Conversation: w.cur}, nil
	}
	if err != nil {
		// The first change is committed: answering an error would invite the client to send
		// it again. The changes after it (the away notice) are left out.
		l.logger.WarnContext(ctx, "a write is committed without its later changes",
			"tenant", base.TenantID, "conversation", base.ID, "error", err)
	}
	if err := l.store.Project(ctx, w.cur); err != nil {
		// Committed, but lists would not show it: not acknowledged. The entries stay pending,
		// so the relay brings the view up and publishes their events; a retry with the same
		// Idempotency-Key finds the write committed.
		return nil, &chat.Error{Code: chat.Unavailable, Message: "the change is stored but could not be made visible yet; retry the request with its Idempotency-Key", Err: err}
	}
	invalidated := l.listsChanged(ctx, base.TenantID, base.Customer.ID)
	published := l.publish(ctx, w.cur, w.mine)
	if _, current, err := l.confirm(ctx, w.cur); err != nil {
		l.logger.WarnContext(ctx, "view not confirmed after a write; the relay finishes it",
			"tenant", base.TenantID, "conversation", base.ID, "error", err)
	} else if current && invalidated {
		// Lists cached before the write were not dropped (Redis failed just then): the
		// entries stay pending, and the relay drops them once Redis answers again.
		l.clear(ctx, published)
	}
	return &chat.Committed{Conversation: w.cur.At(w.mine[len(w.mine)-1]), Entries: w.mine}, nil
}

// Write makes one write to conversation id under the replica's lock of the conversation, which
// it holds until the write is finished, its events published included: the replica's next
// writer then starts late enough for the writers of other replicas, which lost the race to
// this one, to take their turn (letting go at the commit made the replica's own writers win
// again and again, and tripled the p99 of 8 writers through 3 replicas). See chat.Log.
func (l *Log) Write(ctx context.Context, tenantID, id string, plan func(*chat.Conversation) ([]chat.Change, error)) (*chat.Conversation, *chat.Committed, error) {
	unlock, err := l.lock(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	c, err := l.View(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	changes, err := plan(c)
	if err != nil || len(changes) == 0 {
		return c, nil, err
	}
	res, err := l.Commit(ctx, c, changes)
	return c, res, err
}

// lock takes the replica's lock of a conversation (see keyedLocks).
func (l *Log) lock(ctx context.Context, tenantID, convID string) (func(), error) {
	unlock, err := l.locks.lock(ctx, tenantID+"/"+convID)
	if err != nil {
		return nil, &chat.Error{Code: chat.Unavailable, Message: "the conversation is too busy right now", Err: err}
	}
	return unlock, nil
}

// write is the progress of one write through appendChanges.
type write struct {
	// cur is the conversation as far as the write knows its log, exact (Latest included).
	cur *chat.Conversation
	// mine are the write's entries in log order: appended by this attempt, or found stored
	// by an earlier attempt of the same write.
	mine []chat.Entry
}

// appendChanges appends the changes to conversation base's log. Each attempt records the
// changes that still have something to do as entries after the newest state it knows and
// appends them; when another writer took a sequence number first, it reads the entries that
// followed and tries again after them, until ctx ends. An entry refused because its id is
// stored already is this write's own, stored by an earlier attempt (a retry or a racing twin):
// it counts as done, so nothing is stored twice. On error, w holds what was committed before.
func (l *Log) appendChanges(ctx context.Context, base *chat.Conversation, changes []chat.Change) (*write, error) {
	w := &write{cur: base.Clone()}
	pending := slices.Clone(changes)
	var known []chat.Entry // entries of the log this write read after base
	for attempt := 0; ; attempt++ {
		if w.cur.Erased {
			// The log ends with its seal: the conversation is being erased, and nothing
			// may follow the seal (chat.EntryErased).
			return w, errNotFound
		}
		var err error
		if pending, err = w.claim(pending, known); err != nil {
			return w, err
		}
		next := w.cur.Clone()
		now := l.clock()
		var entries []chat.Entry
		var live []chat.Change
		for _, ch := range pending {
			if e, ok := next.Record(ch, now); ok {
				entries = append(entries, e)
				live = append(live, ch)
			}
		}
		pending = live
		if len(entries) == 0 {
			if attempt > 0 || len(changes) == 0 {
				break
			}
			// Nothing to do, against a view that may be behind its log (a read mark that
			// seems not to move): look at the log's end before saying so.
			newer, err := l.store.EntriesAfter(ctx, base.TenantID, base.ID, w.cur.Seq)
			if err != nil {
				return w, err
			}
			if len(newer) == 0 {
				break
			}
			known = append(known, newer...)
			w.cur = w.cur.FollowedBy(newer)
			pending = slices.Clone(changes)
			continue
		}
		if attempt == 0 {
			// Lists cached from now on may miss what this write commits; those cached
			// before are dropped now, so a writer that dies after its commit leaves none
			// behind that hides it. Commit drops them again once the view shows the write
			// (docs/CACHING.md).
			l.listsChanged(ctx, base.TenantID, base.Customer.ID)
		}
		for i := range entries {
			entries[i].Pending = true // until their events are out
		}
		n, err := l.store.Append(ctx, entries)
		w.mine = append(w.mine, entries[:n]...)
		w.cur = w.cur.FollowedBy(entries[:n])
		pending = pending[n:]
		if err == nil {
			break
		}
		if !errors.Is(err, chat.ErrConflict) {
			return w, err
		}
		// entries[n] was refused: another writer took its Seq, or its id is stored already,
		// by an earlier attempt of this write. The winner's view is the quickest way to the
		// log's end (FerretDB reads the log by scanning it, and a loser that reads more
		// slowly than the winner's next writer would lose again and again); a new
		// conversation's log, which a twin or a retry stored, is read instead, entry by entry,
		// so the write finds which of them are its own.
		if w.cur.Seq > 0 {
			v, err := l.winnersView(ctx, w.cur)
			if err != nil {
				return w, err
			}
			if v != nil {
				w.cur = v
				continue
			}
		}
		newer, err := l.store.EntriesAfter(ctx, base.TenantID, base.ID, w.cur.Seq)
		if err != nil {
			return w, err
		}
		if len(newer) == 0 {
			// Nobody took the Seq: the id is stored, in the part of the log this write knew.
			stored, err := l.store.Entry(ctx, base.TenantID, base.ID, pending[0].ID())
			if err != nil && !errors.Is(err, chat.ErrNotFound) {
				return w, err
			}
			if stored != nil {
				known = append(known, *stored)
			}
		}
		known = append(known, newer...)
		w.cur = w.cur.FollowedBy(newer)
		if len(newer) > 0 && !slices.ContainsFunc(newer, func(e chat.Entry) bool { return e.ID == pending[0].ID() }) {
			backoff(ctx, attempt) // lost a race for the Seq
		}
		if ctx.Err() != nil {
			return w, &chat.Error{Code: chat.Unavailable, Message: "the conversation is too busy right now; retry the request", Err: ctx.Err()}
		}
	}
	slices.SortFunc(w.mine, func(a, b chat.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	return w, nil
}

// viewWaits bounds how often a writer that lost a race looks at the view again for the
// winner's, a few milliseconds apart, before it reads the log instead.
const viewWaits = 3

// winnersView returns the stored view of conversation c when it is ahead of c: the view of the
// writer that took c's next Seq, which projects it within milliseconds. It returns nil when
// the view stays behind.
func (l *Log) winnersView(ctx context.Context, c *chat.Conversation) (*chat.Conversation, error) {
	for i := range viewWaits {
		if i > 0 {
			pause(ctx, time.Duration(i)*time.Millisecond)
		}
		v, err := l.store.View(ctx, c.TenantID, c.ID)
		if err != nil && !errors.Is(err, chat.ErrNotFound) {
			return nil, err
		}
		if v != nil && v.Seq > c.Seq {
			return v, nil
		}
	}
	return nil, nil
}

// claim takes the changes whose ids are among known out of pending: they were stored by an
// earlier attempt of this write, so they are the write's entries. Returns KeyReused when such
// an entry records another change.
func (w *write) claim(pending []chat.Change, known []chat.Entry) ([]chat.Change, error) {
	var rest []chat.Change
	for _, ch := range pending {
		i := slices.IndexFunc(known, func(e chat.Entry) bool { return e.ID == ch.ID() })
		switch {
		case i < 0:
			rest = append(rest, ch)
		case !w.take(ch, &known[i]):
			return nil, errKeyReused
		}
	}
	return rest, nil
}

// take adds the stored entry e of change ch to the write's entries, reporting whether it is
// ch's indeed.
func (w *write) take(ch chat.Change, e *chat.Entry) bool {
	if !ch.Same(e) {
		return false
	}
	if !slices.ContainsFunc(w.mine, func(m chat.Entry) bool { return m.ID == e.ID }) {
		w.mine = append(w.mine, *e)
	}
	return true
}

// errKeyReused is a write whose change ids hold other changes: its Idempotency-Key was used for
// another request, which was stored.
var errKeyReused = chat.Errorf(chat.KeyReused, "this Idempotency-Key belongs to another request, which was stored; use a new key")

// backoff waits a little, more after more lost races, with jitter so racing writers spread out.
func backoff(ctx context.Context, attempt int) {
	pause(ctx, time.Duration(rand.Int64N(int64(time.Millisecond)<<min(attempt, 4)))) //nolint:gosec // jitter, not a secret
}

// pause waits for d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// project makes the stored view of conversation c show at least c, and returns the
// conversation the view was last brought up to, and whether it is known to be current (see
// confirm).
func (l *Log) project(ctx context.Context, c *chat.Conversation) (*chat.Conversation, bool, error) {
	if err := l.store.Project(ctx, c); err != nil {
		return c, false, err
	}
	return l.confirm(ctx, c)
}

// confirm returns whether the view just projected from c is known to be current: no entry
// follows it, or the server's conditional replace keeps views from moving back (MongoDB).
//
// On a server whose conditional replace is not atomic (FerretDB), a writer's older view may
// land after a newer one and bury it. So there the writer looks past what it projected: if the
// log has grown meanwhile, it may have buried a newer view, and it projects the log's end,
// again, for a few rounds. A writer that gives up, or dies first, leaves its entries pending,
// and the relay finishes: a view is behind its log only while an entry of the conversation is
// pending (docs/CONSISTENCY.md). It returns the conversation the view was last brought up to.
func (l *Log) confirm(ctx context.Context, c *chat.Conversation) (*chat.Conversation, bool, error) {
	if l.store.AtomicReplace(ctx) {
		return c, true, nil
	}
	for range maxProjectRounds {
		newer, err := l.store.EntriesAfter(ctx, c.TenantID, c.ID, c.Seq)
		if err != nil {
			return c, false, err
		}
		if len(newer) == 0 {
			return c, true, nil
		}
		c = c.FollowedBy(newer)
		if c.Erased {
			// The log ends with its seal: it is being erased, and its view must not come
			// back (the erasure deletes it).
			return c, false, errNotFound
		}
		if err := l.store.Project(ctx, c); err != nil {
			return c, false, err
		}
		l.listsChanged(ctx, c.TenantID, c.Customer.ID)
	}
	return c, false, nil
}

// listsChanged tells the caches that the lists of a customer and of the tenant's admins
// changed, and reports whether they heard. A failure (Redis is down) is logged: the write's
// entries then stay pending, and the relay tells the caches once Redis answers again.
func (l *Log) listsChanged(ctx context.Context, tenantID, customerID string) bool {
	if l.caches == nil {
		return true
	}
	if err := l.caches.ConversationChanged(context.WithoutCancel(ctx), tenantID, customerID); err != nil {
		l.logger.WarnContext(ctx, "cached lists not invalidated; the relay invalidates them once Redis answers", "tenant", tenantID, "error", err)
		return false
	}
	return true
}

// publish publishes the events of entries of conversation c (at the last of them or after it),
// in order, and stops at the first failure (the bus drops the events of an entry published
// before, by an earlier attempt of the write or by the relay). It returns the entries whose
// events are out.
func (l *Log) publish(ctx context.Context, c *chat.Conversation, entries []chat.Entry) []chat.Entry {
	ctx = context.WithoutCancel(ctx) // the write is committed: its events go out
	var out []chat.Entry
	for _, e := range entries {
		at, err := l.withNewestAt(ctx, c, e)
		if err != nil {
			break
		}
		if !l.publishEntry(ctx, at, e) {
			break
		}
		out = append(out, e)
	}
	return out
}

// clear clears the pending marks of entries, whose events are out; a failure leaves them to
// the relay, which publishes them again (the bus drops the repeats).
func (l *Log) clear(ctx context.Context, entries []chat.Entry) {
	if len(entries) == 0 {
		return
	}
	if err := l.store.Published(ctx, entries); err != nil {
		l.logger.WarnContext(ctx, "published entries not marked; the relay publishes them again",
			"tenant", entries[0].TenantID, "conversation", entries[0].ConversationID, "error", err)
	}
}

// publishEntry publishes the events of entry e, rendered from c, reporting whether all went out.
func (l *Log) publishEntry(ctx context.Context, c *chat.Conversation, e chat.Entry) bool {
	if l.events == nil {
		return true
	}
	for _, ev := range chat.EventsOf(c, e) {
		if err := l.events.Publish(ctx, ev); err != nil {
			return false
		}
	}
	return true
}

// withNewestAt returns c with its latest messages reaching back to entry e's newest message,
// which the events of e show: a conversation that moved on by more than MaxLatest messages
// since e reads it from the log.
func (l *Log) withNewestAt(ctx context.Context, c *chat.Conversation, e chat.Entry) (*chat.Conversation, error) {
	if len(c.Latest) < chat.MaxLatest || c.Latest[0].Seq <= e.Seq {
		return c, nil
	}
	msgs, err := l.store.Messages(ctx, e.TenantID, e.ConversationID, e.Seq+1, 1)
	if err != nil {
		return nil, err
	}
	n := c.Clone()
	n.Latest = append(msgs, n.Latest...)
	return n, nil
}
