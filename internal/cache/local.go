package cache

import (
	"container/list"
	"sync"
	"time"
)

// entryOverhead is what one in-process value costs beyond its key, generation and body: the
// map slot, the list element, the entry and the allocator's rounding.
const entryOverhead = 256

// local is the in-process layer: values by key, at most budget bytes in all (each counted as
// key, generation and body plus entryOverhead); the least recently used go first. A budget
// below zero keeps nothing.
type local struct {
	budget int64

	mu    sync.Mutex
	used  int64
	byKey map[string]*list.Element // of *localEntry
	order list.List                // most recently used first
}

// localEntry is a value held in process: its generation, when it was last known current, and
// when it expires.
type localEntry struct {
	key, gen string
	body     []byte
	checked  time.Time
	expires  time.Time
}

func (e *localEntry) size() int64 { return int64(len(e.key)+len(e.gen)+len(e.body)) + entryOverhead }

func newLocal(budget int64) *local {
	return &local{budget: budget, byKey: make(map[string]*list.Element)}
}

// current returns the value of key if its generation is gen and it has not expired, marking
// it checked.
func (l *local) current(key, gen string, now time.Time) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.live(key, now)
	if e == nil || e.gen != gen {
		return nil
	}
	e.checked = now
	return e.body
}

// recent returns the value of key if it was known current within maxAge and has not expired.
func (l *local) recent(key string, maxAge time.Duration, now time.Time) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.live(key, now)
	if e == nil || now.Sub(e.checked) > maxAge {
		return nil
	}
	return e.body
}

// live returns the entry of key, marked most recently used, unless it is missing or expired
// (then it is dropped). l.mu is held.
func (l *local) live(key string, now time.Time) *localEntry {
	el, ok := l.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*localEntry)
	if !now.Before(e.expires) {
		l.remove(el)
		return nil
	}
	l.order.MoveToFront(el)
	return e
}

// keep holds body as key's value of generation gen, known current at now, until expires; then
// drops the least recently used values until the layer is within its budget. A value larger
// than the whole budget is not kept.
func (l *local) keep(key, gen string, body []byte, now, expires time.Time) {
	e := &localEntry{key: key, gen: gen, body: body, checked: now, expires: expires}
	if e.size() > l.budget {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.byKey[key]; ok {
		l.remove(el)
	}
	l.byKey[key] = l.order.PushFront(e)
	l.used += e.size()
	for l.used > l.budget {
		l.remove(l.order.Back())
	}
}

// remove drops el. l.mu is held.
func (l *local) remove(el *list.Element) {
	e := l.order.Remove(el).(*localEntry)
	delete(l.byKey, e.key)
	l.used -= e.size()
}
