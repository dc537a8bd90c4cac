package cache

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"
)

// The in-process layer holds at most its byte budget, dropping the least recently used values
// first rather than everything.
func TestLocalLayerStaysWithinItsByteBudget(t *testing.T) {
	const budget, size, stored = 32 << 10, 1 << 10, 200
	l := newLocal(budget)
	now := time.Now()
	later := now.Add(time.Minute)
	key := func(i int) string { return fmt.Sprint("page-", i) }
	for i := range stored {
		l.keep(key(i), "g", bytes.Repeat([]byte{'<'}, size), now, later)
		if l.used > budget {
			t.Fatalf("after %d values of %d bytes: %d bytes held, budget %d", i+1, size, l.used, budget)
		}
		// Value 0 is read after every store, so it stays among the most recently used.
		if l.current(key(0), "g", now) == nil {
			t.Fatalf("value 0, read after every store, was dropped after %d stores", i+1)
		}
	}
	var held []int
	for i := range stored {
		if l.recent(key(i), time.Second, now) != nil {
			held = append(held, i)
		}
	}
	perValue := int(size + entryOverhead + len(key(100)) + 1)
	if want := budget/perValue - 1; len(held) < want {
		t.Errorf("holds %d values of %d bytes in a %d-byte budget, want at least %d (it dropped more than it had to): %v", len(held), size, budget, want, held)
	}
	if !slices.Contains(held, stored-1) || slices.Contains(held, 1) {
		t.Errorf("holds %v: want the newest (%d), not the oldest unread (1)", held, stored-1)
	}
	var sum int64
	for el := l.order.Front(); el != nil; el = el.Next() {
		sum += el.Value.(*localEntry).size()
	}
	if sum != l.used || len(l.byKey) != l.order.Len() {
		t.Errorf("counted %d bytes, the values add up to %d; %d keys, %d in order", l.used, sum, len(l.byKey), l.order.Len())
	}

	// A value larger than the budget is not kept, and a budget below zero keeps nothing.
	l.keep("huge", "g", make([]byte, budget), now, later)
	if l.current("huge", "g", now) != nil {
		t.Errorf("a value larger than the budget was kept")
	}
	off := newLocal(-1)
	off.keep("k", "g", []byte("v"), now, later)
	if off.current("k", "g", now) != nil || off.used != 0 {
		t.Errorf("a layer with a negative budget kept a value")
	}
}
