package httpapi_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/supportchat/supportchat/internal/testenv"
)

// commandCounter counts the MongoDB commands of requests by command and collection, leaving
// out the relay's (background work, not a request's).
type commandCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	c.counts = map[string]int{}
	return &event.CommandMonitor{Started: func(ctx context.Context, e *event.CommandStartedEvent) {
		if isRelay(ctx) {
			return
		}
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		if coll == "" {
			return // handshakes, buildInfo, ping, endSessions
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.counts[e.CommandName+" "+coll]++
	}}
}

// during returns the commands counted while do ran, the settings' left out: the support
// block reads them at most once per 5 s per tenant in production, and on every request in the
// tests, which see every settings change at once.
func (c *commandCounter) during(do func()) (n int, which string) {
	c.mu.Lock()
	c.counts = map[string]int{}
	c.mu.Unlock()
	do()
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.counts)) {
		if strings.HasSuffix(k, " settings") {
			continue
		}
		n += c.counts[k]
		parts = append(parts, fmt.Sprintf("%s ×%d", k, c.counts[k]))
	}
	return n, strings.Join(parts, ", ")
}

// TestRoundTripsPerOperation counts the MongoDB commands of each operation without contention,
// the numbers docs/CONSISTENCY.md states: on MongoDB a send takes 4 (2 more with an
// Idempotency-Key), a GET and a list 2. On FerretDB a send adds its outbox mark and the look
// past its projection, and a list looks up the entry after each view of its page by _id.
func TestRoundTripsPerOperation(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		var counter commandCounter
		s := newStack(t, stackOptions{server: &srv, monitor: counter.monitor()})
		ada := s.customer(shop, "cust-roundtrips")
		s.admin(shop, "admin-roundtrips").setPresence("online") // no away notices
		conv := ada.start("first")
		ada.send(conv.ID, "warm-up")

		mongo := s.store.AtomicReplace(context.Background())
		want := map[string]int{"send": 4, "send with a key": 6, "GET": 2, "list": 2}
		if !mongo {
			want["send"], want["send with a key"] = 6, 8
			want["list"] = 1 + 1 // the list query, and the entry after its one view
		}
		for i := range 3 { // the same every time, the relay's passes in between or not
			got := map[string]int{}
			explain := map[string]string{}
			got["send"], explain["send"] = counter.during(func() { ada.send(conv.ID, fmt.Sprint("plain ", i)) })
			got["send with a key"], explain["send with a key"] = counter.during(func() {
				r := ada.do("POST", "/api/v1/chat/"+conv.ID+"/messages", map[string]any{"body": fmt.Sprint("keyed ", i)},
					"Idempotency-Key", fmt.Sprint("roundtrips-", i))
				if r.Status != 201 {
					t.Fatalf("keyed send = %d %s", r.Status, r.Body)
				}
			})
			got["GET"], explain["GET"] = counter.during(func() {
				if r := ada.do("GET", "/api/v1/chat/"+conv.ID, nil); r.Status != 200 {
					t.Fatalf("GET = %d %s", r.Status, r.Body)
				}
			})
			// A distinct updated_since each time: no cached page can answer.
			uncached := "?" + since(time.Date(2000, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339))
			got["list"], explain["list"] = counter.during(func() {
				if l := ada.list(uncached); len(l.Conversations) != 1 {
					t.Fatalf("list%s has %d conversations, want 1", uncached, len(l.Conversations))
				}
			})
			for op, n := range got {
				if n != want[op] {
					t.Errorf("round %d: %s took %d MongoDB commands, want %d (mongodb %v): %s", i, op, n, want[op], mongo, explain[op])
				}
			}
		}
	})
}
