package redisconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

func TestBreakerFailsFastWhileRedisIsDown(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rdb, err := redisconn.Open(r.URL(), redisconn.Options{Timeout: 200 * time.Millisecond, OpenFor: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	r.Stop(t)
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("Ping with Redis down = nil")
	}
	start := time.Now()
	for range 20 {
		if err := rdb.Ping(ctx).Err(); !errors.Is(err, redisconn.ErrOpen) {
			t.Fatalf("Ping while open = %v, want ErrOpen", err)
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("20 calls with the breaker open took %s; they must not wait on the network", d)
	}
	r.Start(t)
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("Redis back, but calls still fail after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	if _, err := redisconn.Open("http://nope", redisconn.Options{}); err == nil {
		t.Error("Open(http://nope) = nil error")
	}
}
