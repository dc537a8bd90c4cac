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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
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

// mustOpenOn returns a DB with indexes on a fresh database of srv, its operations bounded by
// timeout and closed when the test ends, with the database's URI and name.
func mustOpenOn(tb testing.TB, srv testenv.MongoServer, timeout time.Duration) (db *mongodb.DB, uri, database string) {
	tb.Helper()
	uri, database = srv.MustDatabase(tb)
	ctx := context.Background()
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: timeout})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close(context.Background()) })
	if err := db.EnsureIndexes(ctx); err != nil {
		tb.Fatalf("EnsureIndexes: %v", err)
	}
	return db, uri, database
}

// mustStore returns a store on a fresh database.
func mustStore(tb testing.TB) *mongodb.Store {
	tb.Helper()
	return mustOpen(tb, time.Now).Store()
}

// id returns the n-th fixture id (24 hex digits).
func id(n int) string { return fmt.Sprintf("%024x", n) }

// casey is the customer of the fixtures.
var casey = chat.Participant{ID: "cust-1", Role: chat.RoleCustomer, Name: "Casey"}

// newConversation returns the view of an open conversation of casey with one message, after
// entry 1 of its log.
func newConversation(tenantID, convID string, updated time.Time) *chat.Conversation {
	first := chat.Message{
		ID: convID[:20] + "0001", ConversationID: convID, Seq: 1, Sender: casey,
		Body: "Where is my order?", CreatedAt: updated, CustomerN: 1,
	}
	return &chat.Conversation{
		Header: chat.Header{ID: convID, TenantID: tenantID, Subject: "Order", Customer: casey, CreatedAt: updated},
		State:  chat.State{Seq: 1, Status: chat.StatusOpen, UpdatedAt: updated, CustomerCount: 1},
		Latest: []chat.Message{first},
	}
}

// mustCreate stores the views convs.
func mustCreate(tb testing.TB, s *mongodb.Store, convs ...*chat.Conversation) {
	tb.Helper()
	for _, c := range convs {
		if err := s.Project(context.Background(), c); err != nil {
			tb.Fatalf("Project(%s): %v", c.ID, err)
		}
	}
}

// logOf returns n entries of conversation convID of casey, seq 1..n: messages of casey, with a
// read entry of an admin at every third.
func logOf(tenantID, convID string, n int) []chat.Entry {
	admin := chat.Participant{ID: "admin-1", Role: chat.RoleAdmin, Name: "Alex"}
	entries := make([]chat.Entry, n)
	var st chat.State
	st.Status = chat.StatusOpen
	for i := range entries {
		seq := int64(i + 1)
		at := t0.Add(time.Duration(i) * time.Second)
		st.Seq = seq
		e := chat.Entry{ID: fmt.Sprintf("%s-%s-%d", tenantID, convID, seq), TenantID: tenantID, ConversationID: convID, CustomerID: casey.ID, Seq: seq, At: at}
		if seq%3 == 0 {
			e.Kind, e.By = chat.EntryRead, admin
			st.TeamRead = st.CustomerCount
		} else {
			st.CustomerCount++
			st.UpdatedAt = at
			e.Kind, e.By = chat.EntryMessage, casey
			e.Message = &chat.Message{ID: e.ID, ConversationID: convID, Seq: seq, Sender: casey,
				Body: fmt.Sprintf("message %d", seq), CreatedAt: at, CustomerN: st.CustomerCount}
		}
		if seq == 1 {
			e.Header = &chat.Header{ID: convID, TenantID: tenantID, Subject: "Order", Customer: casey, CreatedAt: at}
		}
		e.State = st
		e.Pending = true // as the log appends every entry
		entries[i] = e
	}
	return entries
}

// ignorePending compares entries without their Pending mark, which only Pending reports (it may
// be kept in the outbox rather than on the entries: mongodb.PendingMarks).
var ignorePending = cmpopts.IgnoreFields(chat.Entry{}, "Pending")

// mustAppend appends entries, all of which must be new.
func mustAppend(tb testing.TB, s *mongodb.Store, entries []chat.Entry) {
	tb.Helper()
	if n, err := s.Append(context.Background(), entries); err != nil || n != len(entries) {
		tb.Fatalf("Append(%d entries) = %d, %v", len(entries), n, err)
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
	ctx := context.Background()
	full := newConversation(shop, id(1), t0)
	admin := chat.Participant{ID: "admin-1", Role: chat.RoleAdmin, Name: "Alex"}
	reply := chat.Message{ID: id(101), ConversationID: id(1), Seq: 3, Sender: admin, Body: "On its way", CreatedAt: t0.Add(time.Minute), CustomerN: 1, AdminN: 1}
	full.Admins = []chat.Participant{admin}
	full.Context = &chat.ShopContext{OrderID: "o-1", ProductID: "p-9", PageURL: "https://demo-shop.example/orders/1"}
	full.Assignee = "admin-1"
	full.UpdatedAt = t0.Add(time.Minute)
	full.Seq, full.AdminCount, full.CustomerRead, full.TeamRead = 4, 1, 1, 1
	full.Latest = append(full.Latest, reply)
	replied := t0.Add(time.Minute)
	away := t0.Add(30 * time.Second)
	full.FirstReplyAt, full.FirstReplySeconds, full.AwayNoticeAt = &replied, 60, &away

	bare := newConversation(shop, id(2), t0.In(time.FixedZone("CET", 3600)))
	bare.Latest = nil

	// The views are stored one by one (Project) or in bulk (ProjectNew); either way they read
	// back the same.
	for _, store := range []struct {
		name    string
		project func(*mongodb.Store, *chat.Conversation) error
	}{
		{"Project", func(s *mongodb.Store, c *chat.Conversation) error { return s.Project(ctx, c) }},
		{"ProjectNew", func(s *mongodb.Store, c *chat.Conversation) error { return s.ProjectNew(ctx, []*chat.Conversation{c}) }},
	} {
		s := mustStore(t)
		for _, tc := range []struct {
			name string
			conv *chat.Conversation
		}{
			{"every field set", full},
			{"no context, no messages, no replies", bare},
		} {
			t.Run(store.name+"/"+tc.name, func(t *testing.T) {
				if err := store.project(s, tc.conv); err != nil {
					t.Fatalf("%s: %v", store.name, err)
				}
				got, err := s.View(ctx, shop, tc.conv.ID)
				if err != nil {
					t.Fatalf("View: %v", err)
				}
				if diff := cmp.Diff(tc.conv, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
					t.Errorf("Conversation(...) differs from what was projected (-want +got):\n%s", diff)
				}
				if got.UpdatedAt.Location() != time.UTC {
					t.Errorf("UpdatedAt in %v, want UTC", got.UpdatedAt.Location())
				}
			})
		}
	}
}

func TestProjectNewKeepsTheViewsThatExist(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	stored := newConversation(shop, id(1), t0)
	stored.Seq, stored.Subject = 5, "stored"
	mustCreate(t, s, stored)
	older := newConversation(shop, id(1), t0)
	older.Seq, older.Subject = 2, "older"
	fresh := []*chat.Conversation{older, newConversation(shop, id(2), t0.Add(time.Second)), newConversation(shop, id(3), t0.Add(2*time.Second))}
	if err := s.ProjectNew(ctx, fresh); err != nil {
		t.Fatalf("ProjectNew(a stored one and 2 new) = %v", err)
	}
	got, err := s.ListConversations(ctx, shop, chat.ListFilter{}, nil, 10)
	if err != nil {
		t.Fatalf("ListConversations: %v", err)
	}
	if want := []string{id(3), id(2), id(1)}; !slices.Equal(ids(got), want) {
		t.Errorf("ListConversations = %v, want %v", ids(got), want)
	}
	if len(got) == 3 && got[2].Subject != "stored" {
		t.Errorf("after ProjectNew the stored view is %q (seq %d), want %q", got[2].Subject, got[2].Seq, "stored")
	}
}

func TestProjectOnlyMovesForward(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	at := func(seq int64, subject string) *chat.Conversation {
		c := newConversation(shop, id(1), t0)
		c.Seq, c.Subject = seq, subject
		return c
	}
	for _, tc := range []struct {
		name    string
		project *chat.Conversation
		want    string
	}{
		{"a missing view is created", at(2, "second"), "second"},
		{"a newer view replaces it", at(5, "fifth"), "fifth"},
		{"an older view does not", at(4, "fourth"), "fifth"},
		{"nor the same one again", at(5, "fifth again"), "fifth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Project(ctx, tc.project); err != nil {
				t.Fatalf("Project(seq %d) = %v", tc.project.Seq, err)
			}
			got, err := s.View(ctx, shop, id(1))
			if err != nil {
				t.Fatalf("View: %v", err)
			}
			if got.Subject != tc.want {
				t.Errorf("after Project(seq %d) the view is %q (seq %d), want %q", tc.project.Seq, got.Subject, got.Seq, tc.want)
			}
		})
	}
}

func TestAppendTakesEachSequenceNumberOnce(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	log := logOf(shop, id(1), 6)
	mustAppend(t, s, log[:3])

	taken := log[2]
	taken.ID = id(900) // another writer's entry for seq 3
	reused := log[4]
	reused.ID = log[1].ID // a new seq under a stored id
	for _, tc := range []struct {
		name    string
		entries []chat.Entry
		want    int
	}{
		{"a sequence number taken first", []chat.Entry{taken, log[3]}, 0},
		{"an id taken after one new entry", []chat.Entry{log[3], reused, log[5]}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.Append(ctx, tc.entries)
			if n != tc.want || !errors.Is(err, chat.ErrConflict) {
				t.Errorf("Append = %d, %v; want %d, ErrConflict", n, err, tc.want)
			}
		})
	}
	// The same sequence numbers of another conversation, or of another tenant, are free.
	mustAppend(t, s, logOf(shop, id(2), 3))
	mustAppend(t, s, logOf(outdoor, id(1), 3))

	got, err := s.Entry(ctx, shop, id(1), log[1].ID)
	if err != nil {
		t.Fatalf("Entry: %v", err)
	}
	want := log[1]
	if diff := cmp.Diff(want, *got, cmpopts.EquateEmpty(), ignorePending); diff != "" {
		t.Errorf("Entry(...) differs from what was appended (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"Entry of an unknown id", func() error { _, err := s.Entry(ctx, shop, id(1), id(999)); return err }},
		{"Entry of another conversation", func() error { _, err := s.Entry(ctx, shop, id(3), log[1].ID); return err }},
	} {
		if err := tc.op(); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("%s = %v, want ErrNotFound", tc.name, err)
		}
	}
}

func TestEntriesAfter(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	log := logOf(shop, id(1), 11) // more than are looked up one by one
	mustAppend(t, s, log)
	mustAppend(t, s, logOf(shop, id(2), 3))
	mustAppend(t, s, logOf(outdoor, id(1), 13))

	seqsOf := func(entries []chat.Entry) []int64 {
		out := []int64{}
		for _, e := range entries {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		tenant string
		conv   string
		after  int64
		want   []int64
	}{
		{"the whole log", shop, id(1), 0, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"the last two", shop, id(1), 9, []int64{10, 11}},
		{"after the last", shop, id(1), 11, []int64{}},
		{"a log of another conversation", shop, id(2), 1, []int64{2, 3}},
		{"an empty log", shop, id(3), 0, []int64{}},
		{"another tenant's log", outdoor, id(1), 10, []int64{11, 12, 13}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.EntriesAfter(ctx, tc.tenant, tc.conv, tc.after)
			if err != nil {
				t.Fatalf("EntriesAfter: %v", err)
			}
			if diff := cmp.Diff(tc.want, seqsOf(got)); diff != "" {
				t.Errorf("EntriesAfter(%s, %d) seqs (-want +got):\n%s", tc.conv, tc.after, diff)
			}
		})
	}
	got, err := s.EntriesAfter(ctx, shop, id(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(log, got, cmpopts.EquateEmpty(), ignorePending); diff != "" {
		t.Errorf("EntriesAfter(0) differs from what was appended (-want +got):\n%s", diff)
	}
}

func TestAppendRacesHaveOneWinner(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	base := logOf(shop, id(1), 1)[0]
	mustAppend(t, s, []chat.Entry{base})
	const racers = 8
	for seq := int64(2); seq <= 6; seq++ {
		var wins atomic.Int64
		var wg sync.WaitGroup
		for r := range racers {
			wg.Go(func() {
				e := base
				e.ID, e.Seq, e.State.Seq, e.Header = fmt.Sprintf("%020d%04d", seq, r), seq, seq, nil
				n, err := s.Append(ctx, []chat.Entry{e})
				switch {
				case err == nil && n == 1:
					wins.Add(1)
				case !errors.Is(err, chat.ErrConflict):
					t.Errorf("Append(seq %d) = %d, %v", seq, n, err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("seq %d: %d of %d racing appends won, want 1", seq, wins.Load(), racers)
		}
	}
}

// TestPendingEntriesUntilPublished checks the relay's queries, with the pending marks on the
// entries and in the outbox: an entry appended pending is pending until Published, of every
// tenant, oldest first; Published clears exactly the entries it is given; an entry appended
// without asking is not pending.
func TestPendingEntriesUntilPublished(t *testing.T) {
	for _, marks := range []struct {
		name string
		m    mongodb.PendingMarks
	}{{"on the entries", mongodb.PendingOnEntries}, {"in the outbox", mongodb.PendingInOutbox}} {
		t.Run(marks.name, func(t *testing.T) {
			uri, database := testenv.MustMongo(t)
			ctx := context.Background()
			db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: 10 * time.Second, PendingMarks: marks.m})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close(ctx) })
			if err := db.EnsureIndexes(ctx); err != nil {
				t.Fatal(err)
			}
			s := db.Store()
			mine := logOf(shop, id(1), 4)      // at t0 .. t0+3s
			theirs := logOf(outdoor, id(1), 2) // at t0 .. t0+1s
			settled := logOf(shop, id(2), 2)
			for i := range settled {
				settled[i].Pending = false // seeded data: nobody's events
			}
			mustAppend(t, s, mine)
			mustAppend(t, s, theirs)
			mustAppend(t, s, settled)
			keys := func(entries []chat.Entry) []string {
				out := []string{}
				for _, e := range entries {
					if !e.Pending {
						t.Errorf("Pending returned entry %s:%d, which is not pending", e.ConversationID, e.Seq)
					}
					out = append(out, fmt.Sprintf("%s/%d", e.TenantID, e.Seq))
				}
				slices.Sort(out)
				return out
			}
			pending := func(limit int) []string {
				t.Helper()
				got, err := s.Pending(ctx, limit)
				if err != nil {
					t.Fatalf("Pending: %v", err)
				}
				return keys(got)
			}
			// The oldest first: entries 1 of both tenants at t0, then their entries 2 at t0+1s.
			if diff := cmp.Diff([]string{outdoor + "/1", outdoor + "/2", shop + "/1", shop + "/2"}, pending(4)); diff != "" {
				t.Errorf("Pending(limit 4) (-want +got):\n%s", diff)
			}
			if err := s.Published(ctx, []chat.Entry{mine[0], mine[2], theirs[1]}); err != nil {
				t.Fatalf("Published: %v", err)
			}
			if diff := cmp.Diff([]string{outdoor + "/1", shop + "/2", shop + "/4"}, pending(100)); diff != "" {
				t.Errorf("Pending after Published (-want +got):\n%s", diff)
			}
			// What is stored is otherwise what was appended.
			got, err := s.EntriesAfter(ctx, shop, id(1), 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(mine, got, cmpopts.EquateEmpty(), ignorePending); diff != "" {
				t.Errorf("the log after Published (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStaleOutboxMarks has marks in the outbox for entries that are not there: a writer's that
// lost the place to another, and one on its way. Pending returns the entries that are there,
// each once, drops the mark of the place another writer took, and keeps the other.
func TestStaleOutboxMarks(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	ctx := context.Background()
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: 10 * time.Second, PendingMarks: mongodb.PendingInOutbox})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(ctx) })
	s := db.Store()
	entries := logOf(shop, id(1), 2)
	mustAppend(t, s, entries)
	// Another writer's entry for place 2, refused: its mark stays behind.
	rival := entries[1]
	rival.ID = "rival"
	if n, err := s.Append(ctx, []chat.Entry{rival}); n != 0 || !errors.Is(err, chat.ErrConflict) {
		t.Fatalf("Append(a taken place) = %d, %v", n, err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	outbox := client.Database(database).Collection("outbox")
	relayMarks := map[string]any{"hook": map[string]any{"$ne": true}} // webhooks' marks aside
	if n, err := outbox.CountDocuments(ctx, relayMarks); err != nil || n != 3 {
		t.Fatalf("the outbox holds %d marks (%v), want the two entries' and the rival's", n, err)
	}
	// A mark of an entry that never came, and not for long: its writer may still append it.
	if _, err := outbox.InsertOne(ctx, map[string]any{"_id": "in flight", "key": shop + ":" + id(1) + ":3", "eid": "next",
		"tenant_id": shop, "conversation_id": id(1), "at": t0, "marked": time.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, e := range got {
		seqs = append(seqs, e.Seq)
	}
	slices.Sort(seqs)
	if diff := cmp.Diff([]int64{1, 2}, seqs); diff != "" {
		t.Errorf("Pending (-want +got):\n%s", diff)
	}
	// Webhooks' marks go the same way.
	hooked, marks, err := s.Hooked(ctx, 10)
	if err != nil || len(hooked) != 2 || len(marks) != 2 || hooked[0].Seq+hooked[1].Seq != 3 {
		t.Errorf("Hooked = %d entries, %d marks, %v; want the two entries", len(hooked), len(marks), err)
	}
	if n, err := outbox.CountDocuments(ctx, map[string]any{"eid": "rival"}); err != nil || n != 0 {
		t.Errorf("the mark of the rival's refused entry is still there (%d, %v)", n, err)
	}
	if n, err := outbox.CountDocuments(ctx, map[string]any{"_id": "in flight"}); err != nil || n != 1 {
		t.Errorf("the mark of an entry on its way was dropped (%d, %v)", n, err)
	}
}

// TestFollowed checks the readers' look-up of the entry after each view.
func TestFollowed(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	mustAppend(t, s, logOf(shop, id(1), 3))
	mustAppend(t, s, logOf(shop, id(2), 1))
	mustAppend(t, s, logOf(outdoor, id(3), 5))
	at := func(tenantID string, n int, seq int64) *chat.Conversation {
		c := newConversation(tenantID, id(n), t0)
		c.Seq = seq
		return c
	}
	views := []*chat.Conversation{
		at(shop, 1, 1),    // entries 2 and 3 follow
		at(shop, 1, 3),    // at the end
		at(shop, 2, 1),    // at the end
		at(shop, 3, 1),    // another tenant's conversation of that id has more
		at(outdoor, 3, 4), // entry 5 follows
	}
	got, err := s.Followed(ctx, views)
	if err != nil {
		t.Fatalf("Followed: %v", err)
	}
	if diff := cmp.Diff([]bool{true, false, false, false, true}, got); diff != "" {
		t.Errorf("Followed (-want +got):\n%s", diff)
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	c := newConversation(shop, id(1), t0)
	mustCreate(t, s, c)
	mustAppend(t, s, logOf(shop, id(1), 2))

	if _, err := s.View(ctx, outdoor, c.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Conversation(other tenant) = %v, want ErrNotFound", err)
	}
	theirs := newConversation(outdoor, c.ID, t0)
	theirs.Seq, theirs.Subject = 9, "hijacked"
	if err := s.Project(ctx, theirs); err != nil {
		t.Errorf("Project(other tenant) = %v", err)
	}
	if msgs, err := s.Messages(ctx, outdoor, c.ID, 0, 10); err != nil || len(msgs) != 0 {
		t.Errorf("Messages(other tenant) = %d messages, %v; want none", len(msgs), err)
	}
	if got, err := s.EntriesAfter(ctx, outdoor, c.ID, 0); err != nil || len(got) != 0 {
		t.Errorf("EntriesAfter(other tenant) = %d entries, %v; want none", len(got), err)
	}
	if convs, err := s.ListConversations(ctx, outdoor, chat.ListFilter{}, nil, 10); err != nil || len(convs) != 0 {
		t.Errorf("ListConversations(other tenant) = %v, %v; want none", ids(convs), err)
	}
	got, err := s.View(ctx, shop, c.ID)
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if got.Subject != c.Subject || got.Seq != c.Seq {
		t.Errorf("after the other tenant's writes: subject %q at seq %d; want %q at %d", got.Subject, got.Seq, c.Subject, c.Seq)
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
		c.Customer.ID = customer
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
		c, err := s.View(ctx, shop, id(4))
		if err != nil {
			t.Fatalf("View: %v", err)
		}
		c.TeamRead, c.Seq = c.CustomerCount, c.Seq+1
		if err := s.Project(ctx, c); err != nil {
			t.Fatalf("Project: %v", err)
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

// seqs returns the Seq of msgs.
func seqs(msgs []chat.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func TestMessagesPaging(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	log := logOf(shop, id(1), 10) // messages 1 2 4 5 7 8 10, read marks 3 6 9
	mustAppend(t, s, log)

	for _, tc := range []struct {
		name   string
		before int64
		limit  int
		want   []int64
	}{
		{"from the newest", 0, 4, []int64{10, 8, 7, 5}},
		{"before a seq", 7, 3, []int64{5, 4, 2}},
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
	got, err := s.Messages(ctx, shop, id(1), 5, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Messages = %v, %v", got, err)
	}
	if diff := cmp.Diff(*log[3].Message, got[0]); diff != "" {
		t.Errorf("Messages(...)[0] (-want +got):\n%s", diff)
	}
}

func TestAdmins(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	alex := chat.Participant{ID: "admin-1", Role: chat.RoleAdmin, Name: "Alex"}
	for _, at := range []time.Time{t0, t0.Add(-time.Hour)} { // a late, older record does not move it back
		if err := s.RecordAdmin(ctx, shop, alex, at); err != nil {
			t.Fatalf("RecordAdmin: %v", err)
		}
	}
	for _, tc := range []struct {
		tenant, id string
		since      time.Time
		want       bool
	}{
		{shop, "admin-1", t0, true},
		{shop, "admin-1", t0.Add(time.Second), false},
		{shop, "admin-2", t0.Add(-time.Hour), false},
		{outdoor, "admin-1", t0.Add(-time.Hour), false},
	} {
		if got, err := s.KnownAdmin(ctx, tc.tenant, tc.id, tc.since); err != nil || got != tc.want {
			t.Errorf("KnownAdmin(%s, %s, %s) = %v, %v; want %v", tc.tenant, tc.id, tc.since, got, err, tc.want)
		}
	}
	if err := s.RecordAdmin(ctx, shop, alex, t0.Add(time.Hour)); err != nil {
		t.Fatalf("RecordAdmin: %v", err)
	}
	if got, err := s.KnownAdmin(ctx, shop, "admin-1", t0.Add(time.Second)); err != nil || !got {
		t.Errorf("KnownAdmin after a later record = %v, %v; want true", got, err)
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
		"entries":       {"tenant_conversation_seq", "tenant_conversation_eid", "pending_at"},
		"outbox":        {"at"},
		"idempotency":   {"expires"},
	}
	// FerretDB has no TTL indexes: EnsureIndexes logs that and goes on without it, and the
	// expired records must be swept.
	noTTL := strings.Contains(logs.String(), "no TTL indexes")
	if noTTL {
		want["idempotency"] = nil
		t.Log("the server has no TTL indexes")
	}
	if db.NeedsSweep() != noTTL {
		t.Errorf("NeedsSweep() = %v, want %v (no TTL indexes)", db.NeedsSweep(), noTTL)
	}
	for coll, names := range want {
		specs, err := client.Database(database).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatalf("ListSpecifications(%s): %v", coll, err)
		}
		have := map[string]bool{}
		for _, spec := range specs {
			have[spec.Name] = true
			if (spec.Name == "tenant_conversation_seq" || spec.Name == "tenant_conversation_eid") && (spec.Unique == nil || !*spec.Unique) {
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

// mustOpenUnreachable returns a DB whose server is a closed port of 127.0.0.1, closed when the
// test ends.
func mustOpenUnreachable(tb testing.TB, o mongodb.Options) *mongodb.DB {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	db, err := mongodb.Open(context.Background(), "mongodb://"+addr+"/?directConnection=true", "down", o)
	if err != nil {
		tb.Fatalf("Open(closed port) = %v, want a DB that fails later", err)
	}
	tb.Cleanup(func() { _ = db.Close(context.Background()) })
	return db
}

func TestUnavailableDatabase(t *testing.T) {
	ctx := context.Background()
	db := mustOpenUnreachable(t, mongodb.Options{Timeout: 300 * time.Millisecond})
	s := db.Store()
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"Ping", func() error { return db.Ping(ctx) }},
		{"EnsureIndexes", func() error { return db.EnsureIndexes(ctx) }},
		{"View", func() error { _, err := s.View(ctx, shop, id(1)); return err }},
		{"Project", func() error { return s.Project(ctx, newConversation(shop, id(1), t0)) }},
		{"ListConversations", func() error { _, err := s.ListConversations(ctx, shop, chat.ListFilter{}, nil, 10); return err }},
		{"Append", func() error { _, err := s.Append(ctx, logOf(shop, id(1), 1)); return err }},
		{"EntriesAfter", func() error { _, err := s.EntriesAfter(ctx, shop, id(1), 0); return err }},
		{"Messages", func() error { _, err := s.Messages(ctx, shop, id(1), 0, 10); return err }},
		{"Overrides", func() error { _, err := s.Overrides(ctx, shop); return err }},
		{"Reserve", func() error { _, _, err := s.Reserve(ctx, record("key", "seed", t0)); return err }},
		{"Pending", func() error { _, err := s.Pending(ctx, 10); return err }},
		{"Published", func() error { return s.Published(ctx, logOf(shop, id(1), 1)) }},
		{"a canceled request", func() error { _, err := s.View(canceled, shop, id(1)); return err }},
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
			if e := (*chat.Error)(nil); !errors.As(err, &e) || e.Code != chat.Unavailable {
				t.Errorf("%s = %v, want a *chat.Error of code %s", tc.name, err, chat.Unavailable)
			}
		})
	}
}

// TestBreakerFailsFastOnceNoServerIsFound: once an operation has waited out server selection
// on a MongoDB that is not there, the store's next operations fail at once with an Unavailable
// error whose cause is mongodb.ErrOpen, instead of each waiting a timeout of its own.
func TestBreakerFailsFastOnceNoServerIsFound(t *testing.T) {
	ctx := context.Background()
	// Open for an hour: the test does not race the breaker's clock.
	s := mustOpenUnreachable(t, mongodb.Options{Timeout: 300 * time.Millisecond, OpenFor: time.Hour}).Store()

	_, err := s.View(ctx, shop, id(1))
	if e := (*chat.Error)(nil); !errors.As(err, &e) || e.Code != chat.Unavailable || errors.Is(err, mongodb.ErrOpen) {
		t.Fatalf("the first View = %v, want Unavailable after server selection, not ErrOpen", err)
	}
	for _, tc := range []struct {
		name string
		op   func() error
	}{
		{"View", func() error { _, err := s.View(ctx, shop, id(1)); return err }},
		{"Project", func() error { return s.Project(ctx, newConversation(shop, id(1), t0)) }},
		{"ListConversations", func() error { _, err := s.ListConversations(ctx, shop, chat.ListFilter{}, nil, 10); return err }},
		{"AssignedOpen", func() error { _, err := s.AssignedOpen(ctx, shop, "admin-1", 10); return err }},
		{"Append", func() error { _, err := s.Append(ctx, logOf(shop, id(1), 1)); return err }},
		{"Entry", func() error { _, err := s.Entry(ctx, shop, id(1), "e1"); return err }},
		{"EntriesAfter", func() error { _, err := s.EntriesAfter(ctx, shop, id(1), 0); return err }},
		{"Followed", func() error {
			_, err := s.Followed(ctx, []*chat.Conversation{newConversation(shop, id(1), t0)})
			return err
		}},
		{"Messages", func() error { _, err := s.Messages(ctx, shop, id(1), 0, 10); return err }},
		{"Pending", func() error { _, err := s.Pending(ctx, 10); return err }},
		{"Published", func() error { return s.Published(ctx, logOf(shop, id(1), 1)) }},
		{"Overrides", func() error { _, err := s.Overrides(ctx, shop); return err }},
		{"PutOverrides", func() error { return s.PutOverrides(ctx, shop, chat.Overrides{}) }},
		{"RecordAdmin", func() error { return s.RecordAdmin(ctx, shop, chat.Participant{ID: "admin-1"}, t0) }},
		{"KnownAdmin", func() error { _, err := s.KnownAdmin(ctx, shop, "admin-1", t0); return err }},
		{"FirstReplySeconds", func() error { _, err := s.FirstReplySeconds(ctx, shop, t0, 10); return err }},
		{"Reserve", func() error { _, _, err := s.Reserve(ctx, record("key", "seed", t0)); return err }},
		{"SaveResponse", func() error {
			_, err := s.SaveResponse(ctx, record("key", "seed", t0), idempotency.Response{})
			return err
		}},
		{"Release", func() error { return s.Release(ctx, shop, "key") }},
		{"SweepIdempotency", func() error { _, err := s.SweepIdempotency(ctx, t0, 10); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if e := (*chat.Error)(nil); !errors.Is(err, mongodb.ErrOpen) || !errors.As(err, &e) || e.Code != chat.Unavailable {
				t.Errorf("%s with the breaker open = %v, want Unavailable caused by ErrOpen", tc.name, err)
			}
		})
	}
}
