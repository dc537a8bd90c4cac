package chat

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestBoundedCacheAnswersWithoutWaitingForASlowSource(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c := newTTLCache[int]("test", time.Minute, clock, nil).bounded(20 * time.Millisecond)
	release := make(chan struct{})
	loads := 0
	slow := func(context.Context) (int, error) { loads++; <-release; return 7, nil }

	if v, err := c.get(context.Background(), "k", slow); v != 0 || err != nil {
		t.Fatalf("first get of a slow source = %d, %v; want the zero value at once", v, err)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := c.get(context.Background(), "k", slow)
		if v == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background load was never kept")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if loads != 1 {
		t.Errorf("loaded %d times, want 1", loads)
	}

	// Past the TTL the stale value is answered at once, however slow the source, and the
	// fresh one replaces it when it comes.
	now = now.Add(2 * time.Minute)
	again := make(chan struct{})
	slower := func(context.Context) (int, error) { <-again; return 8, nil }
	if v, err := c.get(context.Background(), "k", slower); v != 7 || err != nil {
		t.Fatalf("stale get of a slow source = %d, %v; want the stale 7 at once", v, err)
	}
	close(again)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if v, _ := c.get(context.Background(), "k", slower); v == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh was never kept")
		}
	}

	// A failure is kept as the zero value for the TTL: the source is not asked again.
	var fails atomic.Int32
	failing := func(context.Context) (int, error) { fails.Add(1); return 0, errors.New("timeout") }
	if _, err := c.get(context.Background(), "f", failing); err == nil {
		t.Error("the failure was not reported to the first caller")
	}
	if v, err := c.get(context.Background(), "f", failing); v != 0 || err != nil || fails.Load() != 1 {
		t.Errorf("after a failure: %d, %v, %d loads; want the zero value from the cache", v, err, fails.Load())
	}
	now = now.Add(2 * time.Minute)
	_, _ = c.get(context.Background(), "f", failing)
	for deadline := time.Now().Add(10 * time.Second); fails.Load() != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the TTL the source was asked %d times in all, want 2", fails.Load())
		}
	}
}
