package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// concurrentWriters is how many clients post at the same time in BenchmarkSend.
const concurrentWriters = 8

// BenchmarkSend measures POST /api/v1/chat/{id}/messages with 8 clients posting at once over
// real HTTP (FerretDB, redis-server), and reports the p50 and p99 latency of one request:
// "one-conversation" has a customer (4 clients) and 4 admins writing into the same
// conversation, the worst case for a write path that must order messages; "own-conversation"
// has 8 customers each writing into their own.
func BenchmarkSend(b *testing.B) {
	s := newStack(b, stackOptions{productionCaches: true})
	s.admin(shop, "admin-0").setPresence("online")

	b.Run("one-conversation", func(b *testing.B) {
		ada := s.customer(shop, "cust-ada")
		conv := ada.start("hello").ID
		writers := make([]writer, concurrentWriters)
		for i := range writers {
			who := ada
			if i%2 == 1 {
				who = s.admin(shop, fmt.Sprintf("admin-%d", i))
			}
			writers[i] = writer{who: who, conv: conv}
		}
		benchWrites(b, s, writers)
	})
	b.Run("own-conversation", func(b *testing.B) {
		writers := make([]writer, concurrentWriters)
		for i := range writers {
			who := s.customer(shop, fmt.Sprintf("cust-%d", i))
			writers[i] = writer{who: who, conv: who.start("hello").ID}
		}
		benchWrites(b, s, writers)
	})
}

// writer is one client of BenchmarkSend: who posts, and into which conversation.
type writer struct {
	who  user
	conv string
}

// benchWrites runs b.N posts spread over the writers, all at once, and reports the latency
// percentiles of single requests.
func benchWrites(b *testing.B, s *stack, writers []writer) {
	client := s.srv.Client()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
	)
	next := make(chan int)
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() {
			for n := range next {
				body := fmt.Sprintf(`{"body":"message %d from %s"}`, n, w.who.id)
				req, _ := http.NewRequest("POST", s.srv.URL+"/api/v1/chat/"+w.conv+"/messages", bytes.NewBufferString(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Tenant-ID", w.who.tenant)
				req.Header.Set("Authorization", "Bearer "+w.who.token)
				t0 := time.Now()
				resp, err := client.Do(req)
				d := time.Since(t0)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				latencies = append(latencies, d)
				if status != http.StatusCreated {
					failures = append(failures, fmt.Sprintf("status %d, error %v", status, err))
				}
				mu.Unlock()
			}
		})
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	if len(failures) > 0 {
		b.Fatalf("%d of %d posts failed, first: %s", len(failures), len(latencies), failures[0])
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(percentile(latencies, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(latencies, 99).Microseconds())/1000, "p99-ms")
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}
