package chat

import (
	"context"
	"errors"
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

	// A failure is kept as the zero value for the TTL: the source is not asked again.
	fails := 0
	failing := func(context.Context) (int, error) { fails++; return 0, errors.New("timeout") }
	if _, err := c.get(context.Background(), "f", failing); err == nil {
		t.Error("the failure was not reported to the first caller")
	}
	if v, err := c.get(context.Background(), "f", failing); v != 0 || err != nil || fails != 1 {
		t.Errorf("after a failure: %d, %v, %d loads; want the zero value from the cache", v, err, fails)
	}
	now = now.Add(2 * time.Minute)
	_, _ = c.get(context.Background(), "f", failing)
	if fails != 2 {
		t.Errorf("after the TTL the source was asked %d times in all, want 2", fails)
	}
}
