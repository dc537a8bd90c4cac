package stack

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestSeedStoresLogsAndTheirViews checks that a seeded tenant reads as one the service wrote:
// every conversation has a log and a view at its end, lists see them all, newest first, and the
// plan's statuses.
func TestSeedStoresLogsAndTheirViews(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	uri, database := testenv.MustMongo(t)
	const conversations = 20
	plan := Plan{Conversations: conversations, Customers: 4, OpenEvery: 3, Assign: true, Batch: 7}
	if err := Seed(ctx, uri, database, TenantID, plan); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(ctx) }()
	store := db.Store()

	views, err := store.ListConversations(ctx, TenantID, chat.ListFilter{}, nil, 2*conversations)
	if err != nil {
		t.Fatalf("ListConversations: %v", err)
	}
	if len(views) != conversations {
		t.Fatalf("ListConversations lists %d conversations, want %d", len(views), conversations)
	}
	for i, v := range views {
		if want := conversationID(i); v.ID != want {
			t.Errorf("ListConversations[%d] = %s, want %s (the newest first)", i, v.ID, want)
		}
		entries, err := store.EntriesAfter(ctx, TenantID, v.ID, 0)
		if err != nil {
			t.Fatalf("EntriesAfter(%s): %v", v.ID, err)
		}
		fromLog, ok := chat.FromLog(entries)
		if !ok || len(entries) != 3 {
			t.Fatalf("the log of %s has %d entries and starts it: %v; want 3 that do", v.ID, len(entries), ok)
		}
		if diff := cmp.Diff(fromLog, v, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
			t.Errorf("the view of %s differs from its log (-log +view):\n%s", v.ID, diff)
		}
	}
	open, err := store.ListConversations(ctx, TenantID, chat.ListFilter{Status: chat.StatusOpen}, nil, 2*conversations)
	if err != nil {
		t.Fatalf("ListConversations(open): %v", err)
	}
	if want := (conversations + plan.OpenEvery - 1) / plan.OpenEvery; len(open) != want {
		t.Errorf("ListConversations(open) lists %d conversations, want %d (every %d-th)", len(open), want, plan.OpenEvery)
	}
}
