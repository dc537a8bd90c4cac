package limits

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// localRates are the request rates of this replica alone, used while Redis is down: a token
// bucket per key with the same quota and window as the policy in Redis. With n replicas a
// caller may then get up to n times its quota, never unlimited.
type localRates struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLocalRates() *localRates { return &localRates{buckets: map[string]*rate.Limiter{}} }

// allow takes one request of the rate p at key at time now.
func (r *localRates) allow(key string, p Policy, now time.Time) Decision {
	every := rate.Limit(float64(p.Quota) / p.Window.Seconds())
	r.mu.Lock()
	b := r.buckets[key]
	if b == nil {
		b = rate.NewLimiter(every, p.Quota)
		r.buckets[key] = b
	} else if b.Limit() != every || b.Burst() != p.Quota {
		// A tenant file changed the limit.
		b.SetLimitAt(now, every)
		b.SetBurstAt(now, p.Quota)
	}
	r.mu.Unlock()

	res := b.ReserveN(now, 1)
	if wait := res.DelayFrom(now); !res.OK() || wait > 0 {
		res.CancelAt(now)
		if !res.OK() {
			wait = p.Window
		}
		return Decision{Policy: p, Reset: wait, RetryAfter: wait}
	}
	tokens := b.TokensAt(now)
	refill := time.Duration((float64(p.Quota) - tokens) / float64(every) * float64(time.Second))
	return Decision{Allowed: true, Policy: p, Remaining: int(math.Max(tokens, 0)), Reset: refill}
}

// forgetIdle drops the buckets that are full again at now: they hold nothing a new one would
// not, and this keeps the map as small as the callers of the last window.
func (r *localRates) forgetIdle(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, b := range r.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(r.buckets, key)
		}
	}
}
