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
	v, err, _ := c.group.Do(key, func() (any, error) {
		// The load serves every waiting caller, so one caller giving up must not cancel it.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err != nil {
			return v, err
		}
		c.mu.Lock()
		c.entries[key] = ttlEntry[V]{value: v, expires: c.now().Add(c.ttl)}
		c.mu.Unlock()
		return v, nil
	})
	return v.(V), err
}

// forget drops the cached value of key.
func (c *ttlCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
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

func newRecentSet(every time.Duration, max int) *recentSet {
	return &recentSet{every: every, max: max, seen: make(map[string]time.Time)}
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
