package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/testenv"
)

// countingProxy forwards the connections it accepts on a loopback port to a Redis server and
// counts the bytes the server sends back: what a replica reads out of Redis.
type countingProxy struct {
	ln   net.Listener
	read atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
}

// startCountingProxy starts a countingProxy to the Redis at url; it stops when the test ends.
func startCountingProxy(tb testing.TB, url string) *countingProxy {
	tb.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	tb.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c) }()
			go func() { _, _ = io.Copy(countingWriter{c, &p.read}, s) }()
		}
	}()
	return p
}

// URL returns the proxy's address as a Redis URL.
func (p *countingProxy) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

// Read returns how many bytes the server sent so far.
func (p *countingProxy) Read() int64 { return p.read.Load() }

func (p *countingProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

var (
	ada   = chat.Caller{ID: "ada", Role: chat.RoleCustomer}
	grace = chat.Caller{ID: "grace", Role: chat.RoleAdmin}
)

// replayed is what a replay gave: the bodies of the events, in order, and the size of their
// values, its pages' sizes and how many bytes it had read from Redis when it gave each, what it
// returned, and how many bytes it read from Redis in all.
type replayed struct {
	bodies []string
	bytes  int
	pages  []int
	readAt []int64
	last   string
	err    error
	read   int64
}

// replay replays the caller's events of tenant after id, up to until, on a bus whose
// connections to Redis go through p.
func replay(t *testing.T, p *countingProxy, tenant string, caller chat.Caller, id, until string) replayed {
	t.Helper()
	bus, _ := newBusAt(t, p.URL(), events.BusOptions{})
	var got replayed
	before := p.Read()
	got.last, got.err = bus.Replay(context.Background(), tenant, caller, id, until, func(recs []events.Record) error {
		got.pages = append(got.pages, len(recs))
		got.readAt = append(got.readAt, p.Read()-before)
		for _, r := range recs {
			data, ok := r.For(caller)
			if !ok {
				t.Errorf("the replay for %s gave an event of %s", caller.ID, r.CustomerID)
				continue
			}
			var v map[string]string
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			got.bodies = append(got.bodies, v["body"])
			got.bytes += len(r.Type) + len(r.CustomerID) + len(r.Admin) + len(r.Customer)
		}
		return nil
	})
	got.read = p.Read() - before
	return got
}

// publish publishes es in order.
func publish(t *testing.T, bus *events.Bus, es ...chat.Event) {
	t.Helper()
	for _, e := range es {
		if err := bus.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

// lastID returns the id of the newest event of tenant.
func lastID(t *testing.T, bus *events.Bus, tenant string) string {
	t.Helper()
	hub := events.NewHub(bus, events.HubOptions{})
	sub, err := hub.Subscribe(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	return sub.Start
}

// messages returns n events of the customer's conversations in tenant, with bodies of size
// bytes named prefix0, prefix1, ...
func messages(tenant, customerID, prefix string, n, size int) []chat.Event {
	out := make([]chat.Event, n)
	for i := range out {
		body := fmt.Sprint(prefix, i)
		out[i] = message(tenant, customerID, body+strings.Repeat(".", max(0, size-len(body))))
	}
	return out
}

// startReplay starts a Redis and a counting proxy to it, and a bus on it that publishes a first
// message of Ada's to tenant: the id it returns, where the replays start.
func startReplay(t *testing.T, tenant string) (p *countingProxy, bus *events.Bus, anchor string) {
	t.Helper()
	r := testenv.StartRedis(t)
	p = startCountingProxy(t, r.URL())
	bus, _ = newBus(t, r, events.BusOptions{})
	publish(t, bus, message(tenant, "ada", "hello"))
	return p, bus, lastID(t, bus, tenant)
}

func TestAResumeReadsOnlyTheCallersEvents(t *testing.T) {
	p, bus, anchor := startReplay(t, "shop")
	publish(t, bus, messages("shop", "bob", "b", 50, 500)...)
	publish(t, bus, message("shop", "ada", "one"), chat.Event{Type: chat.EventSupportChanged, TenantID: "shop"})
	publish(t, bus, messages("shop", "bob", "c", 50, 500)...)
	publish(t, bus, message("shop", "ada", "two"))
	until := lastID(t, bus, "shop")

	got := replay(t, p, "shop", ada, anchor, until)
	if got.err != nil || got.last != until {
		t.Fatalf("Replay(ada) = %s, %v; want %s, nil", got.last, got.err, until)
	}
	if want := "one support.changed two"; strings.Join(got.bodies, " ") != want {
		t.Errorf("Ada's replay = %v, want %s", got.bodies, want)
	}
	// Bob's 100 messages of 500 bytes (twice: for admins and for him) stay in Redis.
	if got.read > 4<<10 {
		t.Errorf("Ada's replay read %d bytes from Redis, want at most 4 KiB", got.read)
	}

	admin := replay(t, p, "shop", grace, anchor, until)
	if admin.err != nil || len(admin.bodies) != 103 || admin.bodies[0] != "b0"+strings.Repeat(".", 498) || admin.bodies[102] != "two" {
		t.Errorf("an admin's replay = %d events (%v), want the 103 after the anchor", len(admin.bodies), admin.err)
	}
	t.Logf("bytes read from Redis by a resume over 103 events: %d for Ada, %d for an admin", got.read, admin.read)
}

func TestAResumeStopsAtItsBudget(t *testing.T) {
	t.Run("a customer's resume looks at ReplayEntries entries at most", func(t *testing.T) {
		p, bus, anchor := startReplay(t, "shop")
		// Ada's first message is the ReplayEntries-th entry after the anchor, her second the
		// one after it.
		publish(t, bus, messages("shop", "bob", "b", events.ReplayEntries-1, 500)...)
		publish(t, bus, message("shop", "ada", "within"), message("shop", "ada", "beyond"))
		publish(t, bus, messages("shop", "bob", "c", 10, 500)...)
		got := replay(t, p, "shop", ada, anchor, lastID(t, bus, "shop"))
		if !errors.Is(got.err, events.ErrReplayBudget) {
			t.Errorf("Replay(ada) = %s, %v; want ErrReplayBudget", got.last, got.err)
		}
		if strings.Join(got.bodies, " ") != "within" {
			t.Errorf("Ada's replay = %v, want [within]: the budget's last entry and not one more", got.bodies)
		}
		if got.read > 16<<10 {
			t.Errorf("Ada's replay read %d bytes from Redis, want at most 16 KiB", got.read)
		}
		t.Logf("Ada's resume over %d entries read %d bytes", events.ReplayEntries, got.read)
	})

	t.Run("an admin's resume reads ReplayBytes at most", func(t *testing.T) {
		p, bus, anchor := startReplay(t, "outdoor")
		publish(t, bus, messages("outdoor", "bob", "b", 150, 8<<10)...) // 2.4 MiB with both payloads
		got := replay(t, p, "outdoor", grace, anchor, lastID(t, bus, "outdoor"))
		if !errors.Is(got.err, events.ErrReplayBudget) {
			t.Errorf("Replay(admin) = %s, %v; want ErrReplayBudget", got.last, got.err)
		}
		// The events are all of a size: the replay gives as many as fit in ReplayBytes.
		if n := len(got.bodies); n == 0 || got.bytes > events.ReplayBytes || got.bytes+got.bytes/n <= events.ReplayBytes {
			t.Errorf("the admin's replay gave %d events of %d bytes, want as many as fit in ReplayBytes (%d)", n, got.bytes, events.ReplayBytes)
		}
		if got.read > events.ReplayBytes+16<<10 {
			t.Errorf("the admin's replay read %d bytes from Redis, want at most ReplayBytes (%d) and 16 KiB", got.read, events.ReplayBytes)
		}
	})
}

func TestAReplayIsGivenPageByPageAsItIsRead(t *testing.T) {
	p, bus, anchor := startReplay(t, "shop")
	publish(t, bus, messages("shop", "bob", "b", 250, 1000)...)
	got := replay(t, p, "shop", grace, anchor, lastID(t, bus, "shop"))
	if got.err != nil || fmt.Sprint(got.pages) != "[100 100 50]" {
		t.Fatalf("Replay(admin) gave pages %v (%v), want [100 100 50]", got.pages, got.err)
	}
	// Each page came before the next was read: 2 KiB per event, and less than 32 KiB more.
	for i, n := range got.readAt {
		if limit := int64(i+1) * (100*2100 + 32<<10); n > limit {
			t.Errorf("page %d came after %d bytes were read, want it before the next page (at most %d)", i+1, n, limit)
		}
	}
}
