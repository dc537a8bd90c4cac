package convlog_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/testenv"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// recorder is the event bus as the log sees it: it keeps the ids of what was published, and
// fails while down is set.
type recorder struct {
	mu   sync.Mutex
	ids  []string
	down bool
}

func (r *recorder) Publish(_ context.Context, e chat.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return errors.New("redis is down")
	}
	r.ids = append(r.ids, e.ID)
	return nil
}

func (r *recorder) published() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// mustStore returns the log's store on a fresh database of the test's MongoDB wire server.
func mustStore(t *testing.T) *mongodb.Store {
	t.Helper()
	uri, database := testenv.MustMongo(t)
	db, err := mongodb.Open(context.Background(), uri, database, mongodb.Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	if err := db.EnsureIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db.Store()
}

// deadWritersLog appends the entries of a conversation's start (a message and a reply) the
// way a writer that died right after its commit leaves them: pending, without a view.
func deadWritersLog(t *testing.T, store *mongodb.Store) []chat.Entry {
	t.Helper()
	ada := chat.Participant{ID: "ada", Role: chat.RoleCustomer}
	grace := chat.Participant{ID: "grace", Role: chat.RoleAdmin}
	h := chat.Header{ID: "6745c2a1b2c3d4e5f6a7b8c9", TenantID: "shop", Subject: "order", Customer: ada, CreatedAt: t0}
	m1 := chat.Message{ID: "m1", ConversationID: h.ID, Seq: 1, Sender: ada, Body: "hi", CreatedAt: t0, CustomerN: 1}
	m2 := chat.Message{ID: "m2", ConversationID: h.ID, Seq: 2, Sender: grace, Body: "hello", CreatedAt: t0, CustomerN: 1, AdminN: 1}
	entries := []chat.Entry{
		{ID: "m1", TenantID: "shop", ConversationID: h.ID, CustomerID: "ada", Seq: 1, Kind: chat.EntryMessage, At: t0, By: ada, Header: &h, Message: &m1,
			State: chat.State{Seq: 1, Status: chat.StatusOpen, UpdatedAt: t0, CustomerCount: 1}},
		{ID: "m2", TenantID: "shop", ConversationID: h.ID, CustomerID: "ada", Seq: 2, Kind: chat.EntryMessage, At: t0, By: grace, Message: &m2,
			State: chat.State{Seq: 2, Status: chat.StatusOpen, UpdatedAt: t0, CustomerCount: 1, AdminCount: 1, TeamRead: 1, Admins: []chat.Participant{grace}}},
	}
	for i := range entries {
		entries[i].Pending = true // as the log appends them
	}
	if n, err := store.Append(context.Background(), entries); err != nil || n != 2 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	return entries
}

// TestRelayFinishesADeadWritersWork leaves a start committed but unprojected and
// unpublished, as a writer that died after its commit does. The relay leaves it alone for the
// grace period, then makes the view, publishes the events in order and clears the entries;
// a second pass publishes nothing again. While the bus is down it keeps them pending.
func TestRelayFinishesADeadWritersWork(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	bus := &recorder{down: true}
	const grace = 50 * time.Millisecond
	log := convlog.New(convlog.Deps{Store: store, Events: bus, RelayGrace: grace})
	entries := deadWritersLog(t, store)
	conv := entries[0].ConversationID

	if n, err := log.Relay(ctx); err != nil || n != 0 {
		t.Fatalf("first pass = %d, %v; want nothing within the grace period", n, err)
	}
	if _, err := store.View(ctx, "shop", conv); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("the first pass made the view (%v); it is the writer's within the grace period", err)
	}
	time.Sleep(grace)
	if n, err := log.Relay(ctx); err != nil || n != 0 {
		t.Fatalf("pass with the bus down = %d, %v; want nothing published", n, err)
	}
	if v, err := store.View(ctx, "shop", conv); err != nil || v.Seq != 2 {
		t.Fatalf("after the relay the view is %+v, %v; want it at entry 2", v, err)
	}
	if p, err := store.Pending(ctx, 10); err != nil || len(p) != 2 {
		t.Fatalf("pending after a failed publication = %d, %v; want both entries", len(p), err)
	}

	bus.mu.Lock()
	bus.down = false
	bus.mu.Unlock()
	if n, err := log.Relay(ctx); err != nil || n != 2 {
		t.Fatalf("pass with the bus up = %d, %v; want both entries published", n, err)
	}
	want := []string{
		"shop:" + conv + ":1/conversation.created",
		"shop:" + conv + ":1/message.created",
		"shop:" + conv + ":2/message.created",
	}
	if diff := cmp.Diff(want, bus.published()); diff != "" {
		t.Errorf("published event ids (-want +got):\n%s", diff)
	}
	if p, err := store.Pending(ctx, 10); err != nil || len(p) != 0 {
		t.Errorf("pending after publication = %d, %v; want none", len(p), err)
	}
	if n, err := log.Relay(ctx); err != nil || n != 0 {
		t.Errorf("a pass after publication = %d, %v; want nothing", n, err)
	}
}

// TestReadersSeeTheLogNotTheView reads a conversation whose view is behind its log and one
// that has no view yet: both read as their logs stand, and reading writes nothing.
func TestReadersSeeTheLogNotTheView(t *testing.T) {
	ctx := context.Background()
	store := mustStore(t)
	log := convlog.New(convlog.Deps{Store: store, Events: &recorder{}})
	entries := deadWritersLog(t, store)
	conv := entries[0].ConversationID

	c, err := log.Conversation(ctx, "shop", conv)
	if err != nil || c.Seq != 2 || len(c.Latest) != 2 {
		t.Fatalf("Conversation without a view = %+v, %v; want it at entry 2 with both messages", c, err)
	}
	if _, err := log.Conversation(ctx, "other-shop", conv); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Conversation of another tenant = %v, want ErrNotFound", err)
	}
	first, _ := chat.FromLog(entries[:1])
	if err := store.Project(ctx, first); err != nil {
		t.Fatal(err)
	}
	got, err := log.Refresh(ctx, []*chat.Conversation{first})
	if err != nil || len(got) != 1 || got[0].Seq != 2 || got[0].AdminCount != 1 {
		t.Fatalf("Refresh of the view at entry 1 = %+v, %v; want the conversation at entry 2", got, err)
	}
	if v, err := store.View(ctx, "shop", conv); err != nil || v.Seq != 1 {
		t.Errorf("the stored view after reads is %+v, %v; want it untouched at entry 1", v, err)
	}
}
