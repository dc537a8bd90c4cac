package limits

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/tenant"
)

// Defaults of Options.
const (
	// defaultLease is how long a stream's slot outlives a replica that stopped refreshing it
	// (a crash): the slot counts that long after the replica is gone.
	defaultLease = 30 * time.Second
	// streamRetryAfter is what a caller refused another event stream is told to wait: a slot
	// frees when one of its streams closes, which no clock predicts.
	streamRetryAfter = 10 * time.Second
	// releaseTimeout bounds giving a stream's slot back in Redis.
	releaseTimeout = time.Second
	// batchTimeout bounds one pipeline of rate checks.
	batchTimeout = time.Second
)

// batchedScripts is the Redis client of redis_rate with its EVALSHA calls (one per rate check)
// sent in a shared redisconn.Batch: the checks of concurrent requests go to Redis in one
// pipeline, so a request pays its rate checks in round trips it shares instead of one system
// call each way per check. redis_rate's GCRA script runs unchanged; everything else (the
// rare EVAL after a NOSCRIPT, SCRIPT LOAD) goes straight to the client.
type batchedScripts struct {
	redis.UniversalClient
	batch *redisconn.Batch
}

// EvalSha runs the script sha in the next pipeline of the batch.
func (b batchedScripts) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	var cmd *redis.Cmd
	if err := b.batch.Do(ctx, func(ctx context.Context, p redis.Pipeliner) { cmd = p.EvalSha(ctx, sha, keys, args...) }); err != nil {
		failed := redis.NewCmd(ctx)
		failed.SetErr(err)
		return failed
	}
	return cmd
}

// Observer counts refused requests; telemetry implements it.
type Observer interface {
	// RateLimited records one request of tenantID refused by the limit named limit.
	RateLimited(tenantID, limit string)
}

// Options tune a Limiter; zero values take the defaults.
type Options struct {
	// Now is the clock of the event stream leases and of the in-process fallback (default
	// time.Now). The request rates in Redis use the Redis server's clock, which every replica
	// shares, and so does a replica's memory of Redis's refusals: it runs on the wall clock.
	Now func() time.Time
	// Lease is how long a slot of an event stream counts without being refreshed (default
	// 30s); a replica refreshes its streams' slots every third of it, so the slots of a
	// replica that crashed free themselves after at most Lease.
	Lease time.Duration
	// Logger reports Redis becoming unreachable and reachable again.
	Logger *slog.Logger
	// Observer counts refused requests; it may be nil.
	Observer Observer
}

// Limiter checks requests and event streams against the configured limits and a tenant's
// overrides. The counts live in Redis, keyed by tenant and caller with a hash tag, so they hold
// across replicas and on Redis Cluster: request and write rates with GCRA (redis_rate), open
// event streams as a sorted set of leases per caller and per tenant. The event streams of this
// replica are counted in process. When Redis fails, the Limiter limits in
// process (per replica) until Redis answers again: an outage never lets requests through
// unlimited and never fails them. Create it with New and stop it with Close.
type Limiter struct {
	rdb     redis.UniversalClient
	gcra    *redis_rate.Limiter
	cfg     Config
	now     func() time.Time
	lease   time.Duration
	log     *slog.Logger
	obs     Observer
	local   *localRates
	refusal *refusals
	leased  *leases
	streams *slots
	serving atomic.Int64 // event streams open on this replica
	down    atomic.Bool

	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// New returns a Limiter of the limits cfg over rdb, and starts refreshing the leases of the
// event streams it admits.
func New(rdb redis.UniversalClient, cfg Config, o Options) *Limiter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = defaultLease
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	l := &Limiter{
		rdb:     rdb,
		gcra:    redis_rate.NewLimiter(batchedScripts{rdb, redisconn.NewBatch(rdb, batchTimeout)}),
		cfg:     cfg,
		now:     o.Now,
		lease:   o.Lease,
		log:     o.Logger,
		obs:     o.Observer,
		local:   newLocalRates(),
		refusal: newRefusals(),
		leased:  newLeases(),
		streams: newSlots(),
		stop:    stop,
		done:    make(chan struct{}),
	}
	go l.refresh(ctx)
	return l
}

// Close stops refreshing leases. Slots still held then count until their leases run out, as
// those of a crashed replica do; close the event streams first.
func (l *Limiter) Close() {
	l.once.Do(func() {
		l.stop()
		<-l.done
	})
}

// Request checks one API request of caller subject of tenant t: the caller's request rate,
// then the tenant's, then, for a write, the caller's write rate. Each counts the request when
// it allows it. A refused decision names the limit that refused.
func (l *Limiter) Request(ctx context.Context, t *tenant.Tenant, subject string, write bool) Decision {
	cfg := l.cfg.With(t.Limits)
	caller := callerKey(t.ID, subject)
	d := Decision{Allowed: true, Policy: cfg.Policy(Requests)}
	if !d.Policy.Off() {
		if d = l.allow(ctx, caller+string(Requests), d.Policy); !d.Allowed {
			l.refused(t.ID, d)
			return d
		}
	}
	if p := cfg.Policy(TenantRequests); !p.Off() {
		if td := l.allow(ctx, tenantKey(t.ID)+string(TenantRequests), p); !td.Allowed {
			l.refused(t.ID, td)
			return td
		}
	}
	if p := cfg.Policy(Writes); write && !p.Off() {
		if wd := l.allow(ctx, caller+string(Writes), p); !wd.Allowed {
			l.refused(t.ID, wd)
			return wd
		}
	}
	return d
}

// allow takes one request of the rate p at key: from this replica's lease of the key's quota,
// else from Redis (with a new lease, see leases.go) or, when Redis fails, in process. A key
// Redis refused is refused here until the time Redis named, without asking it again; that
// time passes on the wall clock, as Redis's does.
func (l *Limiter) allow(ctx context.Context, key string, p Policy) Decision {
	wall := time.Now()
	if wait, ok := l.refusal.check(key, p, wall); ok {
		return Decision{Policy: p, Reset: wait, RetryAfter: wait}
	}
	if d, ok := l.leased.take(key, p, wall); ok {
		return d
	}
	want := l.leased.want(key, p, wall)
	res, err := l.gcra.AllowAtMost(ctx, key, redis_rate.Limit{Rate: p.Quota, Burst: p.Quota, Period: p.Window}, want)
	if err != nil {
		l.redisFailed(ctx, err)
		return l.local.allow(key, p, l.now())
	}
	l.redisAnswered()
	if res.Allowed > 0 {
		return l.leased.granted(key, p, wall, want, res.Allowed, res.Remaining, res.ResetAfter)
	}
	l.refusal.note(key, p, wall.Add(res.RetryAfter))
	return Decision{Policy: p, Remaining: res.Remaining, Reset: res.RetryAfter, RetryAfter: res.RetryAfter}
}

// OpenStream takes an event stream slot for caller subject of tenant t: one of this replica's,
// then one of the caller's, then one of the tenant's, so that a caller over its own limit does
// not use up its tenant's. When allowed, the caller must call release exactly once when the
// stream ends; release is nil when refused, and the decision names the limit that refused.
// A replica that serves all the streams it may refuses with ReplicaEventStreams. An admin's
// stream does not count against the tenant's bound.
func (l *Limiter) OpenStream(ctx context.Context, t *tenant.Tenant, subject string, admin bool) (d Decision, release func()) {
	cfg := l.cfg.With(t.Limits)
	var held []func() // what release gives back
	giveBack := func() {
		for _, f := range held {
			f()
		}
	}
	refuse := func(p Policy) (Decision, func()) {
		giveBack()
		d := Decision{Policy: p, RetryAfter: streamRetryAfter}
		l.refused(t.ID, d)
		return d, nil
	}
	if p := cfg.Policy(ReplicaEventStreams); !p.Off() {
		if l.serving.Add(1) > int64(p.Quota) {
			l.serving.Add(-1)
			return refuse(p)
		}
		held = append(held, func() { l.serving.Add(-1) })
	}
	d = Decision{Allowed: true, Policy: cfg.Policy(EventStreams)}
	id := newSlotID()
	// The stream outlives its request: its slots are given back even after ctx ends.
	rctx := context.WithoutCancel(ctx)
	for _, s := range []struct {
		policy Policy
		key    string
	}{
		{d.Policy, callerKey(t.ID, subject) + string(EventStreams)},
		{cfg.Policy(TenantEventStreams), tenantKey(t.ID) + string(TenantEventStreams)},
	} {
		// The tenant's bound keeps its customers from taking every stream of the service; its
		// admins are few, and their streams (the inbox) must not be crowded out by customers.
		if s.policy.Off() || admin && s.policy.Name == TenantEventStreams {
			continue
		}
		open, ok := l.takeSlot(ctx, s.key, id, s.policy.Quota)
		if !ok {
			return refuse(s.policy)
		}
		if s.policy.Name == EventStreams {
			d.Remaining = max(s.policy.Quota-open, 0)
		}
		held = append(held, func() { l.releaseSlot(rctx, s.key, id) })
	}
	var once sync.Once
	return d, func() { once.Do(giveBack) }
}

// takeSlot takes slot id of the most at key, in Redis or, when Redis fails, in process. It
// returns the slots held at key afterwards and whether it took the slot.
func (l *Limiter) takeSlot(ctx context.Context, key, id string, most int) (int, bool) {
	open, ok, err := acquireSlot(ctx, l.rdb, key, id, most, l.now(), l.lease)
	if err != nil {
		l.redisFailed(ctx, err)
		return l.streams.addAtMost(key, id, most)
	}
	l.redisAnswered()
	if ok {
		l.streams.add(key, id)
	}
	return open, ok
}

// releaseSlot gives a stream's slot back. If Redis cannot be told, the slot frees itself when
// its lease runs out.
func (l *Limiter) releaseSlot(ctx context.Context, key, id string) {
	l.streams.remove(key, id)
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if err := l.rdb.ZRem(ctx, key, id).Err(); err != nil {
		l.redisFailed(ctx, err)
	}
}

// refresh extends the leases of this replica's open streams every third of the lease, and
// forgets idle in-process rates, until ctx ends.
func (l *Limiter) refresh(ctx context.Context) {
	defer close(l.done)
	tick := time.NewTicker(l.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := l.now()
		l.local.forgetIdle(now)
		l.refusal.forgetPast(time.Now())
		l.leased.forgetPast(time.Now())
		held := l.streams.snapshot()
		if len(held) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, l.lease/3)
		err := extendSlots(rctx, l.rdb, held, now, l.lease)
		cancel()
		if err != nil {
			l.redisFailed(ctx, err)
		}
	}
}

// refused counts a refused request.
func (l *Limiter) refused(tenantID string, d Decision) {
	if l.obs != nil {
		l.obs.RateLimited(tenantID, string(d.Policy.Name))
	}
}

// redisFailed notes that Redis failed, logging the first failure of an outage. A request
// whose own context ended (the client left) says nothing about Redis.
func (l *Limiter) redisFailed(ctx context.Context, err error) {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return
	}
	if l.down.CompareAndSwap(false, true) {
		l.log.Warn("limits: Redis unavailable; each replica limits on its own until it answers again", "error", err)
	}
}

// redisAnswered notes that Redis answered, logging the end of an outage.
func (l *Limiter) redisAnswered() {
	if l.down.Load() && l.down.CompareAndSwap(true, false) {
		l.log.Info("limits: Redis answers again; limits hold across replicas")
	}
}

// callerKey is the prefix of the Redis keys of one caller's limits. The hash tag keeps them in
// one Cluster slot, spread over the cluster by caller. Tenant ids are [a-z0-9-]; a subject is
// visible ASCII, and because a key ends with its limit's name, two callers never share one.
func callerKey(tenantID, subject string) string {
	return "chat:{" + tenantID + ":" + subject + "}:limit:"
}

// tenantKey is the prefix of the Redis keys of a tenant's own limits, in the tenant's slot.
func tenantKey(tenantID string) string {
	return "chat:{" + tenantID + "}:limit:"
}

// Forget deletes the counters of a caller of the tenant (an erased customer's), and returns
// how many keys it deleted.
func (l *Limiter) Forget(ctx context.Context, tenantID, subject string) (int64, error) {
	return redisconn.UnlinkMatching(ctx, l.rdb, redisconn.GlobQuote(callerKey(tenantID, subject))+"*")
}
