package redisconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

// outage is a Redis a test can take down and bring back.
type outage interface {
	URL() string
	Stop(testing.TB)
	Start(testing.TB)
}

func TestBreakerFailsFastWhileRedisIsDown(t *testing.T) {
	servers := []struct {
		mode  string
		start func(testing.TB) outage
	}{
		{"single", func(tb testing.TB) outage { return testenv.StartRedis(tb) }},
		{"cluster", func(tb testing.TB) outage { return testenv.StartRedisCluster(tb) }},
	}
	for _, srv := range servers {
		t.Run(srv.mode, func(t *testing.T) {
			ctx := context.Background()
			r := srv.start(t)
			// The breaker's window runs on a test clock, so that a slow machine cannot close it
			// early; the timeout bounds a call to a healthy Redis, which a loaded machine may slow.
			const openFor = 500 * time.Millisecond
			clock := testenv.NewClock(time.Now())
			rdb, err := redisconn.Open(r.URL(), redisconn.Options{Mode: srv.mode, Timeout: 5 * time.Second, OpenFor: openFor, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("Set = %v", err)
			}
			r.Stop(t)
			first := time.Now()
			if err := rdb.Set(ctx, "k", "v", 0).Err(); err == nil || errors.Is(err, redisconn.ErrOpen) {
				t.Fatalf("the first Set with Redis down = %v, want a connection error", err)
			}
			// Refused connections fail at once; what takes time is go-redis retrying and redialing.
			if d := time.Since(first); d > 3*time.Second {
				t.Errorf("the first call with Redis down took %s, want well under 3s", d)
			}
			// While the window lasts, calls fail with ErrOpen, which the breaker returns without
			// touching the network.
			for i := range 20 {
				clock.Advance(openFor / 25)
				if err := rdb.Set(ctx, "k", "v", 0).Err(); !errors.Is(err, redisconn.ErrOpen) {
					t.Fatalf("Set %d with the breaker open = %v, want ErrOpen", i+1, err)
				}
			}
			// Once it has passed, one call goes through; Redis still down, it opens the breaker
			// again.
			clock.Advance(openFor)
			if err := rdb.Set(ctx, "k", "v", 0).Err(); err == nil || errors.Is(err, redisconn.ErrOpen) {
				t.Fatalf("Set after the window with Redis down = %v, want a connection error", err)
			}
			if err := rdb.Set(ctx, "k", "v", 0).Err(); !errors.Is(err, redisconn.ErrOpen) {
				t.Fatalf("Set right after that = %v, want ErrOpen", err)
			}
			r.Start(t)
			deadline := time.Now().Add(30 * time.Second)
			for {
				clock.Advance(openFor)
				if err := rdb.Set(ctx, "k", "v", 0).Err(); err == nil {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("Redis back, but calls still fail after 30s: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
		mode string
	}{
		{"not a redis url", "http://nope", ""},
		{"not a redis url for a cluster", "http://nope", "cluster"},
		{"a cluster url for a single server", "redis://a:6379?addr=b:6379", "single"},
		{"an unknown mode", "redis://localhost:6379", "sentinel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redisconn.Open(tt.url, redisconn.Options{Mode: tt.mode}); err == nil {
				t.Errorf("Open(%q, Mode %q) = nil error", tt.url, tt.mode)
			}
		})
	}
}
