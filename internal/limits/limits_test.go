package limits_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/limits"
	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/testenv"
)

// start is where the tests' clock stands at first.
var start = time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)

// env is a Limiter on a real Redis, with the clock of its stream leases.
type env struct {
	redis outage
	rdb   redis.UniversalClient
	clock *testenv.Clock
	obs   *observer
}

// outage is a Redis a test can take down and bring back.
type outage interface {
	URL() string
	Stop(testing.TB)
	Start(testing.TB)
}

// newEnv starts a private redis-server (a Redis Cluster when mode is "cluster") and connects to
// it as the service does.
func newEnv(t *testing.T, mode string) *env {
	t.Helper()
	e := &env{clock: testenv.NewClock(start), obs: &observer{}}
	if mode == "cluster" {
		e.redis = testenv.StartRedisCluster(t)
	} else {
		e.redis = testenv.StartRedis(t)
	}
	rdb, err := redisconn.Open(e.redis.URL(), redisconn.Options{Mode: mode, Timeout: 300 * time.Millisecond, OpenFor: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("redisconn.Open: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	e.rdb = rdb
	return e
}

// limiter returns a Limiter of cfg on e's Redis: one replica of the service.
func (e *env) limiter(t *testing.T, cfg limits.Config, lease time.Duration) *limits.Limiter {
	t.Helper()
	l := limits.New(e.rdb, cfg, limits.Options{Now: e.clock.Now, Lease: lease, Observer: e.obs})
	t.Cleanup(l.Close)
	return l
}

// observer records refused requests as "tenant/limit".
type observer struct {
	mu      sync.Mutex
	refused []string
}

func (o *observer) RateLimited(tenantID, limit string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refused = append(o.refused, tenantID+"/"+limit)
}

func (o *observer) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.refused)
}

func ptr(n int) *int { return &n }

var (
	shop    = &tenant.Tenant{ID: "demo-shop"}
	outdoor = &tenant.Tenant{ID: "acme-outdoor"}
)

// requests sends n requests of subject and returns how many were allowed, and the last decision.
func requests(l *limits.Limiter, t *tenant.Tenant, subject string, write bool, n int) (int, limits.Decision) {
	allowed := 0
	var d limits.Decision
	for range n {
		if d = l.Request(context.Background(), t, subject, write); d.Allowed {
			allowed++
		}
	}
	return allowed, d
}

func TestConfigWithTenantOverrides(t *testing.T) {
	defaults := limits.Config{RequestsPerMinute: 600, WritesPerMinute: 60, EventStreams: 5, TenantRequestsPerSecond: 1000}
	replica := defaults
	replica.ReplicaEventStreams = 100
	tests := []struct {
		name string
		file tenant.Limits
		want limits.Config
	}{
		{"a tenant file without limits keeps the defaults", tenant.Limits{}, defaults},
		{"a limit the file sets wins", tenant.Limits{RequestsPerMinute: ptr(30), EventStreams: ptr(1)},
			limits.Config{RequestsPerMinute: 30, WritesPerMinute: 60, EventStreams: 1, TenantRequestsPerSecond: 1000}},
		{"0 in the file turns a limit off", tenant.Limits{WritesPerMinute: ptr(0), TenantRequestsPerSecond: ptr(0)},
			limits.Config{RequestsPerMinute: 600, EventStreams: 5}},
		{"a file sets its tenant's streams, never the replica's", tenant.Limits{TenantEventStreams: ptr(7)},
			limits.Config{RequestsPerMinute: 600, WritesPerMinute: 60, EventStreams: 5, TenantRequestsPerSecond: 1000, TenantEventStreams: 7, ReplicaEventStreams: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := defaults
			if tt.want.ReplicaEventStreams != 0 {
				base = replica
			}
			if diff := cmp.Diff(tt.want, base.With(tt.file)); diff != "" {
				t.Errorf("With(%+v) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

func TestRequestRateIsPerCaller(t *testing.T) {
	e := newEnv(t, "single")
	l := e.limiter(t, limits.Config{RequestsPerMinute: 3}, 0)
	ctx := context.Background()

	for i, wantRemaining := range []int{2, 1, 0} {
		d := l.Request(ctx, shop, "cust-ada", false)
		if !d.Allowed || d.Remaining != wantRemaining || d.Policy != (limits.Policy{Name: limits.Requests, Quota: 3, Window: time.Minute}) {
			t.Fatalf("request %d = %+v, want allowed with %d remaining of the requests policy", i+1, d, wantRemaining)
		}
	}
	d := l.Request(ctx, shop, "cust-ada", false)
	if d.Allowed || d.Policy.Name != limits.Requests || d.Remaining != 0 {
		t.Fatalf("4th request in a minute = %+v, want refused by requests", d)
	}
	// GCRA at 3 a minute frees one request every 20 s.
	if d.RetryAfter <= 0 || d.RetryAfter > 21*time.Second {
		t.Errorf("RetryAfter = %s, want within (0, 20s]", d.RetryAfter)
	}
	if d := l.Request(ctx, shop, "cust-bob", false); !d.Allowed {
		t.Errorf("another caller of the tenant = %+v, want allowed", d)
	}
	if d := l.Request(ctx, outdoor, "cust-ada", false); !d.Allowed {
		t.Errorf("the same subject at another tenant = %+v, want allowed", d)
	}
	if got, want := e.obs.got(), []string{"demo-shop/requests"}; !slices.Equal(got, want) {
		t.Errorf("refusals observed = %v, want %v", got, want)
	}
}

func TestRefusalsAreRememberedUntilRetryAfter(t *testing.T) {
	e := newEnv(t, "single")
	// One request a second: a refusal lasts at most a second of wall time, as Redis counts.
	l := e.limiter(t, limits.Config{TenantRequestsPerSecond: 1}, 0)
	ctx := context.Background()
	if n, d := requests(l, shop, "cust-ada", false, 2); n != 1 || d.Allowed {
		t.Fatalf("2 requests: %d allowed, last %+v; want 1", n, d)
	}
	// Redis forgets everything; the replica still refuses until the time Redis named, without
	// asking it: nothing there could have allowed a request sooner.
	if err := e.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	d := l.Request(ctx, shop, "cust-ada", false)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("within the refusal = %+v, want refused with a RetryAfter of at most 1s", d)
	}
	if keys, _ := e.rdb.Keys(ctx, "*").Result(); len(keys) != 0 {
		t.Errorf("Redis keys = %v, want none: a remembered refusal costs no round trip", keys)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !l.Request(ctx, shop, "cust-ada", false).Allowed {
		if time.Now().After(deadline) {
			t.Fatal("still refused 10s after a RetryAfter of at most 1s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWriteRateCountsOnlyWrites(t *testing.T) {
	e := newEnv(t, "single")
	l := e.limiter(t, limits.Config{RequestsPerMinute: 100, WritesPerMinute: 2}, 0)

	if n, _ := requests(l, shop, "cust-ada", false, 10); n != 10 {
		t.Fatalf("10 reads: %d allowed, want 10", n)
	}
	n, d := requests(l, shop, "cust-ada", true, 3)
	if n != 2 || d.Allowed || d.Policy.Name != limits.Writes {
		t.Fatalf("3 writes: %d allowed, last %+v; want 2, then refused by writes", n, d)
	}
	if d := l.Request(context.Background(), shop, "cust-ada", false); !d.Allowed {
		t.Errorf("a read after the writes ran out = %+v, want allowed", d)
	}
}

func TestTenantRateBoundsAllCallers(t *testing.T) {
	e := newEnv(t, "single")
	l := e.limiter(t, limits.Config{RequestsPerMinute: 1000, TenantRequestsPerSecond: 5}, 0)
	ctx := context.Background()

	// Five callers at once may use the tenant's burst of 5; the refill (one every 200 ms) cannot
	// keep up with 200 back-to-back requests.
	refused := 0
	var last limits.Decision
	for i := range 200 {
		d := l.Request(ctx, shop, []string{"a", "b", "c", "d", "e"}[i%5], false)
		if i < 5 && !d.Allowed {
			t.Fatalf("request %d of the tenant = %+v, want allowed (burst 5)", i+1, d)
		}
		if !d.Allowed {
			refused++
			last = d
		}
	}
	if refused == 0 {
		t.Fatal("200 requests at once: none refused, want the tenant limit of 5/s to refuse some")
	}
	if last.Policy != (limits.Policy{Name: limits.TenantRequests, Quota: 5, Window: time.Second}) || last.RetryAfter <= 0 || last.RetryAfter > time.Second {
		t.Errorf("refusal = %+v, want the tenant-requests policy with RetryAfter within (0, 1s]", last)
	}
	if d := l.Request(ctx, outdoor, "a", false); !d.Allowed {
		t.Errorf("another tenant = %+v, want allowed", d)
	}
}

func TestTenantFileOverridesWin(t *testing.T) {
	e := newEnv(t, "single")
	l := e.limiter(t, limits.Config{RequestsPerMinute: 2, EventStreams: 1}, 0)
	strict := &tenant.Tenant{ID: "strict-shop", Limits: tenant.Limits{RequestsPerMinute: ptr(1)}}
	open := &tenant.Tenant{ID: "open-shop", Limits: tenant.Limits{RequestsPerMinute: ptr(0), EventStreams: ptr(0)}}

	if n, _ := requests(l, strict, "u", false, 5); n != 1 {
		t.Errorf("requests_per_minute: 1 in the tenant file: %d of 5 allowed, want 1", n)
	}
	if n, _ := requests(l, shop, "u", false, 5); n != 2 {
		t.Errorf("no override: %d of 5 allowed, want the default 2", n)
	}
	if n, _ := requests(l, open, "u", false, 50); n != 50 {
		t.Errorf("requests_per_minute: 0 in the tenant file: %d of 50 allowed, want all", n)
	}
	for i := range 10 {
		if d, release := l.OpenStream(context.Background(), open, "u", false); !d.Allowed || release == nil {
			t.Fatalf("event_streams: 0 in the tenant file: stream %d = %+v, want allowed", i+1, d)
		}
	}
}

func TestZeroTurnsLimitsOffWithoutTouchingRedis(t *testing.T) {
	e := newEnv(t, "single")
	l := e.limiter(t, limits.Config{}, 0)
	if n, _ := requests(l, shop, "u", true, 100); n != 100 {
		t.Errorf("all limits off: %d of 100 writes allowed, want 100", n)
	}
	if d, release := l.OpenStream(context.Background(), shop, "u", false); !d.Allowed {
		t.Errorf("streams off: %+v, want allowed", d)
	} else {
		release()
	}
	if keys, err := e.rdb.Keys(context.Background(), "*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("Redis keys = %v (%v), want none: limits that are off cost no round trip", keys, err)
	}
}

func TestEventStreamsAreCountedAcrossReplicas(t *testing.T) {
	e := newEnv(t, "single")
	cfg := limits.Config{EventStreams: 5}
	a, b := e.limiter(t, cfg, 0), e.limiter(t, cfg, 0)
	ctx := context.Background()

	var releases []func()
	for i, l := range []*limits.Limiter{a, a, a, b, b} {
		d, release := l.OpenStream(ctx, shop, "cust-ada", false)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("stream %d = %+v, want allowed with %d remaining", i+1, d, 4-i)
		}
		releases = append(releases, release)
	}
	for name, l := range map[string]*limits.Limiter{"a": a, "b": b} {
		d, release := l.OpenStream(ctx, shop, "cust-ada", false)
		if d.Allowed || release != nil || d.Policy != (limits.Policy{Name: limits.EventStreams, Quota: 5}) || d.RetryAfter < time.Second {
			t.Errorf("6th stream on replica %s = %+v, want refused by event-streams with a RetryAfter", name, d)
		}
	}
	if d, release := b.OpenStream(ctx, shop, "cust-bob", false); !d.Allowed {
		t.Errorf("another caller's stream = %+v, want allowed", d)
	} else {
		release()
	}

	releases[0]() // a stream on replica a closes
	releases[0]() // and closing twice frees one slot only
	d, release := b.OpenStream(ctx, shop, "cust-ada", false)
	if !d.Allowed {
		t.Fatalf("a stream on replica b after one closed on a = %+v, want allowed", d)
	}
	defer release()
	if d, _ := a.OpenStream(ctx, shop, "cust-ada", false); d.Allowed {
		t.Errorf("a 6th stream after one closed and one opened = %+v, want refused", d)
	}
}

func TestTenantEventStreamsBoundAllCallersAcrossReplicas(t *testing.T) {
	e := newEnv(t, "single")
	cfg := limits.Config{EventStreams: 2, TenantEventStreams: 3}
	a, b := e.limiter(t, cfg, 0), e.limiter(t, cfg, 0)
	ctx := context.Background()
	open := func(l *limits.Limiter, subject string) (limits.Decision, func()) {
		return l.OpenStream(ctx, shop, subject, false)
	}
	_, adaFirst := open(a, "cust-ada")
	open(b, "cust-ada")
	// Refused by the caller's own limit, ada takes none of the tenant's slots.
	if d, _ := open(a, "cust-ada"); d.Allowed || d.Policy.Name != limits.EventStreams {
		t.Fatalf("ada's 3rd stream = %+v, want refused by event-streams", d)
	}
	if d, _ := open(b, "cust-bob"); !d.Allowed {
		t.Fatalf("bob's stream, the tenant's 3rd = %+v, want allowed", d)
	}
	// Refused by the tenant's limit, cy keeps no slot of their own either.
	for name, l := range map[string]*limits.Limiter{"a": a, "b": b} {
		if d, release := open(l, "cust-cy"); d.Allowed || release != nil || d.Policy != (limits.Policy{Name: limits.TenantEventStreams, Quota: 3}) || d.RetryAfter < time.Second {
			t.Errorf("the tenant's 4th stream on replica %s = %+v, want refused by tenant-event-streams with a RetryAfter", name, d)
		}
	}
	adaFirst()
	if d, _ := open(a, "cust-cy"); !d.Allowed || d.Remaining != 1 {
		t.Errorf("cy's first stream after one closed = %+v, want allowed with 1 of 2 remaining", d)
	}
	if got, want := e.obs.got(), []string{"demo-shop/event-streams", "demo-shop/tenant-event-streams", "demo-shop/tenant-event-streams"}; !slices.Equal(got, want) {
		t.Errorf("refusals observed = %v, want %v", got, want)
	}
	// The customers hold all of the tenant's streams; its admins still get theirs, within their
	// own bound.
	for i := range 2 {
		if d, _ := b.OpenStream(ctx, shop, "grace", true); !d.Allowed {
			t.Errorf("admin stream %d while customers hold the tenant's streams = %+v, want allowed", i+1, d)
		}
	}
	if d, _ := b.OpenStream(ctx, shop, "grace", true); d.Allowed || d.Policy.Name != limits.EventStreams {
		t.Errorf("the admin's 3rd stream = %+v, want refused by event-streams", d)
	}
}

func TestReplicaEventStreamsCountThisReplicaOnly(t *testing.T) {
	e := newEnv(t, "single")
	a, b := e.limiter(t, limits.Config{ReplicaEventStreams: 2}, 0), e.limiter(t, limits.Config{ReplicaEventStreams: 2}, 0)
	ctx := context.Background()
	_, first := a.OpenStream(ctx, shop, "cust-ada", false)
	a.OpenStream(ctx, shop, "cust-bob", false)
	if d, release := a.OpenStream(ctx, shop, "cust-cy", false); d.Allowed || release != nil || d.Policy.Name != limits.ReplicaEventStreams {
		t.Errorf("a 3rd stream on a full replica = %+v, want refused by replica-event-streams", d)
	}
	if d, _ := b.OpenStream(ctx, shop, "cust-cy", false); !d.Allowed {
		t.Errorf("a stream on another replica = %+v, want allowed", d)
	}
	first()
	first() // closing twice frees one slot only
	if d, _ := a.OpenStream(ctx, shop, "cust-cy", false); !d.Allowed {
		t.Errorf("a stream after one closed = %+v, want allowed", d)
	}
	if d, _ := a.OpenStream(ctx, shop, "cust-dee", false); d.Allowed {
		t.Errorf("a 3rd stream again = %+v, want refused", d)
	}
}

func TestStreamsOfACrashedReplicaFreeAfterTheirLease(t *testing.T) {
	e := newEnv(t, "single")
	cfg := limits.Config{EventStreams: 2}
	const lease = 30 * time.Second
	crashed, alive := e.limiter(t, cfg, lease), e.limiter(t, cfg, lease)
	ctx := context.Background()
	for range 2 {
		if d, _ := crashed.OpenStream(ctx, shop, "cust-ada", false); !d.Allowed {
			t.Fatalf("stream = %+v, want allowed", d)
		}
	}
	crashed.Close() // stops refreshing and never releases: a crash

	e.clock.Advance(lease - time.Second)
	if d, _ := alive.OpenStream(ctx, shop, "cust-ada", false); d.Allowed {
		t.Fatalf("within the lease of the crashed replica's streams: %+v, want refused", d)
	}
	e.clock.Advance(2 * time.Second)
	if d, _ := alive.OpenStream(ctx, shop, "cust-ada", false); !d.Allowed {
		t.Fatalf("after the lease of the crashed replica's streams: %+v, want allowed", d)
	}
}

func TestOpenStreamsKeepTheirSlotsPastTheLease(t *testing.T) {
	e := newEnv(t, "single")
	cfg := limits.Config{EventStreams: 1}
	// A short lease, so the replica refreshes every second of wall time.
	const lease = 3 * time.Second
	a, b := e.limiter(t, cfg, lease), e.limiter(t, cfg, lease)
	ctx := context.Background()
	if d, _ := a.OpenStream(ctx, shop, "cust-ada", false); !d.Allowed {
		t.Fatalf("stream = %+v, want allowed", d)
	}
	e.clock.Advance(2 * time.Second)
	waitForLease(t, e.rdb, "cust-ada", start.Add(2*time.Second+lease))
	e.clock.Advance(2 * time.Second) // past the first lease, within the refreshed one
	if d, _ := b.OpenStream(ctx, shop, "cust-ada", false); d.Allowed {
		t.Errorf("while replica a keeps its stream open: %+v, want refused", d)
	}
}

// waitForLease polls until the lease of subject's streams at demo-shop runs until at least
// until (the replica refreshed it).
func waitForLease(t *testing.T, rdb redis.UniversalClient, subject string, until time.Time) {
	t.Helper()
	key := "chat:{demo-shop:" + subject + "}:limit:event-streams"
	deadline := time.Now().Add(20 * time.Second)
	for {
		zs, err := rdb.ZRangeWithScores(context.Background(), key, 0, -1).Result()
		if err == nil && len(zs) > 0 && int64(zs[0].Score) >= until.UnixMilli() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease of %s = %v (%v), want refreshed to %s", key, zs, err, until)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisDownFallsBackToLimitsPerReplica(t *testing.T) {
	e := newEnv(t, "single")
	l := e.limiter(t, limits.Config{RequestsPerMinute: 3, EventStreams: 2}, 0)
	ctx := context.Background()
	// One stream is open in Redis before the outage.
	if d, _ := l.OpenStream(ctx, shop, "cust-bob", false); !d.Allowed {
		t.Fatalf("stream = %+v, want allowed", d)
	}
	e.redis.Stop(t)

	n, d := requests(l, shop, "cust-ada", false, 5)
	if n != 3 || d.Allowed || d.Policy.Name != limits.Requests || d.RetryAfter <= 0 || d.RetryAfter > 21*time.Second {
		t.Errorf("with Redis down: %d of 5 requests allowed, last %+v; want 3, then refused with a RetryAfter", n, d)
	}
	if d := l.Request(ctx, shop, "cust-cy", false); !d.Allowed {
		t.Errorf("with Redis down, another caller = %+v, want allowed", d)
	}
	// The replica counts its own streams: cust-bob holds one of 2.
	if d, _ := l.OpenStream(ctx, shop, "cust-bob", false); !d.Allowed {
		t.Errorf("with Redis down, cust-bob's 2nd stream = %+v, want allowed", d)
	}
	if d, _ := l.OpenStream(ctx, shop, "cust-bob", false); d.Allowed {
		t.Errorf("with Redis down, cust-bob's 3rd stream = %+v, want refused", d)
	}

	e.redis.Start(t)
	// Back on Redis (a fresh, empty server): the breaker lets calls through again within a
	// moment, and cust-ada's requests count there.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if keys, _ := e.rdb.Keys(ctx, "rate:*cust-dee*").Result(); len(keys) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the limiter did not use Redis again within 20s of its restart")
		}
		l.Request(ctx, shop, "cust-dee", false)
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLimitsOnRedisCluster(t *testing.T) {
	e := newEnv(t, "cluster")
	cfg := limits.Config{RequestsPerMinute: 3, WritesPerMinute: 1, EventStreams: 1, TenantRequestsPerSecond: 1000}
	const lease = 3 * time.Second
	a, b := e.limiter(t, cfg, lease), e.limiter(t, cfg, lease)
	ctx := context.Background()

	if n, d := requests(a, shop, "cust-ada", true, 2); n != 1 || d.Policy.Name != limits.Writes {
		t.Errorf("2 writes: %d allowed, last %+v; want 1, then refused by writes", n, d)
	}
	if n, d := requests(b, shop, "cust-ada", false, 2); n != 1 || d.Policy.Name != limits.Requests {
		t.Errorf("2 more requests on another replica: %d allowed, last %+v; want 1, then refused by requests", n, d)
	}
	// Several callers' streams, on different nodes, refreshed in one pipeline.
	subjects := []string{"cust-ada", "cust-bob", "cust-cy", "cust-dee", "cust-eve"}
	for _, s := range subjects {
		if d, _ := a.OpenStream(ctx, shop, s, false); !d.Allowed {
			t.Fatalf("%s's stream = %+v, want allowed", s, d)
		}
	}
	e.clock.Advance(2 * time.Second)
	for _, s := range subjects {
		waitForLease(t, e.rdb, s, start.Add(2*time.Second+lease))
	}
	e.clock.Advance(2 * time.Second)
	for _, s := range subjects {
		if d, _ := b.OpenStream(ctx, shop, s, false); d.Allowed {
			t.Errorf("%s's 2nd stream on another replica = %+v, want refused", s, d)
		}
	}

	// Every key carries a hash tag: the caller's, or the tenant's.
	var mu sync.Mutex
	var keys []string
	err := e.rdb.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		k, err := node.Keys(ctx, "*").Result()
		mu.Lock()
		keys = append(keys, k...)
		mu.Unlock()
		return err
	})
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	for _, k := range keys {
		if !strings.Contains(k, "{demo-shop:") && !strings.Contains(k, "{demo-shop}") {
			t.Errorf("key %q has no hash tag of the caller or the tenant", k)
		}
	}
}

// TestLeasedQuotaHoldsAcrossReplicas floods one tenant's limit and one caller's limit from
// three replicas at once, each with its own Redis connection and many callers, and counts
// every request allowed. Replicas take quota from Redis in chunks (leases.go): together they
// must allow no more than 110% of what one GCRA in Redis allows over the time the flood took
// (its burst plus its refill), and, while the flood lasts, not much less either.
func TestLeasedQuotaHoldsAcrossReplicas(t *testing.T) {
	tests := []struct {
		name    string
		cfg     limits.Config
		subject func(replica, worker int) string
		quota   int
		window  time.Duration
		flood   time.Duration
	}{
		{"the tenant's requests per second, many callers", limits.Config{TenantRequestsPerSecond: 400},
			func(r, w int) string { return fmt.Sprintf("cust-%d-%d", r, w) }, 400, time.Second, 2 * time.Second},
		{"one caller's requests per minute", limits.Config{RequestsPerMinute: 1200},
			func(int, int) string { return "cust-ada" }, 1200, time.Minute, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "single")
			ctx := context.Background()
			var replicas []*limits.Limiter
			for range 3 {
				rdb, err := redisconn.Open(e.redis.URL(), redisconn.Options{Mode: "single", Timeout: 2 * time.Second, OpenFor: 200 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = rdb.Close() })
				l := limits.New(rdb, tt.cfg, limits.Options{Now: e.clock.Now})
				t.Cleanup(l.Close)
				replicas = append(replicas, l)
			}
			if err := e.rdb.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			var allowed, attempts atomic.Int64
			var wg sync.WaitGroup
			begin := time.Now()
			deadline := begin.Add(tt.flood)
			for r, l := range replicas {
				for w := range 4 {
					wg.Go(func() {
						for time.Now().Before(deadline) {
							attempts.Add(1)
							if l.Request(ctx, shop, tt.subject(r, w), false).Allowed {
								allowed.Add(1)
							}
						}
					})
				}
			}
			wg.Wait()
			took := time.Since(begin)
			// GCRA with a burst of the quota allows the quota at once, then quota/window.
			gcra := float64(tt.quota) + float64(tt.quota)*took.Seconds()/tt.window.Seconds()
			got := allowed.Load()
			t.Logf("%d of %d requests allowed in %s; one GCRA allows %.0f", got, attempts.Load(), took.Round(time.Millisecond), gcra)
			if float64(got) > 1.1*gcra {
				t.Errorf("%d requests allowed, more than 110%% of the %.0f one GCRA allows in %s", got, gcra, took)
			}
			if float64(got) < 0.8*float64(tt.quota) {
				t.Errorf("%d requests allowed, under 80%% of the quota %d that a flood reaches at once", got, tt.quota)
			}
		})
	}
}

// TestLeasesSaveRoundTrips sends the requests of busy callers well within their limits through
// three replicas: far fewer rate checks reach Redis than requests are allowed, and every
// request is allowed.
func TestLeasesSaveRoundTrips(t *testing.T) {
	e := newEnv(t, "single")
	ctx := context.Background()
	cfg := limits.Config{RequestsPerMinute: 1_000_000, TenantRequestsPerSecond: 1_000_000}
	replicas := []*limits.Limiter{e.limiter(t, cfg, 0), e.limiter(t, cfg, 0), e.limiter(t, cfg, 0)}
	if err := e.rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const perCaller = 600
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for r, l := range replicas {
		for c := range 4 {
			wg.Go(func() {
				for range perCaller {
					if l.Request(ctx, shop, fmt.Sprintf("cust-%d", (r+c)%4), false).Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if got, want := allowed.Load(), int64(3*4*perCaller); got != want {
		t.Fatalf("%d of %d requests allowed, want all: every caller is far within its limits", got, want)
	}
	// Without leases each request takes two checks (the caller's and the tenant's).
	checks := redisCalls(ctx, t, e.rdb, "evalsha") + redisCalls(ctx, t, e.rdb, "eval")
	t.Logf("%d rate checks reached Redis for %d requests", checks, allowed.Load())
	if checks == 0 || checks > allowed.Load()/5 {
		t.Errorf("%d rate checks reached Redis for %d requests: want at most a fifth", checks, allowed.Load())
	}
}

// redisCalls returns how many times Redis ran command since its statistics were reset.
func redisCalls(ctx context.Context, t *testing.T, rdb redis.UniversalClient, command string) int64 {
	t.Helper()
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+command+":calls="); ok {
			n, _, _ := strings.Cut(rest, ",")
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("commandstats %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}
