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
			rdb, err := redisconn.Open(r.URL(), redisconn.Options{Mode: srv.mode, Timeout: 200 * time.Millisecond, OpenFor: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("Set = %v", err)
			}
			r.Stop(t)
			first := time.Now()
			if err := rdb.Set(ctx, "k", "v", 0).Err(); err == nil {
				t.Fatal("Set with Redis down = nil")
			}
			// Refused connections fail at once; what takes time is go-redis retrying and redialing.
			if d := time.Since(first); d > 3*time.Second {
				t.Errorf("the first call with Redis down took %s, want well under 3s", d)
			}
			start := time.Now()
			for range 20 {
				if err := rdb.Set(ctx, "k", "v", 0).Err(); !errors.Is(err, redisconn.ErrOpen) {
					t.Fatalf("Set while open = %v, want ErrOpen", err)
				}
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("20 calls with the breaker open took %s; they must not wait on the network", d)
			}
			r.Start(t)
			deadline := time.Now().Add(10 * time.Second)
			for rdb.Set(ctx, "k", "v", 0).Err() != nil {
				if time.Now().After(deadline) {
					t.Fatal("Redis back, but calls still fail after 10s")
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
