package httpapi_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/limits"
)

// rateLimitField is the RateLimit field of a rate (r remaining, t seconds).
var rateLimitField = regexp.MustCompile(`^"(requests|writes|tenant-requests)";r=(\d+);t=(\d+)$`)

// mustRateLimit checks a RateLimit field of policy name and returns its r and t.
func mustRateLimit(t *testing.T, h http.Header, name string) (remaining, reset int) {
	t.Helper()
	m := rateLimitField.FindStringSubmatch(h.Get("RateLimit"))
	if m == nil || m[1] != name {
		t.Fatalf("RateLimit = %q, want \"%s\";r=<n>;t=<seconds>", h.Get("RateLimit"), name)
	}
	remaining, _ = strconv.Atoi(m[2])
	reset, _ = strconv.Atoi(m[3])
	return remaining, reset
}

// mustRetryAfter returns the Retry-After of a 429, which must be whole seconds within [1, most].
func mustRetryAfter(t *testing.T, h http.Header, most int) int {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 1 || n > most {
		t.Fatalf("Retry-After = %q, want whole seconds from 1 to %d", h.Get("Retry-After"), most)
	}
	return n
}

// rejections returns chat_rate_limit_rejections_total of tenant and limit on s's /metrics.
func rejections(t *testing.T, s *stack, tenantID, limit string) string {
	t.Helper()
	for _, line := range strings.Split(s.scrape(), "\n") {
		if strings.HasPrefix(line, "chat_rate_limit_rejections_total{") &&
			strings.Contains(line, `limit="`+limit+`"`) && strings.Contains(line, `tenant="`+tenantID+`"`) {
			return line[strings.LastIndex(line, " ")+1:]
		}
	}
	return "0"
}

func TestCallerOverRequestLimitGets429(t *testing.T) {
	s := newStack(t, stackOptions{limits: limits.Config{RequestsPerMinute: 3}})
	ada, bob := s.customer(shop, "cust-ada"), s.customer(shop, "cust-bob")

	for i, want := range []int{2, 1, 0} {
		r := ada.do("GET", "/api/v1/chat/list", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("request %d = %d %s, want 200", i+1, r.Status, r.Body)
		}
		if got := r.Header.Get("RateLimit-Policy"); got != `"requests";q=3;w=60` {
			t.Errorf("request %d: RateLimit-Policy = %q, want \"requests\";q=3;w=60", i+1, got)
		}
		if remaining, reset := mustRateLimit(t, r.Header, "requests"); remaining != want || reset < 1 || reset > 60 {
			t.Errorf("request %d: RateLimit r=%d t=%d, want r=%d and t within [1, 60]", i+1, remaining, reset, want)
		}
	}

	r := ada.do("GET", "/api/v1/chat/list", nil)
	p := r.Problem(t, http.StatusTooManyRequests)
	if p.Slug() != "rate-limited" || !strings.Contains(p.Detail, "3 requests") {
		t.Errorf("problem = %+v, want rate-limited naming the limit of 3 requests", p)
	}
	// GCRA at 3 a minute frees a request every 20 s.
	retry := mustRetryAfter(t, r.Header, 20)
	if got := r.Header.Get("RateLimit-Policy"); got != `"requests";q=3;w=60` {
		t.Errorf("429: RateLimit-Policy = %q, want \"requests\";q=3;w=60", got)
	}
	if remaining, reset := mustRateLimit(t, r.Header, "requests"); remaining != 0 || reset != retry {
		t.Errorf("429: RateLimit r=%d t=%d, want r=0 and t=%d (Retry-After)", remaining, reset, retry)
	}
	// Writes are requests too.
	ada.do("POST", "/api/v1/chat/start", map[string]any{"message": "hello?"}).Problem(t, http.StatusTooManyRequests)

	if r := bob.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
		t.Errorf("another caller of the same tenant = %d %s, want 200", r.Status, r.Body)
	}
	if got := rejections(t, s, shop, "requests"); got != "2" {
		t.Errorf(`chat_rate_limit_rejections_total{tenant="demo-shop",limit="requests"} = %s, want 2`, got)
	}
}

func TestWriteLimitCountsOnlyWrites(t *testing.T) {
	s := newStack(t, stackOptions{limits: limits.Config{RequestsPerMinute: 100, WritesPerMinute: 2}})
	ada := s.customer(shop, "cust-ada")

	conv := ada.start("hello")   // write 1
	ada.send(conv.ID, "anyone?") // write 2
	for range 5 {
		ada.list("")
	}
	if r := ada.do("GET", "/api/v1/chat/"+conv.ID, nil); r.Status != http.StatusOK {
		t.Errorf("a read after two writes = %d %s, want 200", r.Status, r.Body)
	}
	r := ada.do("POST", "/api/v1/chat/"+conv.ID+"/read", nil)
	if p := r.Problem(t, http.StatusTooManyRequests); p.Slug() != "rate-limited" || !strings.Contains(p.Detail, "2 changes") {
		t.Errorf("a third write: problem %+v, want rate-limited naming the limit of 2 changes", p)
	}
	mustRetryAfter(t, r.Header, 30)
	if got := r.Header.Get("RateLimit-Policy"); got != `"writes";q=2;w=60` {
		t.Errorf("RateLimit-Policy = %q, want \"writes\";q=2;w=60", got)
	}
	mustRateLimit(t, r.Header, "writes")
	if r := ada.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
		t.Errorf("a read after the writes ran out = %d, want 200", r.Status)
	}
}

func TestTenantLimitBoundsAllCallers(t *testing.T) {
	// Only demo-shop's file sets a tenant limit; acme-outdoor keeps the default (off).
	s := newStack(t, stackOptions{tenantYAML: map[string]string{shop: "limits:\n  tenant_requests_per_second: 2\n"}})
	// 40 requests of 20 callers at once: the tenant's burst is 2 and its refill one every
	// 500 ms, so many are refused however slow the machine.
	statuses := func(tenantID string) map[int]int {
		var mu sync.Mutex
		got := map[int]int{}
		var refused response
		var wg sync.WaitGroup
		for i := range 40 {
			u := s.customer(tenantID, fmt.Sprintf("cust-%d", i%20))
			wg.Go(func() {
				r, err := s.send(s.srv.Client(), "GET", "/api/v1/chat/list", nil, map[string]string{"X-Tenant-ID": u.tenant, "Authorization": "Bearer " + u.token})
				mu.Lock()
				defer mu.Unlock()
				got[r.Status]++
				if err != nil {
					got[-1]++
				}
				if r.Status == http.StatusTooManyRequests {
					refused = r
				}
			})
		}
		wg.Wait()
		if refused.Status != 0 {
			if p := refused.Problem(t, http.StatusTooManyRequests); !strings.Contains(p.Detail, "storefront") {
				t.Errorf("problem detail %q, want it to name the storefront's limit", p.Detail)
			}
			mustRetryAfter(t, refused.Header, 1)
			if got := refused.Header.Get("RateLimit-Policy"); got != `"tenant-requests";q=2;w=1` {
				t.Errorf("RateLimit-Policy = %q, want \"tenant-requests\";q=2;w=1", got)
			}
			mustRateLimit(t, refused.Header, "tenant-requests")
		}
		return got
	}
	if got := statuses(shop); got[http.StatusTooManyRequests] == 0 || got[http.StatusOK] < 2 || got[http.StatusOK]+got[http.StatusTooManyRequests] != 40 {
		t.Errorf("demo-shop: 40 requests at once answered %v, want at least 2 200s and the rest 429", got)
	}
	if got := statuses(outdoor); got[http.StatusOK] != 40 {
		t.Errorf("acme-outdoor (no tenant limit) answered %v, want 40 200s", got)
	}
}

func TestTenantFileLimitsWin(t *testing.T) {
	s := newStack(t, stackOptions{
		limits: limits.Config{RequestsPerMinute: 2},
		tenantYAML: map[string]string{
			shop:    "limits:\n  requests_per_minute: 4\n",
			outdoor: "limits:\n  requests_per_minute: 0\n",
		},
	})
	ada := s.customer(shop, "cust-ada")
	for i := range 4 {
		if r := ada.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK || r.Header.Get("RateLimit-Policy") != `"requests";q=4;w=60` {
			t.Fatalf("demo-shop request %d = %d with RateLimit-Policy %q, want 200 under its own limit of 4", i+1, r.Status, r.Header.Get("RateLimit-Policy"))
		}
	}
	ada.do("GET", "/api/v1/chat/list", nil).Problem(t, http.StatusTooManyRequests)

	// requests_per_minute: 0 turns the limit off for acme-outdoor: no limit, no fields.
	eve := s.customer(outdoor, "cust-eve")
	for i := range 10 {
		if r := eve.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK || r.Header.Get("RateLimit") != "" || r.Header.Get("RateLimit-Policy") != "" {
			t.Fatalf("acme-outdoor request %d = %d, RateLimit %q; want 200 without RateLimit fields", i+1, r.Status, r.Header.Get("RateLimit"))
		}
	}
}

// mustRefuseStream checks that u may not open another event stream: it has most open.
func mustRefuseStream(t *testing.T, u user, most int) {
	t.Helper()
	mustRefuseStreamBy(t, u, "event-streams", most)
}

// mustRefuseStreamBy checks that the stream limit named limit, of quota most, refuses u
// another event stream.
func mustRefuseStreamBy(t *testing.T, u user, limit string, most int) {
	t.Helper()
	r := u.do("GET", "/api/v1/chat/events", nil)
	if p := r.Problem(t, http.StatusTooManyRequests); p.Slug() != "rate-limited" {
		t.Fatalf("problem = %s, want rate-limited", p.Slug())
	}
	mustRetryAfter(t, r.Header, 60)
	if got, want := r.Header.Get("RateLimit-Policy"), fmt.Sprintf(`%q;q=%d;qu="concurrent-requests"`, limit, most); got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := r.Header.Get("RateLimit"), fmt.Sprintf(`%q;r=0`, limit); got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
}

// mustOpenStream opens an event stream of u on s within within, retrying while a closed one's
// slot is still being given back.
func mustOpenStream(t *testing.T, s *stack, u user, within time.Duration) *eventStream {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		es := u.on(s).events(t, "")
		if es.status == http.StatusOK {
			return es
		}
		// 429: the caller's or tenant's streams are all open; 503: the replica's are.
		if es.status != http.StatusTooManyRequests && es.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET /chat/events = %d, want 200 within %s, once a slot is free", es.status, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEventStreamLimitAcrossReplicas(t *testing.T) {
	o := stackOptions{limits: limits.Config{EventStreams: 5}, heartbeat: 50 * time.Millisecond}
	a := newStack(t, o)
	o.replicaOf = a
	b := newStack(t, o)
	ada, bob := a.customer(shop, "cust-ada"), a.customer(shop, "cust-bob")

	var open []*eventStream
	for _, on := range []*stack{a, a, a, b, b} {
		es := ada.on(on).events(t, "")
		if es.status != http.StatusOK {
			t.Fatalf("stream %d = %d, want 200", len(open)+1, es.status)
		}
		es.next(true) // the stream is live
		open = append(open, es)
	}
	mustRefuseStream(t, ada, 5)
	mustRefuseStream(t, ada.on(b), 5)
	bob.on(b).events(t, "").next(true) // another caller has streams of its own

	open[0].close() // one of the five, on replica a
	mustOpenStream(t, b, ada, streamTimeout).next(true)
	mustRefuseStream(t, ada, 5)
	if got := rejections(t, a, shop, "event-streams"); got == "0" {
		t.Errorf(`chat_rate_limit_rejections_total{tenant="demo-shop",limit="event-streams"} = %s, want > 0`, got)
	}
}

func TestStreamSlotFreesSoonAfterItsClientLeaves(t *testing.T) {
	// Idle streams send nothing for an hour: the server cannot learn from a failed write that
	// a client left.
	s := newStack(t, stackOptions{limits: limits.Config{EventStreams: 2}, heartbeat: time.Hour})
	ada := s.customer(shop, "cust-ada")
	first := mustOpenStream(t, s, ada, 0)
	first.next(true)
	mustOpenStream(t, s, ada, 0).next(true)
	mustRefuseStream(t, ada, 2)

	first.close() // the client goes away
	// A few seconds, with a margin for -race on a loaded machine.
	mustOpenStream(t, s, ada, 10*time.Second).next(true)
}

func TestTenantStreamLimitAcrossReplicas(t *testing.T) {
	// Every tenant may have 1 stream open, demo-shop 3 (its file); every caller 2.
	o := stackOptions{
		limits:     limits.Config{EventStreams: 2, TenantEventStreams: 1},
		tenantYAML: map[string]string{shop: "limits:\n  tenant_event_streams: 3\n"},
	}
	a := newStack(t, o)
	o.replicaOf = a
	b := newStack(t, o)
	ada, bob, cy := a.customer(shop, "cust-ada"), a.customer(shop, "cust-bob"), a.customer(shop, "cust-cy")

	mustOpenStream(t, a, ada, 0).next(true)
	first := mustOpenStream(t, b, ada, 0)
	first.next(true)
	// Refused by its own limit, ada takes none of the tenant's slots.
	mustRefuseStream(t, ada, 2)
	mustOpenStream(t, b, bob, 0).next(true)
	// The tenant has 3 open, over two replicas: nobody of it gets another.
	mustRefuseStreamBy(t, cy, "tenant-event-streams", 3)
	mustRefuseStreamBy(t, cy.on(b), "tenant-event-streams", 3)
	if got := rejections(t, a, shop, "tenant-event-streams"); got == "0" {
		t.Errorf(`chat_rate_limit_rejections_total{tenant="demo-shop",limit="tenant-event-streams"} = %s, want > 0`, got)
	}
	// Another tenant counts its own.
	eve, fay := a.customer(outdoor, "cust-eve"), a.customer(outdoor, "cust-fay")
	mustOpenStream(t, a, eve, 0).next(true)
	mustRefuseStreamBy(t, fay, "tenant-event-streams", 1)

	first.close()
	mustOpenStream(t, a, cy, 10*time.Second).next(true)
}

func TestReplicaServesAtMostItsStreams(t *testing.T) {
	o := stackOptions{limits: limits.Config{ReplicaEventStreams: 2}}
	a := newStack(t, o)
	o.replicaOf = a
	b := newStack(t, o)
	ada, bob, eve := a.customer(shop, "cust-ada"), a.customer(shop, "cust-bob"), a.customer(outdoor, "cust-eve")

	first := mustOpenStream(t, a, ada, 0)
	first.next(true)
	mustOpenStream(t, a, bob, 0).next(true)
	// Replica a is full, whatever the tenant: 503, so the client retries, maybe elsewhere.
	r := eve.do("GET", "/api/v1/chat/events", nil)
	if p := r.Problem(t, http.StatusServiceUnavailable); p.Slug() != "service-unavailable" {
		t.Errorf("problem = %s, want service-unavailable", p.Slug())
	}
	mustRetryAfter(t, r.Header, 10)
	// Replica b serves its own.
	mustOpenStream(t, b, eve, 0).next(true)

	first.close()
	mustOpenStream(t, a, eve, 10*time.Second).next(true)
}

func TestLimitsHoldWhileRedisIsDown(t *testing.T) {
	s := newStack(t, stackOptions{limits: limits.Config{RequestsPerMinute: 3}})
	ada, bob := s.customer(shop, "cust-ada"), s.customer(shop, "cust-bob")
	s.redis.Stop(t)

	// Each replica limits on its own: no 5xx, and not unlimited.
	for i := range 3 {
		if r := ada.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
			t.Fatalf("with Redis down, request %d = %d %s, want 200", i+1, r.Status, r.Body)
		}
	}
	r := ada.do("GET", "/api/v1/chat/list", nil)
	r.Problem(t, http.StatusTooManyRequests)
	mustRetryAfter(t, r.Header, 20)
	if r := bob.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
		t.Errorf("with Redis down, another caller = %d %s, want 200", r.Status, r.Body)
	}
	s.redis.Start(t)
}

func TestLimitsOnRedisCluster(t *testing.T) {
	s := newStack(t, stackOptions{cluster: true, limits: limits.Config{RequestsPerMinute: 10, WritesPerMinute: 1, EventStreams: 1}})
	ada := s.customer(shop, "cust-ada")
	ada.start("hello")
	ada.do("POST", "/api/v1/chat/start", map[string]any{"message": "again"}).Problem(t, http.StatusTooManyRequests)
	es := ada.events(t, "")
	if es.status != http.StatusOK {
		t.Fatalf("first stream = %d, want 200", es.status)
	}
	mustRefuseStream(t, ada, 1)
}
