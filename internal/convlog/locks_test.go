package convlog

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestKeyedLocksSerialiseOneKeyOnly(t *testing.T) {
	k := newKeyedLocks()
	ctx := context.Background()
	var mu sync.Mutex
	inside := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		key := []string{"a", "b"}[i%2]
		wg.Go(func() {
			unlock, err := k.lock(ctx, key)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside[key]++
			if inside[key] > 1 {
				t.Errorf("%d holders of %q at once", inside[key], key)
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside[key]--
			mu.Unlock()
			unlock()
		})
	}
	wg.Wait()
	if len(k.locks) != 0 {
		t.Errorf("%d locks kept after everyone left, want 0", len(k.locks))
	}

	unlock, _ := k.lock(ctx, "a")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.lock(canceled, "a"); err == nil {
		t.Error("lock with a canceled context waited for the holder and got the lock")
	}
	unlock()
	if len(k.locks) != 0 {
		t.Errorf("%d locks kept after a canceled wait, want 0", len(k.locks))
	}
}
