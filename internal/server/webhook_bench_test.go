package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/testenv"
	"github.com/supportchat/supportchat/internal/webhook"
)

// BenchmarkWebhookDelivery measures webhooks through one replica of the whole service, on each
// test server (FerretDB on SQLite and on PostgreSQL, MongoDB with CHAT_TEST_MONGODB_URI), with
// the production poll interval:
//
//   - latency: from a message's 201 to its delivery's arrival at a loopback receiver, one
//     message at a time (ms-p50, ms-p99);
//   - throughput: deliveries per second to 8 endpoints while 4 writers send 100 messages each
//     as fast as they can (deliveries/s), and how long the last delivery arrives after the
//     last write is answered (drain-ms).
//
// go test -run '^$' -bench WebhookDelivery -benchtime 1x ./internal/server/
func BenchmarkWebhookDelivery(b *testing.B) {
	for _, srv := range testenv.MongoServers() {
		b.Run(srv.Name, func(b *testing.B) {
			for range b.N {
				uri, database := srv.MustDatabase(b)
				benchmarkWebhooks(b, newHookStackOn(b, uri, database, nil, faultTenant))
			}
		})
	}
}

func benchmarkWebhooks(b *testing.B, s *hookStack) {
	{
		f, _ := s.replica(b, faultTenant, server.WebhookTuning{Poll: webhook.DefaultPoll})
		var mu sync.Mutex
		arrived := map[string]time.Time{}
		rc := newReceiver(b, func(_ int, r *http.Request, _ http.ResponseWriter) int { return http.StatusNoContent })
		rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var buf [4096]byte
			n, _ := r.Body.Read(buf[:])
			body := string(buf[:n])
			if i := strings.Index(body, `"body":"`); i >= 0 {
				key := body[i+8:]
				key = key[:strings.IndexByte(key, '"')] + " " + r.URL.Path
				mu.Lock()
				if _, ok := arrived[key]; !ok {
					arrived[key] = time.Now()
				}
				mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
		})
		at := func(key string) (time.Time, bool) {
			mu.Lock()
			defer mu.Unlock()
			t, ok := arrived[key]
			return t, ok
		}

		f.endpoint(b, rc.srv.URL+"/0", "message.created")
		conv := f.mustStart(b, "latency")
		var lat []time.Duration
		for i := range 100 {
			body := fmt.Sprintf("latency %d", i)
			f.mustSend(b, conv, body)
			sent := time.Now()
			var got time.Time
			waitUntil(b, body, func() bool { var ok bool; got, ok = at(body + " /0"); return ok })
			lat = append(lat, got.Sub(sent))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")

		const endpoints, writers, messages = 8, 4, 100
		for e := 1; e < endpoints; e++ {
			f.endpoint(b, fmt.Sprintf("%s/%d", rc.srv.URL, e), "message.created")
		}
		start := time.Now()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				c := f.mustStart(b, fmt.Sprintf("load %d", w))
				for i := range messages {
					f.mustSend(b, c, fmt.Sprintf("load %d-%d", w, i))
				}
			})
		}
		wg.Wait()
		written := time.Now()
		want := writers * (messages + 1) * endpoints
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			n := 0
			for k := range arrived {
				if strings.HasPrefix(k, "load ") {
					n++
				}
			}
			mu.Unlock()
			if n >= want {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d load deliveries arrived within 5 minutes", n, want)
			}
		}
		var last time.Time
		mu.Lock()
		for k, t := range arrived {
			if strings.HasPrefix(k, "load ") && t.After(last) {
				last = t
			}
		}
		mu.Unlock()
		b.ReportMetric(float64(want)/last.Sub(start).Seconds(), "deliveries/s")
		b.ReportMetric(float64(last.Sub(written).Milliseconds()), "drain-ms")
	}
}
