package limits

import (
	"sync"
	"time"
)

// Leased quota: a replica takes a caller's or a tenant's requests from Redis in chunks and
// counts them in process until the chunk is used up or its lease ends, so a busy key costs
// Redis one round trip per chunk instead of one per request. The chunk starts at one request
// and doubles while leases are used up in time, halves when one ends unused, and never exceeds
// maxChunk of the quota nor an eighth of what Redis said remains: a caller far from its limit
// costs few round trips, one close to it is counted one request at a time, as without leases.
//
// Requests are taken from Redis before they are allowed, so a replica never allows more than
// Redis granted it: the limit holds across replicas. What leasing changes is when a granted
// request is used: up to leaseFor(p) later. Over any window a key may so be allowed up to
// (window + leaseFor) / window of its quota, 1/20 more at most (tested with 3 replicas in
// TestLeasedQuotaHoldsAcrossReplicas). A chunk that ends unused is lost to its key until GCRA
// refills it, which makes a caller spread over replicas refused slightly early, never late.

// maxChunkShare is the largest chunk as a share of the quota.
const maxChunkShare = 20

// leaseFor is how long a chunk of p may be used: a twentieth of its window, at most a second.
func leaseFor(p Policy) time.Duration { return min(p.Window/maxChunkShare, time.Second) }

// maxChunk is the largest chunk of p.
func maxChunk(p Policy) int { return max(1, p.Quota/maxChunkShare) }

// lease is the quota of one key this replica holds.
type lease struct {
	policy  Policy
	tokens  int       // granted by Redis, not yet used
	until   time.Time // wall clock: when the unused tokens are forgotten
	chunk   int       // the size of the next chunk to ask for
	redis   int       // what Redis said remained at the last grant
	resetAt time.Time // when Redis said the quota would be whole again
}

// leases are the leases of this replica, by key.
type leases struct {
	mu sync.Mutex
	m  map[string]*lease
}

func newLeases() *leases { return &leases{m: map[string]*lease{}} }

// take uses one request of key's lease under p at now, if it holds one. It returns the
// decision for it.
func (ls *leases) take(key string, p Policy, now time.Time) (Decision, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil || l.policy != p || l.tokens == 0 || !now.Before(l.until) {
		return Decision{}, false
	}
	l.tokens--
	return Decision{Allowed: true, Policy: p, Remaining: l.redis + l.tokens, Reset: max(l.resetAt.Sub(now), 0)}, true
}

// want returns how many requests of key to ask Redis for at now.
func (ls *leases) want(key string, p Policy, now time.Time) int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil || l.policy != p {
		return 1
	}
	chunk := l.chunk
	if l.tokens > 0 && !now.Before(l.until) {
		chunk /= 2 // the last chunk ended unused: this replica asked for too many
	}
	return max(1, min(chunk, maxChunk(p), l.redis/8))
}

// granted records that Redis granted n requests of key under p at now, asked for wanted,
// one of which the caller uses at once, and that remaining were left with the quota whole
// again after reset. It returns the decision for the request that is used.
func (ls *leases) granted(key string, p Policy, now time.Time, wanted, n, remaining int, reset time.Duration) Decision {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil || l.policy != p {
		l = &lease{policy: p, chunk: 1}
		ls.m[key] = l
	}
	if l.tokens > 0 && !now.Before(l.until) {
		l.tokens = 0 // forgotten: too late to use
	}
	switch {
	case n == wanted && l.tokens == 0:
		// The last chunk was used up in time and this one is whole: ask for more next time.
		l.chunk = min(wanted*2, maxChunk(p))
	case n < wanted || l.tokens > 0:
		l.chunk = max(1, wanted/2)
	}
	l.tokens += n - 1
	l.until = now.Add(leaseFor(p))
	l.redis = remaining
	l.resetAt = now.Add(reset)
	return Decision{Allowed: true, Policy: p, Remaining: l.redis + l.tokens, Reset: reset}
}

// forgetPast drops the leases that ended before now.
func (ls *leases) forgetPast(now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for key, l := range ls.m {
		if !now.Before(l.until) {
			delete(ls.m, key)
		}
	}
}
