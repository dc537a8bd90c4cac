package convlog

import (
	"context"
	"errors"

	"github.com/supportchat/supportchat/internal/chat"
)

// Readers. A view is a cache of its conversation's log: exact at its Seq, and perhaps behind the
// log while a write is in flight, after a writer died, or (on FerretDB) after a slow writer's
// older view landed on a newer one. So what a read returns is the view brought up to the log:
// a look-up of the entry after it, which is nearly always missing, and the entries that follow
// when it is not. Readers never write: the writers and the relay keep the views.

// errNotFound is the answer for a conversation that has neither a view nor a log.
var errNotFound = &chat.Error{Code: chat.NotFound, Message: "conversation not found"}

// View returns the stored view of conversation id, or the conversation rebuilt from its log
// when it has no view (its first write died before making one). See chat.Log.
func (l *Log) View(ctx context.Context, tenantID, id string) (*chat.Conversation, error) {
	v, err := l.store.View(ctx, tenantID, id)
	if !errors.Is(err, chat.ErrNotFound) {
		return v, err
	}
	entries, err := l.store.EntriesAfter(ctx, tenantID, id, 0)
	if err != nil {
		return nil, err
	}
	c, ok := chat.FromLog(entries)
	if !ok || c.Erased {
		return nil, errNotFound
	}
	return c, nil
}

// Conversation returns conversation id as its log stands. See chat.Log.
func (l *Log) Conversation(ctx context.Context, tenantID, id string) (*chat.Conversation, error) {
	v, err := l.store.View(ctx, tenantID, id)
	if errors.Is(err, chat.ErrNotFound) {
		return l.View(ctx, tenantID, id) // rebuilt from the whole log
	}
	if err != nil {
		return nil, err
	}
	newer, err := l.store.EntriesAfter(ctx, tenantID, id, v.Seq)
	if err != nil {
		return nil, err
	}
	c := v.FollowedBy(newer)
	if c.Erased {
		return nil, errNotFound
	}
	return c, nil
}

// Refresh brings views up to their logs; a conversation being erased comes back Erased. See
// chat.Log.
func (l *Log) Refresh(ctx context.Context, views []*chat.Conversation) ([]*chat.Conversation, error) {
	out := make([]*chat.Conversation, len(views))
	copy(out, views)
	if len(views) == 0 {
		return out, nil
	}
	followed, err := l.store.Followed(ctx, views)
	if err != nil {
		return nil, err
	}
	for i, v := range views {
		if !followed[i] {
			continue
		}
		newer, err := l.store.EntriesAfter(ctx, v.TenantID, v.ID, v.Seq)
		if err != nil {
			return nil, err
		}
		out[i] = v.FollowedBy(newer)
	}
	return out, nil
}
