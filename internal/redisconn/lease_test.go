package redisconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestLeaseOneHolderAtATime has two replicas ask for the same turn: the first keeps it while
// it asks again within its time, the other takes it over once it expires, and both get it
// while Redis is down.
func TestLeaseOneHolderAtATime(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	open := func() *redisconn.Lease {
		rdb, err := redisconn.Open(r.URL(), redisconn.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		return redisconn.NewLease(rdb)
	}
	a, b := open(), open()
	const ttl = 300 * time.Millisecond
	if !a.Take(ctx, "relay", ttl) {
		t.Fatal("the first replica to ask did not get the turn")
	}
	for range 5 {
		if b.Take(ctx, "relay", ttl) {
			t.Fatal("another replica got a turn its holder keeps renewing")
		}
		if !a.Take(ctx, "relay", ttl) {
			t.Fatal("the holder lost a turn it renewed within its time")
		}
		time.Sleep(ttl / 3)
	}
	if !b.Take(ctx, "other", ttl) {
		t.Error("another turn's name was taken by the first")
	}
	// a stops asking (it died): b takes over once the turn expires, and keeps it.
	deadline := time.Now().Add(10 * time.Second)
	for !b.Take(ctx, "relay", ttl) {
		if time.Now().After(deadline) {
			t.Fatal("the turn of a replica that stopped asking was never taken over")
		}
		time.Sleep(ttl / 3)
	}
	if a.Take(ctx, "relay", ttl) {
		t.Error("the old holder got the turn back while the new one holds it")
	}
	r.Stop(t)
	if !a.Take(ctx, "relay", ttl) || !b.Take(ctx, "relay", ttl) {
		t.Error("with Redis down a turn is not given: the work it stands for would stop")
	}
}
