package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/testenv"
)

// render is a Renderer that puts the event's message body (or type) in both payloads, with the
// customer's payload marked.
func render(e chat.Event) (events.Payload, error) {
	body := string(e.Type)
	if e.Message != nil {
		body = e.Message.Body
	}
	a, _ := json.Marshal(map[string]string{"for": "admin", "body": body})
	c, _ := json.Marshal(map[string]string{"for": "customer", "body": body})
	return events.Payload{Admin: a, Customer: c}, nil
}

type observer struct{ ok, failed int }

func (o *observer) EventPublished(_ string, err error) {
	if err != nil {
		o.failed++
	} else {
		o.ok++
	}
}

// newBusTB is newBus with the default options, for benchmarks.
func newBusTB(tb testing.TB, r *testenv.Redis) (*events.Bus, redis.UniversalClient) {
	return newBus(tb, r, events.BusOptions{})
}

func newBus(t testing.TB, r *testenv.Redis, o events.BusOptions) (*events.Bus, redis.UniversalClient) {
	t.Helper()
	return newBusAt(t, r.URL(), o)
}

// newBusAt returns a Bus on the Redis at url.
func newBusAt(t testing.TB, url string, o events.BusOptions) (*events.Bus, redis.UniversalClient) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = 0
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return events.NewBus(rdb, render, o), rdb
}

func message(tenantID, customerID, body string) chat.Event {
	return chat.Event{Type: chat.EventMessageCreated, TenantID: tenantID, CustomerID: customerID, Message: &chat.Message{ID: body, Body: body}}
}

func TestRecordsAreScopedToTheirAudience(t *testing.T) {
	r := events.Record{Type: chat.EventConversationUpdated, CustomerID: "ada", Admin: []byte("A"), Customer: []byte("C")}
	if p, ok := r.For(chat.Caller{ID: "grace", Role: chat.RoleAdmin}); !ok || string(p) != "A" {
		t.Errorf("admin gets %q %v, want the admin payload", p, ok)
	}
	if p, ok := r.For(chat.Caller{ID: "ada", Role: chat.RoleCustomer}); !ok || string(p) != "C" {
		t.Errorf("the conversation's customer gets %q %v, want the customer payload", p, ok)
	}
	if p, ok := r.For(chat.Caller{ID: "bob", Role: chat.RoleCustomer}); ok {
		t.Errorf("another customer gets %q", p)
	}
	tenantWide := events.Record{Type: chat.EventSupportChanged, Admin: []byte("S")}
	if p, ok := tenantWide.For(chat.Caller{ID: "bob", Role: chat.RoleCustomer}); !ok || string(p) != "S" {
		t.Errorf("a customer gets %q %v of a tenant-wide event", p, ok)
	}
}

func TestStreamIDs(t *testing.T) {
	for _, id := range []string{"", "1", "a-1", "1-b", "-1", "1-", "1-2-3", "99999999999999999999999-1"} {
		if _, _, ok := events.ParseID(id); ok {
			t.Errorf("ParseID(%q) accepted", id)
		}
	}
	if !events.Less("9-5", "10-0") || !events.Less("10-0", "10-1") || events.Less("10-1", "10-1") || events.Less("11-0", "10-9") {
		t.Error("Less does not order ids numerically")
	}
}

func TestReplayAfterAnEventAndResyncBeyondTheWindow(t *testing.T) {
	ctx := context.Background()
	bus, rdb := newBus(t, testenv.StartRedis(t), events.BusOptions{MinEvents: 5, Window: time.Millisecond})
	hub := events.NewHub(bus, events.HubOptions{})
	for i := range 3 {
		if err := bus.Publish(ctx, message("shop", "ada", fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Publish(ctx, message("other", "ada", "elsewhere")); err != nil {
		t.Fatal(err)
	}
	all, err := rdb.XRange(ctx, events.Key("shop"), "-", "+").Result()
	if err != nil || len(all) != 3 {
		t.Fatalf("stream holds %d entries (%v), want 3", len(all), err)
	}
	after := func(id string) ([]events.Record, error) {
		var recs []events.Record
		_, err := hub.Replay(ctx, "shop", grace, id, all[2].ID, func(page []events.Record) error {
			recs = append(recs, page...)
			return nil
		})
		return recs, err
	}
	recs, err := after(all[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != all[1].ID || recs[1].ID != all[2].ID || recs[0].CustomerID != "ada" || recs[0].Type != chat.EventMessageCreated {
		t.Fatalf("Replay(first) = %+v", recs)
	}
	if recs, err := after(all[2].ID); err != nil || len(recs) != 0 {
		t.Errorf("Replay(last) = %v, %v; want nothing", recs, err)
	}
	for _, bad := range []string{"garbage", "1-1", "-", "+", "(" + all[0].ID, "18446744073709551615-18446744073709551615"} {
		if _, err := after(bad); !errors.Is(err, events.ErrGone) {
			t.Errorf("Replay(%q) = %v, want ErrGone", bad, err)
		}
	}
	// With a 1 ms window, once the stream holds more than MinEvents old entries are trimmed
	// (approximately: Redis trims whole nodes, so publish well past it).
	time.Sleep(5 * time.Millisecond)
	for i := range 300 {
		if err := bus.Publish(ctx, message("shop", "ada", fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := after(all[0].ID); !errors.Is(err, events.ErrGone) {
		t.Errorf("Replay(trimmed id) = %v, want ErrGone", err)
	}
	if n := rdb.XLen(ctx, events.Key("shop")).Val(); n >= 303 {
		t.Errorf("stream holds %d entries, want it trimmed", n)
	}
	if ttl := rdb.PTTL(ctx, events.Key("shop")).Val(); ttl <= 0 {
		t.Errorf("stream TTL %v, want it to expire when the tenant is idle", ttl)
	}
}

func TestHubFansOutInOrderAndDropsSlowSubscribers(t *testing.T) {
	ctx := context.Background()
	bus, _ := newBus(t, testenv.StartRedis(t), events.BusOptions{})
	hub := events.NewHub(bus, events.HubOptions{Buffer: 4, Block: 200 * time.Millisecond})
	t.Cleanup(hub.Close)
	fast, err := hub.Subscribe(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	slow, err := hub.Subscribe(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	other, err := hub.Subscribe(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	// The fast subscriber reads each event before the next is published; the slow one never
	// reads, so it falls more than its buffer behind.
	const n = 20
	for i := range n {
		if err := bus.Publish(ctx, message("shop", "ada", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-fast.C():
			var p map[string]string
			_ = json.Unmarshal(r.Admin, &p)
			if p["body"] != fmt.Sprint(i) {
				t.Fatalf("event %d: fast subscriber got %q", i, p["body"])
			}
		case <-fast.Done():
			t.Fatalf("event %d: the fast subscriber ended: %v", i, fast.Err())
		case <-time.After(30 * time.Second):
			t.Fatalf("event %d did not reach the fast subscriber", i)
		}
	}
	mustBeDroppedAsSlow(t, slow)
	select {
	case r := <-other.C():
		t.Errorf("another tenant's subscriber got %+v", r)
	default:
	}

	hub.Close()
	for _, s := range []*events.Subscription{fast, other} {
		<-s.Done()
		if !errors.Is(s.Err(), events.ErrClosed) {
			t.Errorf("after Close a subscription ended with %v, want ErrClosed", s.Err())
		}
	}
	if _, err := hub.Subscribe(ctx, "shop"); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
}

// mustBeDroppedAsSlow waits until s, which never reads, is dropped with ErrSlow.
func mustBeDroppedAsSlow(t *testing.T, s *events.Subscription) {
	t.Helper()
	select {
	case <-s.Done():
		if !errors.Is(s.Err(), events.ErrSlow) {
			t.Errorf("a subscriber that never reads ended with %v, want ErrSlow", s.Err())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a subscriber that never reads was not dropped")
	}
}

// burst appends n events to the tenant's stream at once, in one transaction, the way Publish
// writes them: the hub's reader finds all of them at its next read.
func burst(t *testing.T, rdb redis.UniversalClient, tenant string, n int) {
	t.Helper()
	_, err := rdb.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
		for i := range n {
			a, _ := json.Marshal(map[string]string{"for": "admin", "body": fmt.Sprint(i)})
			p.XAdd(context.Background(), &redis.XAddArgs{Stream: events.Key(tenant), Values: []any{"t", string(chat.EventMessageCreated), "c", "ada", "a", a, "u", ""}})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readAll reads n events from s, which must come in burst's order, and returns an error when they
// do not, or the subscription ends first.
func readAll(s *events.Subscription, n int) error {
	for i := range n {
		select {
		case r := <-s.C():
			var p map[string]string
			if err := json.Unmarshal(r.Admin, &p); err != nil {
				return err
			}
			if p["body"] != fmt.Sprint(i) {
				return fmt.Errorf("event %d is %s", i, p["body"])
			}
		case <-s.Done():
			return fmt.Errorf("ended after %d events: %w", i, s.Err())
		case <-time.After(30 * time.Second):
			return fmt.Errorf("event %d did not come", i)
		}
	}
	return nil
}

// TestOneBurstDropsNobodyWhoReadsPromptly appends a burst of four buffers' worth of events at
// once: subscribers that read promptly get all of it, in order, and stay; one that never reads
// is dropped while the others go on.
func TestOneBurstDropsNobodyWhoReadsPromptly(t *testing.T) {
	const n = 1000 // the default buffer is 256
	for _, tc := range []struct {
		name      string
		neverRead bool
	}{
		{"three subscribers that read promptly", false},
		{"and one that never reads", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bus, rdb := newBus(t, testenv.StartRedis(t), events.BusOptions{})
			hub := events.NewHub(bus, events.HubOptions{Patience: 5 * time.Second})
			t.Cleanup(hub.Close)
			subs := make([]*events.Subscription, 3)
			for i := range subs {
				var err error
				if subs[i], err = hub.Subscribe(ctx, "shop"); err != nil {
					t.Fatal(err)
				}
			}
			var stuck *events.Subscription
			if tc.neverRead {
				var err error
				if stuck, err = hub.Subscribe(ctx, "shop"); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, len(subs))
			for _, s := range subs {
				go func() { done <- readAll(s, n) }()
			}
			burst(t, rdb, "shop", n)
			for range subs {
				if err := <-done; err != nil {
					t.Errorf("a subscriber that reads promptly: %v", err)
				}
			}
			for i, s := range subs {
				if s.Err() != nil {
					t.Errorf("subscriber %d ended: %v", i, s.Err())
				}
			}
			if stuck != nil {
				mustBeDroppedAsSlow(t, stuck)
			}
		})
	}
}

// TestABacklogDropsNobodyWhoKeepsUp drains a backlog that takes the subscribers longer than
// the patience, with the default options: each writes out what it has in batches, pausing
// after each as a network write would, so its buffer is never empty when the next read comes,
// but it keeps taking events. None is dropped, and every event arrives in order.
func TestABacklogDropsNobodyWhoKeepsUp(t *testing.T) {
	const n, bursts = 40000, 40
	ctx := context.Background()
	bus, rdb := newBus(t, testenv.StartRedis(t), events.BusOptions{})
	hub := events.NewHub(bus, events.HubOptions{})
	t.Cleanup(hub.Close)
	subs := make([]*events.Subscription, 3)
	done := make(chan error, len(subs))
	for i := range subs {
		var err error
		if subs[i], err = hub.Subscribe(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		s := subs[i]
		go func() {
			for got := 0; got < n; {
				select {
				case r := <-s.C():
					var p map[string]string
					if err := json.Unmarshal(r.Admin, &p); err != nil || p["body"] != fmt.Sprint(got%(n/bursts)) {
						done <- fmt.Errorf("event %d is %s (%w)", got, r.Admin, err)
						return
					}
					got++
					if got%200 == 0 {
						time.Sleep(5 * time.Millisecond) // a write to the network
					}
				case <-s.Done():
					done <- fmt.Errorf("ended after %d events: %w", got, s.Err())
					return
				case <-time.After(30 * time.Second):
					done <- fmt.Errorf("event %d did not come", got)
					return
				}
			}
			done <- nil
		}()
	}
	started := time.Now()
	for range bursts {
		burst(t, rdb, "shop", n/bursts)
	}
	for range subs {
		if err := <-done; err != nil {
			t.Errorf("a subscriber that keeps up: %v", err)
		}
	}
	t.Logf("%d events to 3 subscribers in %s", n, time.Since(started).Round(time.Millisecond))
}

func TestHubEndsStreamsWhenRedisFailsAndRecovers(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	obs := &observer{}
	bus, _ := newBus(t, r, events.BusOptions{Observer: obs})
	hub := events.NewHub(bus, events.HubOptions{Block: 200 * time.Millisecond})
	t.Cleanup(hub.Close)
	sub, err := hub.Subscribe(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	select {
	case <-sub.Done():
		if !errors.Is(sub.Err(), events.ErrBusLost) {
			t.Errorf("ended with %v, want ErrBusLost", sub.Err())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the subscription did not end while Redis was down")
	}
	if err := bus.Publish(ctx, message("shop", "ada", "lost")); err == nil {
		t.Error("Publish while Redis is down = nil, want its error")
	}
	if obs.failed != 1 {
		t.Errorf("failed publishes counted %d, want 1", obs.failed)
	}
	if _, err := hub.Subscribe(ctx, "shop"); err == nil {
		t.Error("Subscribe succeeded while Redis is down")
	}
	r.Start(t)
	var again *events.Subscription
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if again, err = hub.Subscribe(ctx, "shop"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Subscribe after Redis came back: %v", err)
		}
	}
	defer again.Close()
	// The event lost while Redis was down is announced by a resync entry, for everyone.
	if err := bus.Publish(ctx, message("shop", "ada", "after")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []chat.EventType{events.EventResync, chat.EventMessageCreated} {
		select {
		case rec := <-again.C():
			if rec.Type != want {
				t.Errorf("got %+v, want %s", rec, want)
			}
			if _, ok := rec.For(chat.Caller{ID: "bob", Role: chat.RoleCustomer}); want == events.EventResync && !ok {
				t.Error("a resync is not for every customer")
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s after Redis came back", want)
		}
	}
	if n := bus.Flush(ctx); n != 0 {
		t.Errorf("Flush after the resync was written flushed %d tenants", n)
	}
}

// TestEventsWithAnIDArePublishedOnce publishes the events of log entries more than once, as a
// writer and the log's relay may: the stream holds each once. A failed publication of such an
// event is the log's to repeat, so it does not make the tenant's streams resync.
func TestEventsWithAnIDArePublishedOnce(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	bus, rdb := newBus(t, r, events.BusOptions{})
	withID := func(id, body string) chat.Event {
		e := message("shop", "ada", body)
		e.ID = id
		return e
	}
	for _, e := range []chat.Event{withID("shop:c1:1/message.created", "first"), withID("shop:c1:2/message.created", "second"),
		withID("shop:c1:1/message.created", "first again"), withID("shop:c1:2/message.created", "second again")} {
		if err := bus.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Another tenant's event of the same id is its own.
	other := withID("shop:c1:1/message.created", "elsewhere")
	other.TenantID = "other"
	if err := bus.Publish(ctx, other); err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(ctx, events.Key("shop"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range msgs {
		var p map[string]string
		if err := json.Unmarshal([]byte(m.Values["a"].(string)), &p); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, p["body"])
	}
	if fmt.Sprint(bodies) != "[first second]" {
		t.Errorf("the stream holds %v, want [first second]", bodies)
	}
	if n, err := rdb.XLen(ctx, events.Key("other")).Result(); err != nil || n != 1 {
		t.Errorf("the other tenant's stream holds %d events (%v), want 1", n, err)
	}

	r.Stop(t)
	if err := bus.Publish(ctx, withID("shop:c1:3/message.created", "lost for now")); err == nil {
		t.Fatal("Publish while Redis is down = nil, want its error")
	}
	r.Start(t)
	for deadline := time.Now().Add(30 * time.Second); rdb.Ping(ctx).Err() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Redis does not answer again")
		}
	}
	if n := bus.Flush(ctx); n != 0 {
		t.Errorf("Flush after a failed event with an id wrote %d resyncs, want none: the log publishes it again", n)
	}
}
