package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/datarights"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/testenv"
	"github.com/supportchat/supportchat/internal/webhook"
)

// erasureJSONOf is an erasure as the tests read it.
type erasureReport struct {
	ID     string           `json:"id"`
	Status string           `json:"status"`
	DoneAt *string          `json:"done_at"`
	Counts map[string]int64 `json:"counts"`
}

// erasedCustomer is a customer with conversations, messages by them and by an admin, read
// marks, a resolved conversation, idempotency records, cached lists, events and webhook
// deliveries: everything erasure must reach. Every text it wrote holds marker.
type erasedCustomer struct {
	user   user
	convs  []string
	marker string
}

// seedCustomer gives customer id of the shop the data erasedCustomer describes, through r.
func seedCustomer(t *testing.T, r *stack, id string) erasedCustomer {
	t.Helper()
	c := erasedCustomer{user: r.customer(shop, id), marker: "secret-" + randomID()}
	grace := r.admin(shop, "grace")
	for i := range 2 {
		conv := c.user.start(fmt.Sprintf("%s first %d", c.marker, i))
		c.convs = append(c.convs, conv.ID)
		// A write with an Idempotency-Key stores its answer, which shows the message.
		resp := c.user.do("POST", "/api/v1/chat/"+conv.ID+"/messages", map[string]any{"body": c.marker + " keyed"}, "Idempotency-Key", "k-"+randomID())
		if resp.Status != http.StatusCreated {
			t.Fatalf("keyed send = %d %s", resp.Status, resp.Body)
		}
		reply := grace.send(conv.ID, c.marker+" admin reply")
		if r := c.user.do("POST", "/api/v1/chat/"+conv.ID+"/read", map[string]any{"message_id": reply.ID}); r.Status != http.StatusOK {
			t.Fatalf("read = %d %s", r.Status, r.Body)
		}
	}
	if resp := grace.do("PATCH", "/api/v1/chat/"+c.convs[1], map[string]any{"status": "resolved"}); resp.Status != http.StatusOK {
		t.Fatalf("resolve = %d %s", resp.Status, resp.Body)
	}
	// Cached lists: the customer's own and the admins'.
	c.user.list("")
	grace.list("")
	// Webhook deliveries of the conversations' events, pending and done, as the workers store
	// them (the test stacks run no workers).
	var ds []webhook.Delivery
	for _, conv := range c.convs {
		entries, err := r.store.EntriesAfter(context.Background(), shop, conv, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range entries {
			ev := chat.EventID(e, chat.EventMessageCreated)
			ds = append(ds, webhook.Delivery{ID: "msg_" + randomID(), TenantID: shop, EndpointID: "ep-1", EventID: ev,
				Type: chat.EventMessageCreated, Body: json.RawMessage(fmt.Sprintf(`{"customer":%q,"body":%q}`, id, c.marker)),
				Order: fmt.Sprintf("%013d|%s|%012d|%d", e.At.UnixMilli(), conv, e.Seq, i), State: webhook.State([]string{"pending", "delivered"}[i%2]),
				CreatedAt: e.At, NextAt: e.At, Since: e.At})
		}
	}
	if err := r.store.AddDeliveries(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	return c
}

// erase asks for the erasure of customer id through admin of r, and returns its id.
func erase(t *testing.T, r *stack, id string) string {
	t.Helper()
	resp := r.admin(shop, "grace").do("DELETE", "/api/v1/admin/customers/"+id, nil)
	if resp.Status != http.StatusAccepted {
		t.Fatalf("DELETE /admin/customers/%s = %d %s", id, resp.Status, resp.Body)
	}
	var e erasureReport
	resp.JSON(t, &e)
	if e.Status != "pending" || e.ID == "" || resp.Header.Get("Location") != "/api/v1/admin/erasures/"+e.ID {
		t.Fatalf("erasure answer %+v, Location %q", e, resp.Header.Get("Location"))
	}
	return e.ID
}

// erasureOn returns erasure id as r reports it.
func erasureOn(t *testing.T, r *stack, id string) erasureReport {
	t.Helper()
	resp := r.admin(shop, "grace").do("GET", "/api/v1/admin/erasures/"+id, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /admin/erasures/%s = %d %s", id, resp.Status, resp.Body)
	}
	var e erasureReport
	resp.JSON(t, &e)
	return e
}

// finishErasures makes the erasures' passes through r, moving the clock past their settling
// in between, until id is done: once the lease of the replica that made a pass lapses (in real
// time), if another did.
func finishErasures(t *testing.T, r *stack, id string) erasureReport {
	t.Helper()
	for deadline := time.Now().Add(streamTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := r.eraser.Tick(context.Background()); err != nil {
			t.Logf("tick: %v", err)
		}
		if e := erasureOn(t, r, id); e.Status == "done" {
			return e
		}
		r.clock.Advance(datarights.DefaultSettle + time.Second)
	}
	t.Fatalf("erasure %s not done: %+v", id, erasureOn(t, r, id))
	return erasureReport{}
}

// assertNoTrace fails when any collection of the database, or any Redis key of the shop,
// holds one of texts.
func assertNoTrace(t *testing.T, r *stack, texts ...string) {
	t.Helper()
	ctx := context.Background()
	colls, err := r.raw.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	for _, coll := range colls {
		cur, err := r.raw.Collection(coll).Find(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			b, _ := bson.MarshalExtJSON(d, false, false)
			for _, text := range texts {
				if strings.Contains(string(b), text) {
					t.Errorf("collection %s holds %q: %s", coll, text, b)
				}
			}
		}
	}
	for _, pattern := range []string{"chat:{" + shop + "}*", "chat:{" + shop + ":*"} {
		keys, err := scanAll(ctx, r.rdb, pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			v := redisValue(ctx, t, r.rdb, k)
			for _, text := range texts {
				if strings.Contains(k, text) || strings.Contains(v, text) {
					t.Errorf("redis key %s holds %q", k, text)
				}
			}
		}
	}
}

// scanAll returns the keys matching pattern on every master.
func scanAll(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 100).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return keys, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return keys, scan(ctx, rdb)
}

// redisValue returns the value of key, whatever its type, as text.
func redisValue(ctx context.Context, t *testing.T, rdb redis.UniversalClient, key string) string {
	t.Helper()
	typ, err := rdb.Type(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	var v any
	switch typ {
	case "string":
		v, err = rdb.Get(ctx, key).Result()
	case "stream":
		v, err = rdb.XRange(ctx, key, "-", "+").Result()
	case "zset":
		v, err = rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
	case "hash":
		v, err = rdb.HGetAll(ctx, key).Result()
	case "set":
		v, err = rdb.SMembers(ctx, key).Result()
	case "list":
		v, err = rdb.LRange(ctx, key, 0, -1).Result()
	case "none":
		return ""
	default:
		t.Fatalf("key %s has type %s, which the test cannot read", key, typ)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return fmt.Sprint(v)
}

// TestErasureLeavesNoTrace erases a customer while they keep writing, on one replica and
// then another, and checks on both that no API, event replay, cached page or webhook delivery
// shows anything of theirs, that no document or Redis key holds their id or text, and that
// another customer is untouched; on FerretDB with SQLite and with PostgreSQL.
func TestErasureLeavesNoTrace(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		a := newStack(t, stackOptions{server: &srv})
		b := newStack(t, stackOptions{replicaOf: a})
		gone := "erased-" + randomID()
		x := seedCustomer(t, a, gone)
		y := seedCustomer(t, b, "kept-"+randomID())
		yHistory := map[string][]messageJSON{}
		for _, conv := range y.convs {
			yHistory[conv] = y.user.history(conv)
		}
		grace := a.admin(shop, "grace")
		before, err := a.rdb.XRange(context.Background(), events.Key(shop), "-", "+").Result()
		if err != nil || len(before) == 0 {
			t.Fatalf("no events before the erasure: %v", err)
		}

		// The customer keeps writing to their conversations while the erasure runs: every
		// write either lands before the seal (and is erased) or answers 404.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var acked, refused atomic.Int64
		for i, conv := range x.convs {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					r := x.user.on([]*stack{a, b}[(i+n)%2]).do("POST", "/api/v1/chat/"+conv+"/messages",
						map[string]any{"body": fmt.Sprintf("%s racing %d", x.marker, n)})
					switch r.Status {
					case http.StatusCreated:
						acked.Add(1)
					case http.StatusNotFound:
						refused.Add(1)
					default:
						t.Errorf("racing send = %d %s", r.Status, r.Body)
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		id := erase(t, a, gone)
		if again := erase(t, b, gone); again != id {
			t.Errorf("asking twice made two erasures: %s, %s", id, again)
		}
		if e := erasureOn(t, b, id); e.Status != "pending" {
			t.Errorf("before any pass: %+v", e)
		}
		// First pass on a, while the writes go on; the second, after the settling, on b.
		if err := a.eraser.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, streamTimeout, func() bool {
			t.Logf("racing writes: %d acknowledged, %d refused", acked.Load(), refused.Load())
			return refused.Load() >= int64(len(x.convs))
		})
		close(stop)
		wg.Wait()
		a.clock.Advance(datarights.DefaultSettle + time.Second)
		done := finishErasures(t, b, id)
		if done.Counts["conversations"] != int64(len(x.convs)) || done.Counts["messages"] < 6+acked.Load() {
			t.Errorf("counts %v; want %d conversations and at least %d messages", done.Counts, len(x.convs), 6+acked.Load())
		}
		t.Logf("%d racing writes acknowledged, %d refused; counts %v", acked.Load(), refused.Load(), done.Counts)

		// Nothing is left anywhere; then nothing shows through the API (where the erased
		// customer's own requests make new keys of theirs).
		assertNoTrace(t, a, gone, x.marker)
		for _, r := range []*stack{a, b} {
			if l := x.user.on(r).list(""); len(l.Conversations) != 0 {
				t.Errorf("the erased customer's list shows %d conversations", len(l.Conversations))
			}
			for _, c := range grace.on(r).list("?limit=100").Conversations {
				if strings.Contains(c.Subject, x.marker) || (len(c.Participants) > 0 && c.Participants[0].ID == gone) {
					t.Errorf("the admins' list shows %+v", c)
				}
			}
			for _, conv := range x.convs {
				for _, path := range []string{"/api/v1/chat/" + conv, "/api/v1/chat/" + conv + "/messages"} {
					if resp := grace.on(r).do("GET", path, nil); resp.Status != http.StatusNotFound {
						t.Errorf("GET %s = %d %s", path, resp.Status, resp.Body)
					}
				}
			}
			if x, _ := grace.on(r).export(gone); len(x.Conversations) != 0 {
				t.Errorf("the export shows %d conversations", len(x.Conversations))
			}
			// A replay from before the erasure shows nothing of the customer.
			for _, ev := range replayed(t, grace.on(r), before[0].ID) {
				if strings.Contains(ev.Data, x.marker) || strings.Contains(ev.Data, gone) {
					t.Errorf("the replay shows %s %s", ev.Type, ev.Data)
				}
			}
		}
		// The audit trail has the request and the end, with counts, and no customer id.
		var actions []string
		for _, e := range grace.auditTrail("?limit=100").Entries {
			if e.Target == id {
				actions = append(actions, e.Action)
				if e.Subject != audit.Subject(shop, gone) {
					t.Errorf("audit entry %+v does not name the customer's subject", e)
				}
			}
		}
		if strings.Join(actions, ",") != "customer.erased,customer.erasure_requested" {
			t.Errorf("audit trail of the erasure: %v", actions)
		}

		// The other customer is untouched.
		if l := y.user.on(a).list(""); len(l.Conversations) != len(y.convs) {
			t.Errorf("the other customer's list shows %d conversations, want %d", len(l.Conversations), len(y.convs))
		}
		for _, conv := range y.convs {
			if h := y.user.on(b).history(conv); fmt.Sprint(h) != fmt.Sprint(yHistory[conv]) {
				t.Errorf("the other customer's conversation changed: %v, was %v", h, yHistory[conv])
			}
		}
		if !onBus(t, a.rdb, shop, y.marker) {
			t.Error("the other customer's events are gone from the stream")
		}
	})
}

// replayed returns the events u's stream replays after lastID: those that come before the
// stream is quiet for a second.
func replayed(t *testing.T, u user, lastID string) []sseEvent {
	t.Helper()
	es := u.events(t, lastID)
	defer es.close()
	var out []sseEvent
	for {
		select {
		case ev := <-es.events:
			if ev.Type != "" {
				out = append(out, ev)
			}
		case <-time.After(time.Second):
			return out
		}
	}
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
	}
}

// failingRecords fails DeleteLog after its first calls: a replica that dies midway through an
// erasure.
type failingRecords struct {
	datarights.Records
	calls atomic.Int64
	after int64
}

func (f *failingRecords) DeleteLog(ctx context.Context, tenantID, convID string, upTo int64) (int64, int64, error) {
	if f.calls.Add(1) > f.after {
		return 0, 0, errors.New("injected: the replica died")
	}
	return f.Records.DeleteLog(ctx, tenantID, convID, upTo)
}

// TestErasureSurvivesACrashMidway erases a customer on a replica that dies after erasing one
// of their conversations: another replica takes the job over once its lease lapses, and the
// erasure ends done, with nothing of the customer left; on FerretDB with SQLite and with
// PostgreSQL.
func TestErasureSurvivesACrashMidway(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		var dying *failingRecords
		a := newStack(t, stackOptions{server: &srv, erasure: func(r datarights.Records) datarights.Records {
			dying = &failingRecords{Records: r, after: 1}
			return dying
		}})
		b := newStack(t, stackOptions{replicaOf: a})
		gone := "erased-" + randomID()
		x := seedCustomer(t, a, gone)
		id := erase(t, a, gone)
		if err := a.eraser.Tick(context.Background()); err == nil {
			t.Fatal("the dying replica's pass did not fail")
		}
		e := erasureOn(t, b, id)
		if e.Status != "pending" || e.Counts["conversations"] < 1 {
			t.Fatalf("after the crash: %+v, want pending with the first conversation counted", e)
		}
		// a is gone; b waits for a's lease to lapse, then makes both passes.
		done := finishErasures(t, b, id)
		if done.Counts["conversations"] != int64(len(x.convs)) {
			t.Errorf("counts %v, want %d conversations", done.Counts, len(x.convs))
		}
		assertNoTrace(t, b, gone, x.marker)
	})
}

// TestRetentionErasesOldResolvedConversations sets a retention of 30 days and sweeps: the
// conversations resolved longer ago go, with everything of them, and those open, resolved
// lately or of another tenant stay; the sweep is counted and audited. On FerretDB with SQLite
// and with PostgreSQL.
func TestRetentionErasesOldResolvedConversations(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		s := newStack(t, stackOptions{server: &srv})
		grace := s.admin(shop, "grace")
		if r := grace.do("PUT", "/api/v1/admin/settings", map[string]any{"retention": map[string]any{"resolved_after_days": 30}}); r.Status != http.StatusOK {
			t.Fatalf("PUT retention = %d %s", r.Status, r.Body)
		}
		old := seedCustomer(t, s, "old-"+randomID()) // convs[1] is resolved
		open := seedCustomer(t, s, "open-"+randomID())
		resolve := func(u user, conv string) {
			if r := grace.do("PATCH", "/api/v1/chat/"+conv, map[string]any{"status": "resolved"}); r.Status != http.StatusOK {
				t.Fatalf("resolve = %d %s", r.Status, r.Body)
			}
		}
		s.clock.Advance(31 * 24 * time.Hour)
		lately := seedCustomer(t, s, "lately-"+randomID())
		resolve(lately.user, lately.convs[0])
		agent := s.admin(outdoor, "agent-1")
		other := s.customer(outdoor, "other-"+randomID()).start("elsewhere " + old.marker)
		if r := agent.do("PATCH", "/api/v1/chat/"+other.ID, map[string]any{"status": "resolved"}); r.Status != http.StatusOK {
			t.Fatalf("resolve = %d %s", r.Status, r.Body)
		}
		s.clock.Advance(24 * time.Hour)

		c, err := s.retention.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// old's resolved conversation, and open's (seedCustomer resolves its second).
		if c.Conversations != 2 {
			t.Errorf("the sweep erased %d conversations, want 2: %+v", c.Conversations, c)
		}
		for _, gone := range []string{old.convs[1], open.convs[1]} {
			if r := grace.do("GET", "/api/v1/chat/"+gone, nil); r.Status != http.StatusNotFound {
				t.Errorf("GET an erased conversation = %d", r.Status)
			}
		}
		for _, kept := range []string{old.convs[0], open.convs[0], lately.convs[0], lately.convs[1]} {
			if r := grace.do("GET", "/api/v1/chat/"+kept, nil); r.Status != http.StatusOK {
				t.Errorf("GET a kept conversation = %d %s", r.Status, r.Body)
			}
		}
		if r := agent.do("GET", "/api/v1/chat/"+other.ID, nil); r.Status != http.StatusOK {
			t.Errorf("the other tenant's resolved conversation is gone: %d", r.Status)
		}
		if l := old.user.list(""); len(l.Conversations) != 1 || l.Conversations[0].ID != old.convs[0] {
			t.Errorf("the customer's list after the sweep: %+v", l.Conversations)
		}
		assertNoTrace(t, s, old.marker+" first 1", open.marker+" first 1")
		if again, err := s.retention.Sweep(context.Background()); err != nil || again.Conversations != 0 {
			t.Errorf("a second sweep erased %+v, %v", again, err)
		}
		metrics := s.scrape()
		if !strings.Contains(metrics, `chat_erased_conversations_total{reason="retention"} 2`) ||
			!strings.Contains(metrics, "chat_retention_overdue_seconds 0") {
			t.Errorf("metrics do not show the sweep:\n%s", grepLines(metrics, "retention"))
		}
		var runs int
		for _, e := range grace.auditTrail("").Entries {
			if e.Action == "retention.run" {
				runs++
				if e.Counts["conversations"] != 2 || e.Counts["resolved_after_days"] != 30 || e.Actor.ID != "retention" {
					t.Errorf("audit entry of the sweep: %+v", e)
				}
			}
		}
		if runs != 1 {
			t.Errorf("%d retention runs audited, want 1", runs)
		}
	})
}

// grepLines returns the lines of s holding sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
