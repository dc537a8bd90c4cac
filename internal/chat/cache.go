package chat

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// loadTimeout bounds one load of a cached value.
const loadTimeout = 5 * time.Second

// ttlCache keeps one value per key for ttl, loading a missing or stale value once however many
// callers ask for it at the same time.
type ttlCache[V any] struct {
	name  string
	obs   CacheObserver
	ttl   time.Duration
	now   func() time.Time
	group singleflight.Group

	// wait, when set, bounds how long get waits for a load (see bounded).
	wait time.Duration

	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

// CacheObserver counts cache hits and misses (the telemetry metrics implement it).
type CacheObserver interface {
	CacheRequest(cache string, hit bool)
}

func newTTLCache[V any](name string, ttl time.Duration, now func() time.Time, obs CacheObserver) *ttlCache[V] {
	return &ttlCache[V]{name: name, obs: obs, ttl: ttl, now: now, entries: make(map[string]ttlEntry[V])}
}

// get returns the cached value of key, calling load when it is missing or stale. A failed load
// is not cached.
func (c *ttlCache[V]) get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	hit := ok && c.now().Before(e.expires)
	if c.obs != nil {
		c.obs.CacheRequest(c.name, hit)
	}
	if hit {
		return e.value, nil
	}
	ch := c.group.DoChan(key, func() (any, error) {
		// A caller that missed just before another's load was kept finds it here instead of
		// loading again.
		c.mu.Lock()
		e, ok := c.entries[key]
		c.mu.Unlock()
		if ok && c.now().Before(e.expires) {
			return e.value, nil
		}
		// The load serves every waiting caller, so one caller giving up must not cancel it.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err != nil && c.wait <= 0 {
			return v, err
		}
		// A bounded cache keeps a failure too, as the zero value: a slow or failing source is
		// asked at most once per TTL.
		c.mu.Lock()
		c.entries[key] = ttlEntry[V]{value: v, expires: c.now().Add(c.ttl)}
		c.mu.Unlock()
		return v, err
	})
	if c.wait <= 0 {
		r := <-ch
		return r.Val.(V), r.Err
	}
	if ok {
		return e.value, nil // stale: the load refreshes it in the background
	}
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.Val.(V), r.Err
	case <-timer.C:
		return e.value, nil // stale, or the zero value; the load goes on and is kept
	}
}

// bounded makes get never wait for a value it has, even a stale one: it answers that and loads
// a fresh one in the background. Without a value it waits at most d for the load, and past that
// answers the zero value while the load finishes in the background and is cached. A failed load
// is cached as the zero value. (The expected reply time is a median over seven days: a list or
// two late it says the same, and no list of the tenant waits for its refresh once a minute.)
func (c *ttlCache[V]) bounded(d time.Duration) *ttlCache[V] {
	c.wait = d
	return c
}

// put caches v, just loaded by the caller, for key. A load in flight that began earlier may
// still replace it with what it read: callers that must see a write read the source
// themselves, as put's callers do.
func (c *ttlCache[V]) put(key string, v V) {
	c.mu.Lock()
	c.entries[key] = ttlEntry[V]{value: v, expires: c.now().Add(c.ttl)}
	c.mu.Unlock()
}

// recentSet remembers keys for a while, so something is done once per key and interval. It
// holds at most max keys, forgetting all of them when full.
type recentSet struct {
	every time.Duration
	max   int

	mu   sync.Mutex
	seen map[string]time.Time
}

func newRecentSet(every time.Duration, limit int) *recentSet {
	return &recentSet{every: every, max: limit, seen: make(map[string]time.Time)}
}

// first reports whether key was not seen within the interval before now, and remembers it.
func (r *recentSet) first(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.seen[key]; ok && now.Sub(at) < r.every {
		return false
	}
	if len(r.seen) >= r.max {
		clear(r.seen)
	}
	r.seen[key] = now
	return true
}

// forget drops key, so the next first(key) is true.
func (r *recentSet) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, key)
}
