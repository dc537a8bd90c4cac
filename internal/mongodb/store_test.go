package mongodb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/testenv"
)

const (
	shop    = "demo-shop"
	outdoor = "acme-outdoor"
)

// t0 is the time the fixtures start at; BSON keeps milliseconds, so fixtures use no finer.
var t0 = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

// mustOpen returns a DB with indexes on a fresh database, closed when the test ends.
func mustOpen(tb testing.TB, now func() time.Time) *mongodb.DB {
	tb.Helper()
	uri, database := testenv.MustMongo(tb)
	ctx := context.Background()
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: 10 * time.Second, Now: now})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close(context.Background()) })
	if err := db.EnsureIndexes(ctx); err != nil {
		tb.Fatalf("EnsureIndexes: %v", err)
	}
	return db
}

// mustStore returns a store on a fresh database.
func mustStore(tb testing.TB) *mongodb.Store {
	tb.Helper()
	return mustOpen(tb, time.Now).Store()
}

// id returns the n-th fixture id (24 hex digits).
func id(n int) string { return fmt.Sprintf("%024x", n) }

// newConversation returns an open conversation of customer "cust-1" with one message.
func newConversation(tenantID, convID string, updated time.Time) *chat.Conversation {
	customer := chat.Participant{ID: "cust-1", Role: chat.RoleCustomer, Name: "Casey"}
	first := chat.Message{
		ID: convID[:20] + "0001", ConversationID: convID, Seq: 1, Sender: customer,
		Body: "Where is my order?", CreatedAt: updated, CustomerN: 1,
	}
	return &chat.Conversation{
		ID: convID, TenantID: tenantID, Status: chat.StatusOpen, Subject: "Order",
		Customer: customer, Participants: []chat.Participant{customer},
		CreatedAt: updated, UpdatedAt: updated,
		Version: 1, LastSeq: 1, CustomerCount: 1,
		Latest: []chat.Message{first}, Pending: []chat.Message{first},
	}
}

// mustCreate stores convs.
func mustCreate(tb testing.TB, s *mongodb.Store, convs ...*chat.Conversation) {
	tb.Helper()
	for _, c := range convs {
		if err := s.CreateConversation(context.Background(), c); err != nil {
			tb.Fatalf("CreateConversation(%s): %v", c.ID, err)
		}
	}
}

// ids returns the ids of convs.
func ids(convs []*chat.Conversation) []string {
	out := make([]string, len(convs))
	for i, c := range convs {
		out[i] = c.ID
	}
	return out
}

func TestConversationRoundTrip(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	full := newConversation(shop, id(1), t0)
	admin := chat.Participant{ID: "admin-1", Role: chat.RoleAdmin, Name: "Alex"}
	reply := chat.Message{ID: id(101), ConversationID: id(1), Seq: 2, Sender: admin, Body: "On its way", CreatedAt: t0.Add(time.Minute), CustomerN: 1, AdminN: 1}
	full.Participants = append(full.Participants, admin)
	full.Context = &chat.Context{OrderID: "o-1", ProductID: "p-9", PageURL: "https://demo-shop.example/orders/1"}
	full.Assignee = "admin-1"
	full.UpdatedAt = t0.Add(time.Minute)
	full.LastSeq, full.AdminCount, full.CustomerRead, full.TeamRead = 2, 1, 1, 1
	full.Latest = append(full.Latest, reply)
	full.Pending = []chat.Message{reply}
	replied := t0.Add(time.Minute)
	away := t0.Add(30 * time.Second)
	full.FirstReplyAt, full.FirstReplySeconds, full.AwayNoticeAt = &replied, 60, &away

	bare := newConversation(shop, id(2), t0.In(time.FixedZone("CET", 3600)))
	bare.Latest, bare.Pending = nil, nil

	for _, tc := range []struct {
		name string
		conv *chat.Conversation
	}{
		{"every field set", full},
		{"no context, no messages, no replies", bare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.CreateConversation(ctx, tc.conv); err != nil {
				t.Fatalf("CreateConversation: %v", err)
			}
			got, err := s.Conversation(ctx, shop, tc.conv.ID)
			if err != nil {
				t.Fatalf("Conversation: %v", err)
			}
			if diff := cmp.Diff(tc.conv, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Conversation(...) differs from what was created (-want +got):\n%s", diff)
			}
			if got.UpdatedAt.Location() != time.UTC {
				t.Errorf("UpdatedAt in %v, want UTC", got.UpdatedAt.Location())
			}
		})
	}
}

func TestCreateConversationTwiceConflicts(t *testing.T) {
	s := mustStore(t)
	c := newConversation(shop, id(1), t0)
	mustCreate(t, s, c)
	if err := s.CreateConversation(context.Background(), c); !errors.Is(err, chat.ErrConflict) {
		t.Errorf("CreateConversation(same id) = %v, want ErrConflict", err)
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	c := newConversation(shop, id(1), t0)
	mustCreate(t, s, c)
	if err := s.InsertMessages(ctx, shop, c.Pending); err != nil {
		t.Fatalf("InsertMessages: %v", err)
	}

	if _, err := s.Conversation(ctx, outdoor, c.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Conversation(other tenant) = %v, want ErrNotFound", err)
	}
	theirs := *c
	theirs.TenantID, theirs.Version, theirs.Subject = outdoor, 2, "hijacked"
	if err := s.UpdateConversation(ctx, &theirs, 1); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("UpdateConversation(other tenant) = %v, want ErrNotFound", err)
	}
	if msgs, err := s.Messages(ctx, outdoor, c.ID, 0, 10); err != nil || len(msgs) != 0 {
		t.Errorf("Messages(other tenant) = %d messages, %v; want none", len(msgs), err)
	}
	if _, err := s.Message(ctx, outdoor, c.ID, c.Pending[0].ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Message(other tenant) = %v, want ErrNotFound", err)
	}
	if convs, err := s.ListConversations(ctx, outdoor, chat.ListFilter{}, nil, 10); err != nil || len(convs) != 0 {
		t.Errorf("ListConversations(other tenant) = %v, %v; want none", ids(convs), err)
	}
	if err := s.ClearPending(ctx, outdoor, c.ID, c.Pending[0].ID); err != nil {
		t.Fatalf("ClearPending(other tenant): %v", err)
	}
	got, err := s.Conversation(ctx, shop, c.ID)
	if err != nil {
		t.Fatalf("Conversation: %v", err)
	}
	if got.Subject != c.Subject || len(got.Pending) != 1 {
		t.Errorf("after the other tenant's writes: subject %q, %d pending; want %q, 1", got.Subject, len(got.Pending), c.Subject)
	}
}

func TestUpdateConversation(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	c := newConversation(shop, id(1), t0)
	mustCreate(t, s, c)

	read := *c
	read.Version, read.TeamRead = 2, 1
	if err := s.UpdateConversation(ctx, &read, 1); err != nil {
		t.Fatalf("UpdateConversation(prev 1): %v", err)
	}
	got, err := s.Conversation(ctx, shop, c.ID)
	if err != nil {
		t.Fatalf("Conversation: %v", err)
	}
	if got.Version != 2 || got.TeamRead != 1 {
		t.Errorf("after update: version %d, team read %d; want 2, 1", got.Version, got.TeamRead)
	}

	for _, tc := range []struct {
		name string
		conv *chat.Conversation
		prev int64
		want error
	}{
		{"a stale version conflicts", &chat.Conversation{ID: c.ID, TenantID: shop, Version: 2}, 1, chat.ErrConflict},
		{"a missing conversation is not found", newConversation(shop, id(99), t0), 1, chat.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.UpdateConversation(ctx, tc.conv, tc.prev); !errors.Is(err, tc.want) {
				t.Errorf("UpdateConversation(prev %d) = %v, want %v", tc.prev, err, tc.want)
			}
		})
	}
	if got, _ := s.Conversation(ctx, shop, c.ID); got.Version != 2 {
		t.Errorf("a conflicting update changed the conversation to version %d", got.Version)
	}
}

func TestListConversationsPagesEachOnceInOrder(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	var convs []*chat.Conversation
	for i := range 25 {
		// Five conversations share each time, so paging must break ties by id.
		c := newConversation(shop, id(1000+(i*7)%25), t0.Add(time.Duration(i/5)*time.Second))
		convs = append(convs, c)
	}
	mustCreate(t, s, convs...)
	mustCreate(t, s, newConversation(outdoor, id(5000), t0.Add(time.Hour)))

	want := slices.Clone(convs)
	sort.Slice(want, func(i, j int) bool {
		if !want[i].UpdatedAt.Equal(want[j].UpdatedAt) {
			return want[i].UpdatedAt.After(want[j].UpdatedAt)
		}
		return want[i].ID > want[j].ID
	})

	var got []string
	var after *chat.Position
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("paging does not end")
		}
		list, err := s.ListConversations(ctx, shop, chat.ListFilter{}, after, 7)
		if err != nil {
			t.Fatalf("ListConversations(page %d): %v", page, err)
		}
		got = append(got, ids(list)...)
		if len(list) < 7 {
			break
		}
		last := list[len(list)-1]
		after = &chat.Position{UpdatedAt: last.UpdatedAt, ID: last.ID}
	}
	if diff := cmp.Diff(ids(want), got); diff != "" {
		t.Errorf("paged ids differ (-want +got):\n%s", diff)
	}
}

func TestListConversationsFilters(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	build := func(n int, customer string, status chat.Status, assignee string, unread bool) *chat.Conversation {
		c := newConversation(shop, id(n), at(n))
		c.Customer.ID, c.Participants[0].ID = customer, customer
		c.Status, c.Assignee = status, assignee
		if !unread {
			c.TeamRead = c.CustomerCount
		}
		return c
	}
	mustCreate(t, s,
		build(1, "cust-1", chat.StatusOpen, "", true),
		build(2, "cust-1", chat.StatusResolved, "admin-1", false),
		build(3, "cust-2", chat.StatusOpen, "admin-1", false),
		build(4, "cust-2", chat.StatusOpen, "admin-2", true),
		build(5, "cust-3", chat.StatusResolved, "", false),
	)
	admin1, none := "admin-1", ""
	for _, tc := range []struct {
		name   string
		filter chat.ListFilter
		want   []string
	}{
		{"everything", chat.ListFilter{}, []string{id(5), id(4), id(3), id(2), id(1)}},
		{"one customer's", chat.ListFilter{CustomerID: "cust-1"}, []string{id(2), id(1)}},
		{"open ones", chat.ListFilter{Status: chat.StatusOpen}, []string{id(4), id(3), id(1)}},
		{"assigned to me", chat.ListFilter{Assignee: &admin1}, []string{id(3), id(2)}},
		{"unassigned", chat.ListFilter{Assignee: &none}, []string{id(5), id(1)}},
		{"unread by the team", chat.ListFilter{TeamUnread: true}, []string{id(4), id(1)}},
		{"open and unassigned", chat.ListFilter{Status: chat.StatusOpen, Assignee: &none}, []string{id(1)}},
		{"a customer's open unread", chat.ListFilter{CustomerID: "cust-2", Status: chat.StatusOpen, TeamUnread: true}, []string{id(4)}},
		{"a customer's assigned to me", chat.ListFilter{CustomerID: "cust-2", Assignee: &admin1}, []string{id(3)}},
		{"nothing matches", chat.ListFilter{CustomerID: "cust-3", Status: chat.StatusOpen}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListConversations(ctx, shop, tc.filter, nil, 10)
			if err != nil {
				t.Fatalf("ListConversations: %v", err)
			}
			if diff := cmp.Diff(tc.want, ids(list)); diff != "" {
				t.Errorf("ListConversations(%+v) ids (-want +got):\n%s", tc.filter, diff)
			}
		})
	}

	t.Run("reading clears team unread", func(t *testing.T) {
		c, err := s.Conversation(ctx, shop, id(4))
		if err != nil {
			t.Fatalf("Conversation: %v", err)
		}
		c.TeamRead, c.Version = c.CustomerCount, c.Version+1
		if err := s.UpdateConversation(ctx, c, c.Version-1); err != nil {
			t.Fatalf("UpdateConversation: %v", err)
		}
		list, err := s.ListConversations(ctx, shop, chat.ListFilter{TeamUnread: true}, nil, 10)
		if err != nil {
			t.Fatalf("ListConversations: %v", err)
		}
		if diff := cmp.Diff([]string{id(1)}, ids(list)); diff != "" {
			t.Errorf("unread after reading (-want +got):\n%s", diff)
		}
	})
}

func TestAssignedOpen(t *testing.T) {
	s := mustStore(t)
	open1 := newConversation(shop, id(1), t0)
	open1.Assignee = "admin-1"
	open2 := newConversation(shop, id(2), t0.Add(time.Minute))
	open2.Assignee = "admin-1"
	resolved := newConversation(shop, id(3), t0)
	resolved.Assignee, resolved.Status = "admin-1", chat.StatusResolved
	other := newConversation(shop, id(4), t0)
	other.Assignee = "admin-2"
	elsewhere := newConversation(outdoor, id(5), t0)
	elsewhere.Assignee = "admin-1"
	mustCreate(t, s, open1, open2, resolved, other, elsewhere)

	got, err := s.AssignedOpen(context.Background(), shop, "admin-1", 10)
	if err != nil {
		t.Fatalf("AssignedOpen: %v", err)
	}
	if diff := cmp.Diff([]string{id(2), id(1)}, ids(got)); diff != "" {
		t.Errorf("AssignedOpen(admin-1) (-want +got):\n%s", diff)
	}
	if got, _ := s.AssignedOpen(context.Background(), shop, "admin-1", 1); len(got) != 1 {
		t.Errorf("AssignedOpen(limit 1) = %d conversations", len(got))
	}
}

func TestFirstReplySeconds(t *testing.T) {
	s := mustStore(t)
	for i, secs := range []int64{30, 90, 600, 45} {
		c := newConversation(shop, id(i+1), t0)
		replied := t0.Add(time.Duration(i) * time.Hour)
		c.FirstReplyAt, c.FirstReplySeconds = &replied, secs
		mustCreate(t, s, c)
	}
	mustCreate(t, s, newConversation(shop, id(10), t0.Add(5*time.Hour))) // never answered
	other := newConversation(outdoor, id(11), t0)
	replied := t0.Add(5 * time.Hour)
	other.FirstReplyAt, other.FirstReplySeconds = &replied, 1
	mustCreate(t, s, other)

	for _, tc := range []struct {
		name  string
		since time.Time
		limit int
		want  []int64
	}{
		{"all, newest first", t0, 10, []int64{45, 600, 90, 30}},
		{"since is inclusive", t0.Add(time.Hour), 10, []int64{45, 600, 90}},
		{"limited", t0, 2, []int64{45, 600}},
		{"none yet", t0.Add(24 * time.Hour), 10, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.FirstReplySeconds(context.Background(), shop, tc.since, tc.limit)
			if err != nil {
				t.Fatalf("FirstReplySeconds: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("FirstReplySeconds(%v, %d) (-want +got):\n%s", tc.since, tc.limit, diff)
			}
		})
	}
}

// history returns n messages of conversation convID, Seq 1..n.
func history(convID string, n int) []chat.Message {
	customer := chat.Participant{ID: "cust-1", Role: chat.RoleCustomer, Name: "Casey"}
	msgs := make([]chat.Message, n)
	for i := range msgs {
		msgs[i] = chat.Message{
			ID: id(10000 + i), ConversationID: convID, Seq: int64(i + 1), Sender: customer,
			Body: fmt.Sprintf("message %d", i+1), CreatedAt: t0.Add(time.Duration(i) * time.Second), CustomerN: int64(i + 1),
		}
	}
	return msgs
}

// seqs returns the Seq of msgs.
func seqs(msgs []chat.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func TestInsertMessagesTwiceIsIdempotent(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	msgs := history(id(1), 4)
	if err := s.InsertMessages(ctx, shop, msgs[:3]); err != nil {
		t.Fatalf("InsertMessages: %v", err)
	}
	if err := s.InsertMessages(ctx, shop, msgs); err != nil {
		t.Fatalf("InsertMessages(again, with one more): %v", err)
	}
	if err := s.InsertMessages(ctx, shop, nil); err != nil {
		t.Fatalf("InsertMessages(none): %v", err)
	}
	got, err := s.Messages(ctx, shop, id(1), 0, 10)
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if diff := cmp.Diff([]int64{4, 3, 2, 1}, seqs(got)); diff != "" {
		t.Errorf("Messages seqs (-want +got):\n%s", diff)
	}
}

func TestMessagesPaging(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	msgs := history(id(1), 10)
	if err := s.InsertMessages(ctx, shop, msgs); err != nil {
		t.Fatalf("InsertMessages: %v", err)
	}

	for _, tc := range []struct {
		name   string
		before int64
		limit  int
		want   []int64
	}{
		{"from the newest", 0, 4, []int64{10, 9, 8, 7}},
		{"before a seq", 7, 4, []int64{6, 5, 4, 3}},
		{"the oldest", 3, 4, []int64{2, 1}},
		{"before the first", 1, 4, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Messages(ctx, shop, id(1), tc.before, tc.limit)
			if err != nil {
				t.Fatalf("Messages: %v", err)
			}
			if diff := cmp.Diff(tc.want, seqs(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Messages(before %d, limit %d) (-want +got):\n%s", tc.before, tc.limit, diff)
			}
		})
	}

	got, err := s.Message(ctx, shop, id(1), msgs[4].ID)
	if err != nil {
		t.Fatalf("Message: %v", err)
	}
	if diff := cmp.Diff(msgs[4], *got); diff != "" {
		t.Errorf("Message(...) (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ name, conv, msg string }{
		{"unknown id", id(1), id(1)},
		{"id of another conversation", id(3), msgs[4].ID},
	} {
		if _, err := s.Message(ctx, shop, tc.conv, tc.msg); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Message(%s) = %v, want ErrNotFound", tc.name, err)
		}
	}
}

func TestClearPending(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	c := newConversation(shop, id(1), t0)
	c.Pending = history(c.ID, 2)
	mustCreate(t, s, c)
	pending := func() int {
		t.Helper()
		got, err := s.Conversation(ctx, shop, c.ID)
		if err != nil {
			t.Fatalf("Conversation: %v", err)
		}
		return len(got.Pending)
	}

	if err := s.ClearPending(ctx, shop, c.ID, c.Pending[1].ID); err != nil {
		t.Fatalf("ClearPending(second id): %v", err)
	}
	if n := pending(); n != 2 {
		t.Errorf("ClearPending(not the first pending id) left %d pending, want 2", n)
	}
	if err := s.ClearPending(ctx, shop, c.ID, c.Pending[0].ID); err != nil {
		t.Fatalf("ClearPending(first id): %v", err)
	}
	if n := pending(); n != 0 {
		t.Errorf("ClearPending(first pending id) left %d pending, want 0", n)
	}
	if err := s.ClearPending(ctx, shop, c.ID, c.Pending[0].ID); err != nil {
		t.Errorf("ClearPending(nothing pending) = %v, want nil", err)
	}
	if err := s.ClearPending(ctx, shop, id(99), c.Pending[0].ID); err != nil {
		t.Errorf("ClearPending(missing conversation) = %v, want nil", err)
	}
}

func TestEnsureIndexesTwice(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	ctx := context.Background()
	var logs bytes.Buffer
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close(ctx)
	for i := range 2 {
		if err := db.EnsureIndexes(ctx); err != nil {
			t.Fatalf("EnsureIndexes(%d) = %v, want nil", i+1, err)
		}
	}

	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer client.Disconnect(ctx)
	want := map[string][]string{
		"conversations": {"tenant_updated", "tenant_customer_updated", "tenant_status_updated", "tenant_assignee_updated", "tenant_team_unread_updated", "tenant_first_reply"},
		"messages":      {"tenant_conversation_seq"},
		"idempotency":   {"expires"},
	}
	// FerretDB has no TTL indexes: EnsureIndexes logs that and goes on without it.
	noTTL := strings.Contains(logs.String(), "no TTL indexes")
	if noTTL {
		want["idempotency"] = nil
		t.Log("the server has no TTL indexes")
	}
	for coll, names := range want {
		specs, err := client.Database(database).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatalf("ListSpecifications(%s): %v", coll, err)
		}
		have := map[string]bool{}
		for _, spec := range specs {
			have[spec.Name] = true
			if spec.Name == "tenant_conversation_seq" && (spec.Unique == nil || !*spec.Unique) {
				t.Errorf("index %s.%s is not unique", coll, spec.Name)
			}
		}
		for _, name := range names {
			if !have[name] {
				t.Errorf("index %s.%s missing; have %v", coll, name, have)
			}
		}
	}
}

func TestUnavailableDatabase(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx := context.Background()
	db, err := mongodb.Open(ctx, "mongodb://"+addr+"/?directConnection=true", "down", mongodb.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(closed port) = %v, want a DB that fails later", err)
	}
	defer db.Close(ctx)
	s := db.Store()
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"Ping", func() error { return db.Ping(ctx) }},
		{"EnsureIndexes", func() error { return db.EnsureIndexes(ctx) }},
		{"Conversation", func() error { _, err := s.Conversation(ctx, shop, id(1)); return err }},
		{"CreateConversation", func() error { return s.CreateConversation(ctx, newConversation(shop, id(1), t0)) }},
		{"UpdateConversation", func() error { return s.UpdateConversation(ctx, newConversation(shop, id(1), t0), 1) }},
		{"ListConversations", func() error { _, err := s.ListConversations(ctx, shop, chat.ListFilter{}, nil, 10); return err }},
		{"InsertMessages", func() error { return s.InsertMessages(ctx, shop, history(id(1), 1)) }},
		{"Messages", func() error { _, err := s.Messages(ctx, shop, id(1), 0, 10); return err }},
		{"Overrides", func() error { _, err := s.Overrides(ctx, shop); return err }},
		{"Reserve", func() error { _, _, err := s.Reserve(ctx, record("key", "seed", t0)); return err }},
		{"a canceled request", func() error { _, err := s.Conversation(canceled, shop, id(1)); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.op()
			if !errors.Is(err, chat.ErrUnavailable) {
				t.Errorf("%s = %v, want ErrUnavailable", tc.name, err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%s took %v, want about the 300ms timeout", tc.name, took)
			}
			if msg := chat.ErrorCode(err); msg != chat.Unavailable {
				t.Errorf("ErrorCode(%v) = %s, want %s", err, msg, chat.Unavailable)
			}
		})
	}
}
