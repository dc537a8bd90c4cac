package convlog

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/supportchat/supportchat/internal/chat"
)

// Webhooks draw from the log as the event streams do: every entry is committed marked for
// them, in the insert that commits it, and stays marked until webhooks stored its deliveries.
// So an acknowledged write's webhooks survive a process that dies right after the commit, and
// the write path pays nothing for them.

// Hooked returns the events of up to limit entries not yet taken up by webhooks, oldest
// first, each rendered from its conversation as it stood right after the entry (as the relay
// renders them), with the entry's mark. An entry whose conversation cannot be read now is left
// for the next call.
func (l *Log) Hooked(ctx context.Context, limit int) ([]chat.Recorded, error) {
	entries, marks, err := l.store.Hooked(ctx, limit)
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(entries))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		x, y := entries[a], entries[b]
		return cmp.Or(cmp.Compare(x.TenantID, y.TenantID), cmp.Compare(x.ConversationID, y.ConversationID), cmp.Compare(x.Seq, y.Seq))
	})
	byMark := make(map[string]chat.Recorded, len(entries))
	for start := 0; start < len(idx); {
		end := start + 1
		first := entries[idx[start]]
		for end < len(idx) && entries[idx[end]].TenantID == first.TenantID && entries[idx[end]].ConversationID == first.ConversationID {
			end++
		}
		c, err := l.conversationAfter(ctx, first)
		if err != nil {
			l.logger.WarnContext(ctx, "entries not taken up by webhooks; next pass", "tenant", first.TenantID, "conversation", first.ConversationID, "error", err)
			start = end
			continue
		}
		for _, i := range idx[start:end] {
			at, err := l.withNewestAt(ctx, c, entries[i])
			if err != nil {
				break
			}
			byMark[marks[i]] = chat.Recorded{Mark: marks[i], Events: chat.EventsOf(at, entries[i])}
		}
		start = end
	}
	out := make([]chat.Recorded, 0, len(byMark))
	for _, m := range marks { // in the store's order: oldest first
		if r, ok := byMark[m]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// Unhook clears the webhook marks of entries whose deliveries are stored.
func (l *Log) Unhook(ctx context.Context, marks []string) error { return l.store.Unhook(ctx, marks) }

// conversationAfter returns entry e's conversation at least as far as its log reaches now, so
// that it can render the events of e and of every later entry.
func (l *Log) conversationAfter(ctx context.Context, e chat.Entry) (*chat.Conversation, error) {
	v, err := l.store.View(ctx, e.TenantID, e.ConversationID)
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return nil, err
	}
	var seq int64
	if v != nil {
		seq = v.Seq
	}
	newer, err := l.store.EntriesAfter(ctx, e.TenantID, e.ConversationID, seq)
	if err != nil {
		return nil, err
	}
	if v == nil {
		c, ok := chat.FromLog(newer)
		if !ok {
			return nil, errors.New("the log of the conversation does not start with its first entry")
		}
		return c, nil
	}
	return v.FollowedBy(newer), nil
}
