package convlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// The relay. Every entry is stored pending, and its writer clears the mark once the
// conversation's view shows the entry and the entry's events are published. An entry still
// pending after the grace period belongs to a writer that died, that could not reach Redis, or
// that gave up bringing the view up to a growing log: the relay, on every replica, does the
// rest of its work. Publishing is at least once; the event bus drops repeats by event id, so
// a writer and the relay, or two replicas' relays, may both publish an entry harmlessly.

// Run runs the relay every RelayInterval until ctx ends, on one replica at a time where a
// Lease is given.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l.lease != nil && !l.lease.Take(ctx, "relay", relayLeaseIntervals*l.interval) {
			continue // another replica makes this pass
		}
		if _, err := l.Relay(ctx); err != nil && ctx.Err() == nil {
			l.logger.WarnContext(ctx, "relay of pending log entries", "error", err)
		}
	}
}

// relayLeaseIntervals is how many passes the relay's lease outlives the last pass of its
// holder: another replica takes the passes over this long after the holder stopped.
const relayLeaseIntervals = 3

// Relay takes up the entries it has seen pending for longer than the grace period, one
// conversation at a time: it brings the conversation's view up to its log, publishes the
// entries' events and clears their Pending mark. It returns how many entries it published; a
// conversation it cannot finish is left for the next pass. Passes must not overlap (Run
// makes them one after the other).
func (l *Log) Relay(ctx context.Context) (int, error) {
	all, err := l.store.Pending(ctx, relayBatch)
	if err != nil {
		return 0, err
	}
	pending := l.overdue(all, time.Now())
	slices.SortFunc(pending, func(a, b chat.Entry) int {
		return cmp.Or(cmp.Compare(a.TenantID, b.TenantID), cmp.Compare(a.ConversationID, b.ConversationID), cmp.Compare(a.Seq, b.Seq))
	})
	taken, published := len(pending), 0
	for len(pending) > 0 && ctx.Err() == nil {
		n := 1
		for n < len(pending) && pending[n].TenantID == pending[0].TenantID && pending[n].ConversationID == pending[0].ConversationID {
			n++
		}
		p, err := l.relayConversation(ctx, pending[:n])
		if err != nil {
			l.logger.WarnContext(ctx, "pending log entries not relayed; next pass",
				"tenant", pending[0].TenantID, "conversation", pending[0].ConversationID, "error", err)
		}
		published += p
		pending = pending[n:]
	}
	if l.obs != nil {
		l.obs.EntriesRelayed(taken, published)
	}
	return published, nil
}

// overdue returns the entries of pending the relay first saw pending at least the grace period
// before now, and remembers when it first saw the others; it forgets entries no longer pending.
func (l *Log) overdue(pending []chat.Entry, now time.Time) []chat.Entry {
	seen := make(map[string]time.Time, len(pending))
	var out []chat.Entry
	for _, e := range pending {
		key := chat.EventID(e, "")
		first, ok := l.seen[key]
		if !ok {
			first = now
		}
		seen[key] = first
		if now.Sub(first) >= l.grace {
			out = append(out, e)
		}
	}
	l.seen = seen
	return out
}

// relayConversation finishes the work of the pending entries of one conversation: it brings
// the view up to the log unless it is there already, and publishes the entries' events.
func (l *Log) relayConversation(ctx context.Context, entries []chat.Entry) (int, error) {
	e := entries[0]
	v, err := l.store.View(ctx, e.TenantID, e.ConversationID)
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return 0, err
	}
	var seq int64
	if v != nil {
		seq = v.Seq
	}
	newer, err := l.store.EntriesAfter(ctx, e.TenantID, e.ConversationID, seq)
	if err != nil {
		return 0, err
	}
	var c *chat.Conversation
	if v == nil {
		var ok bool
		if c, ok = chat.FromLog(newer); !ok {
			return 0, fmt.Errorf("the log of conversation %s does not start with its first entry", e.ConversationID)
		}
	} else {
		c = v.FollowedBy(newer)
	}
	if c.Erased {
		return 0, nil // being erased: nothing of it is shown again (internal/datarights)
	}
	current := true
	if v == nil || len(newer) > 0 {
		if c, current, err = l.project(ctx, c); err != nil {
			return 0, err
		}
	}
	// The caches hear of the entries even when their view was current: their writer may have
	// left them pending because it could not tell the caches (Redis was down), and lists
	// cached before the write, in Redis or in any replica's memory, would match still.
	invalidated := l.listsChanged(ctx, e.TenantID, e.CustomerID)
	published := l.publish(ctx, c, entries)
	if current && invalidated {
		l.clear(ctx, published)
	}
	return len(published), nil
}
