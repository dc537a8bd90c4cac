package datarights

import (
	"context"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// logRecords is a conversation's log in memory: enough of Records for seal.
type logRecords struct {
	Records // the rest is not called
	log     []chat.Entry
	// racer, when set, is appended by another writer just before the next Append.
	racer *chat.Entry
}

func (r *logRecords) View(context.Context, string, string) (*chat.Conversation, error) {
	return nil, chat.ErrNotFound
}

func (r *logRecords) LastEntry(context.Context, string, string) (*chat.Entry, error) {
	if len(r.log) == 0 {
		return nil, nil
	}
	e := r.log[len(r.log)-1]
	return &e, nil
}

func (r *logRecords) Append(_ context.Context, entries []chat.Entry) (int, error) {
	if r.racer != nil {
		r.log, r.racer = append(r.log, *r.racer), nil
	}
	if entries[0].Seq != int64(len(r.log))+1 {
		return 0, chat.ErrConflict
	}
	r.log = append(r.log, entries...)
	return len(entries), nil
}

func (r *logRecords) Entry(_ context.Context, _, _, id string) (*chat.Entry, error) {
	for _, e := range r.log {
		if e.ID == id {
			return &e, nil
		}
	}
	return nil, chat.ErrNotFound
}

// TestSealSparesWhatRetentionMustKeep checks the decision retention makes at the seal: a
// conversation still resolved and old is sealed; one a customer reopened just before, or
// reopens while the seal is being appended, is not.
func TestSealSparesWhatRetentionMustKeep(t *testing.T) {
	cutoff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	keep := func(st chat.State) bool { return st.Status != chat.StatusResolved || !st.UpdatedAt.Before(cutoff) }
	old := chat.Entry{ID: "e1", Seq: 1, Kind: chat.EntryUpdate, State: chat.State{Seq: 1, Status: chat.StatusResolved, UpdatedAt: cutoff.Add(-time.Hour)}}
	reopened := chat.Entry{ID: "e2", Seq: 2, Kind: chat.EntryMessage, State: chat.State{Seq: 2, Status: chat.StatusOpen, UpdatedAt: cutoff.Add(time.Hour)}}
	ctx := context.Background()

	r := &logRecords{log: []chat.Entry{old}}
	if s, err := seal(ctx, r, "t", "c", cutoff, keep); err != nil || !s.added || s.seq != 2 || r.log[1].Kind != chat.EntryErased {
		t.Errorf("an old resolved conversation: %+v, %v", s, err)
	}
	r = &logRecords{log: []chat.Entry{old, reopened}}
	if s, err := seal(ctx, r, "t", "c", cutoff, keep); err != nil || s.seq != 0 || len(r.log) != 2 {
		t.Errorf("a reopened conversation: %+v, %v, log %d", s, err, len(r.log))
	}
	r = &logRecords{log: []chat.Entry{old}, racer: &reopened}
	if s, err := seal(ctx, r, "t", "c", cutoff, keep); err != nil || s.seq != 0 || len(r.log) != 2 || r.log[1].Kind == chat.EntryErased {
		t.Errorf("a conversation reopened during the seal: %+v, %v, log %+v", s, err, r.log)
	}
	// An erasure (no keep) seals whatever the state, after the racer.
	r = &logRecords{log: []chat.Entry{old}, racer: &reopened}
	if s, err := seal(ctx, r, "t", "c", cutoff, nil); err != nil || s.seq != 3 || r.log[2].Kind != chat.EntryErased {
		t.Errorf("an erasure racing a write: %+v, %v", s, err)
	}
	// A log sealed already is not sealed twice.
	if s, err := seal(ctx, r, "t", "c", cutoff, nil); err != nil || s.added || s.seq != 3 || len(r.log) != 3 {
		t.Errorf("a sealed log: %+v, %v", s, err)
	}
}
