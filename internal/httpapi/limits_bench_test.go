package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/supportchat/supportchat/internal/limits"
)

// floodWorkers is how many clients of the flooding tenant send requests at once.
const floodWorkers = 8

// floodRate is the rate of the paced flood: twice the flooding tenant's limit, 200 times each
// of its callers'.
const floodRate = 2000

// BenchmarkQuietTenantUnderFlood measures what one tenant flooding the API costs another:
// GET /api/v1/chat/list of a quiet tenant (demo-shop, 20 customers in turn, one request at a
// time, over real HTTP) "alone", and while acme-outdoor floods the API with lists from 8
// clients of 2 customers, answered 429 once over their limits: "flood-2000rps" at twice the
// tenant's limit, "flood-unpaced" as fast as the clients can (in this process, on the same
// cores: it measures CPU starvation as much as the service). Limits are the production
// defaults, the quiet tenant's raised so that it is never refused itself. It reports the quiet
// lists' p50 and p99 and, under a flood, the flood's requests per second and share of 429s.
// The goal (PRODUCT.md "Limits"): a flood raises the quiet tenant's p99 by at most 2×; compare
// p99-ms of the sub-benchmarks.
func BenchmarkQuietTenantUnderFlood(b *testing.B) {
	s := newStack(b, stackOptions{
		productionCaches: true,
		limits:           limits.Config{RequestsPerMinute: 600, WritesPerMinute: 60, EventStreams: 5, TenantRequestsPerSecond: 1000},
		// One request at a time from the quiet tenant is faster than its own limits allow (a
		// cached list takes about a millisecond): its file raises them, so it is checked on
		// every request, as any tenant is, but never refused.
		tenantYAML: map[string]string{shop: "limits:\n  requests_per_minute: 10000000\n  tenant_requests_per_second: 10000000\n"},
	})
	quiet := make([]user, 20)
	for i := range quiet {
		quiet[i] = s.customer(shop, fmt.Sprintf("quiet-%d", i))
		quiet[i].start("hello")
	}
	flooders := []user{s.customer(outdoor, "flood-1"), s.customer(outdoor, "flood-2")}
	for _, u := range flooders {
		u.start("hello")
	}

	b.Run("alone", func(b *testing.B) { benchQuietLists(b, s, quiet) })
	for _, fl := range []struct {
		name string
		rate int
	}{{"flood-2000rps", floodRate}, {"flood-unpaced", 0}} {
		b.Run(fl.name, func(b *testing.B) {
			f := startFlood(b, s, flooders, fl.rate)
			benchQuietLists(b, s, quiet)
			f.stop(b)
		})
	}
}

// benchQuietLists sends b.N lists of the quiet users in turn, one at a time, and reports the
// p50 and p99 latency.
func benchQuietLists(b *testing.B, s *stack, users []user) {
	client := s.srv.Client()
	reqs := make([]*http.Request, len(users))
	for i, u := range users {
		reqs[i], _ = http.NewRequest("GET", s.srv.URL+"/api/v1/chat/list", nil)
		reqs[i].Header.Set("X-Tenant-ID", u.tenant)
		reqs[i].Header.Set("Authorization", "Bearer "+u.token)
	}
	var latencies []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		resp, err := client.Do(reqs[i%len(reqs)])
		if err != nil {
			b.Fatalf("quiet list: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		latencies = append(latencies, time.Since(t0))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("quiet list = %d, want 200: %s", resp.StatusCode, body)
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(percentile(latencies, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(latencies, 99).Microseconds())/1000, "p99-ms")
}

// flood is a tenant sending lists from floodWorkers clients, at a rate or as fast as they can.
type flood struct {
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	start            time.Time
	sent, refused    atomic.Int64
	failures         atomic.Int64
	firstFailure     atomic.Value // string
	refusedAtMeasure int64
	sentAtMeasure    int64
}

// startFlood starts flooding as users at perSecond requests a second (0: as fast as the
// clients can) and returns once the flood is being refused (the users spent their quota), so
// the measurement sees the steady state of a limited flood.
func startFlood(b *testing.B, s *stack, users []user, perSecond int) *flood {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &flood{cancel: cancel}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: floodWorkers}}
	pace := rate.NewLimiter(rate.Inf, 0)
	if perSecond > 0 {
		pace = rate.NewLimiter(rate.Limit(perSecond), floodWorkers)
	}
	for w := range floodWorkers {
		u := users[w%len(users)]
		f.wg.Go(func() {
			for pace.Wait(ctx) == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", s.srv.URL+"/api/v1/chat/list", nil)
				req.Header.Set("X-Tenant-ID", u.tenant)
				req.Header.Set("Authorization", "Bearer "+u.token)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						f.fail(err.Error())
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				f.sent.Add(1)
				switch resp.StatusCode {
				case http.StatusOK:
				case http.StatusTooManyRequests:
					f.refused.Add(1)
				default:
					f.fail(fmt.Sprintf("status %d", resp.StatusCode))
				}
			}
		})
	}
	deadline := time.Now().Add(2 * time.Minute)
	for f.refused.Load() < 100 {
		if time.Now().After(deadline) {
			f.stop(b)
			b.Fatalf("the flood got %d 429s of %d requests in 2 minutes; want it limited", f.refused.Load(), f.sent.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.start, f.sentAtMeasure, f.refusedAtMeasure = time.Now(), f.sent.Load(), f.refused.Load()
	return f
}

func (f *flood) fail(msg string) {
	if f.failures.Add(1) == 1 {
		f.firstFailure.Store(msg)
	}
}

// stop ends the flood and reports its rate and share of 429s while the quiet tenant was
// measured.
func (f *flood) stop(b *testing.B) {
	b.Helper()
	d := time.Since(f.start)
	sent, refused := f.sent.Load()-f.sentAtMeasure, f.refused.Load()-f.refusedAtMeasure
	f.cancel()
	f.wg.Wait()
	if n := f.failures.Load(); n > 0 {
		b.Fatalf("%d flood requests failed other than with 429, first: %v", n, f.firstFailure.Load())
	}
	if f.start.IsZero() || sent == 0 {
		return
	}
	b.ReportMetric(float64(sent)/d.Seconds(), "flood-req/s")
	b.ReportMetric(100*float64(refused)/float64(sent), "flood-429-%")
}
