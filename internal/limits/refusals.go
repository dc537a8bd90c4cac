package limits

import (
	"sync"
	"time"
)

// refusals remember, by key, until when Redis refused a rate. GCRA allows nothing at a key
// before the time it names on a refusal: refused requests do not move it, and requests other
// replicas are allowed only move it later. So a flood past its limit is refused in process
// for that long, and costs Redis one round trip per refusal period instead of one per request.
type refusals struct {
	mu    sync.Mutex
	until map[string]refusal
}

// refusal is one key's refusal: of which policy (a tenant file may change it), until when.
type refusal struct {
	policy Policy
	until  time.Time
}

func newRefusals() *refusals { return &refusals{until: map[string]refusal{}} }

// check reports whether key is refused under p at now, and for how long still.
func (r *refusals) check(key string, p Policy, now time.Time) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.until[key]
	if !ok {
		return 0, false
	}
	if f.policy != p || !now.Before(f.until) {
		delete(r.until, key)
		return 0, false
	}
	return f.until.Sub(now), true
}

// note records that Redis refused key under p until until.
func (r *refusals) note(key string, p Policy, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.until[key] = refusal{policy: p, until: until}
}

// forgetPast drops the refusals that ended before now.
func (r *refusals) forgetPast(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, f := range r.until {
		if !now.Before(f.until) {
			delete(r.until, key)
		}
	}
}
