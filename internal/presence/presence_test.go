package presence_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/presence"
	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

// redisServers are the deployments presence must work on: one server, and a Redis Cluster
// where a tenant's keys share a slot but the lapse queue may live on another node.
var redisServers = []struct {
	mode string
	url  func(testing.TB) string
}{
	{"single", func(tb testing.TB) string { return testenv.StartRedis(tb).URL() }},
	{"cluster", func(tb testing.TB) string { return testenv.StartRedisCluster(tb).URL() }},
}

// onEachRedis runs test once per deployment of redisServers, each with a Store of its own on a
// fresh Redis and a test clock.
func onEachRedis(t *testing.T, test func(t *testing.T, s *presence.Store, clk *testenv.Clock)) {
	t.Helper()
	for _, srv := range redisServers {
		t.Run(srv.mode, func(t *testing.T) {
			// Wide timeouts: a loaded machine must not trip the breaker mid-test.
			rdb, err := redisconn.Open(srv.url(t), redisconn.Options{Mode: srv.mode, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rdb.Close() })
			clk := testenv.NewClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
			test(t, presence.New(rdb, clk.Now), clk)
		})
	}
}

func TestOnlineLapsesWithoutHeartbeat(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, clk *testenv.Clock) {
		ctx := context.Background()
		exp, err := s.SetAdminStatus(ctx, "shop", "grace", chat.AdminOnline, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if want := clk.Now().Add(time.Minute); !exp.Equal(want) {
			t.Errorf("expires = %v, want %v", exp, want)
		}
		steps := []struct {
			name     string
			advance  time.Duration
			heartbit bool
			online   int
		}{
			{"just set", 0, false, 1},
			{"59 s later", 59 * time.Second, false, 1},
			{"a heartbeat keeps it", 0, true, 1},
			{"another 59 s", 59 * time.Second, false, 1},
			{"61 s after the heartbeat", 2 * time.Second, false, 0},
		}
		for _, st := range steps {
			clk.Advance(st.advance)
			if st.heartbit {
				if _, err := s.SetAdminStatus(ctx, "shop", "grace", chat.AdminOnline, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			tp, err := s.TeamPresence(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if tp.Online != st.online {
				t.Errorf("%s: online = %d, want %d", st.name, tp.Online, st.online)
			}
		}
	})
}

func TestAwayAndTenantsAreSeparate(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, _ *testenv.Clock) {
		ctx := context.Background()
		must := func(tenant, admin string, st chat.AdminStatus) {
			if _, err := s.SetAdminStatus(ctx, tenant, admin, st, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		must("shop", "grace", chat.AdminOnline)
		must("shop", "alan", chat.AdminAway)
		must("shop", "grace", chat.AdminAway) // switching moves, not duplicates
		must("outdoor", "ada", chat.AdminOnline)
		tp, err := s.TeamPresence(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		if tp.Online != 0 || tp.Away != 2 {
			t.Errorf("shop = %+v, want 0 online, 2 away", tp)
		}
		if tp, _ := s.TeamPresence(ctx, "outdoor"); tp.Online != 1 || tp.Away != 0 {
			t.Errorf("outdoor = %+v", tp)
		}
	})
}

func TestLapsesAreClaimedOnce(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, clk *testenv.Clock) {
		ctx := context.Background()
		for _, a := range []string{"a1", "a2", "a3"} {
			if _, err := s.SetAdminStatus(ctx, "shop", a, chat.AdminOnline, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		// a3 goes away: that is not a lapse.
		if _, err := s.SetAdminStatus(ctx, "shop", "a3", chat.AdminAway, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ClaimLapsed(ctx, clk.Now(), 10); len(got) != 0 {
			t.Errorf("before expiry: claimed %v", got)
		}
		clk.Advance(2 * time.Minute)
		var mu sync.Mutex
		var claimed []string
		var wg sync.WaitGroup
		for range 4 { // four replicas sweeping at once
			wg.Go(func() {
				got, err := s.ClaimLapsed(ctx, clk.Now(), 10)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, l := range got {
					claimed = append(claimed, l.TenantID+"/"+l.AdminID)
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		sort.Strings(claimed)
		if len(claimed) != 2 || claimed[0] != "shop/a1" || claimed[1] != "shop/a2" {
			t.Errorf("claimed = %v, want shop/a1 and shop/a2 once each", claimed)
		}
	})
}

func TestSupportOnlineMarkNeverMovesBack(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, clk *testenv.Clock) {
		ctx := context.Background()
		later := clk.Now().Add(time.Hour)
		if err := s.MarkSupportOnline(ctx, "shop", later); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSupportOnline(ctx, "shop", clk.Now()); err != nil {
			t.Fatal(err)
		}
		tp, err := s.TeamPresence(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		if !tp.LastOnlineAt.Equal(later.Truncate(time.Millisecond)) {
			t.Errorf("last online = %v, want %v", tp.LastOnlineAt, later)
		}
	})
}

// TestSupportIsAnnouncedOnce records support states as replicas would: the first state of a
// tenant, a repeat, a change, and the state of a computation that began before the recorded
// one's (a replica that was slower, whatever its clock says); it checks that the lock makes
// computations wait for each other, and when each tenant is due.
func TestSupportIsAnnouncedOnce(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, clk *testenv.Clock) {
		ctx := context.Background()
		t0 := clk.Now()
		// begin numbers a computation as LockSupport does, without waiting for the lock.
		begin := func() int64 {
			t.Helper()
			lock, seq, err := s.LockSupport(ctx, "shop")
			if err != nil || lock == "" {
				t.Fatalf("LockSupport = %q, %d, %v", lock, seq, err)
			}
			s.UnlockSupport(ctx, "shop", lock)
			return seq
		}
		announce := func(name string, seq int64, state string, until time.Time, want chat.Announcement) {
			t.Helper()
			if got, err := s.AnnounceSupport(ctx, "shop", "", seq, state, until); err != nil || got != want {
				t.Fatalf("%s: AnnounceSupport = %v, %v; want %v", name, got, err, want)
			}
		}
		announce("first state", begin(), "online", t0.Add(time.Minute), chat.AnnouncedFirst)
		announce("the same state again", begin(), "online", t0.Add(2*time.Minute), chat.AnnouncedSame)
		slow, fast := begin(), begin()
		announce("a change", fast, "away", time.Time{}, chat.AnnouncedChange)
		announce("a computation that began before the change", slow, "online", t0.Add(time.Minute), chat.AnnouncedStale)
		announce("the change seen again", begin(), "away", time.Time{}, chat.AnnouncedSame)
		announce("a change back", begin(), "online", t0.Add(3*time.Minute), chat.AnnouncedChange)

		// The lock: a second computation waits for the first's announcement.
		lock, seq, err := s.LockSupport(ctx, "shop")
		if err != nil || lock == "" {
			t.Fatalf("LockSupport = %q, %d, %v", lock, seq, err)
		}
		second := make(chan int64, 1)
		go func() {
			l, n, err := s.LockSupport(ctx, "shop")
			if err != nil || l == "" {
				t.Errorf("second LockSupport = %q, %d, %v", l, n, err)
			}
			s.UnlockSupport(ctx, "shop", l)
			second <- n
		}()
		time.Sleep(50 * time.Millisecond)
		if len(second) != 0 {
			t.Fatal("a second computation began while the first held the lock")
		}
		if _, err := s.AnnounceSupport(ctx, "shop", lock, seq, "online", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if n := <-second; n <= seq {
			t.Errorf("the second computation is number %d, want after %d", n, seq)
		}
		if _, err := s.AnnounceSupport(ctx, "idle", "", 1, "offline", time.Time{}); err != nil {
			t.Fatal(err)
		}
		// "shop" is due at the earliest moment any announcement named (t0+1m), not at the
		// later ones that arrived after it; "idle" is scheduled but never due.
		missing, err := s.UnscheduledSupport(ctx, []string{"shop", "idle", "new"})
		if err != nil || len(missing) != 1 || missing[0] != "new" {
			t.Fatalf("UnscheduledSupport = %v, %v; want [new]", missing, err)
		}
		if due, err := s.ClaimDueSupport(ctx, t0.Add(59*time.Second), 10); err != nil || len(due) != 0 {
			t.Fatalf("ClaimDueSupport before the first moment = %v, %v; want none", due, err)
		}
		var wg sync.WaitGroup
		claimed := make(chan string, 10)
		for range 4 {
			wg.Go(func() {
				due, err := s.ClaimDueSupport(ctx, t0.Add(time.Minute), 10)
				if err != nil {
					t.Error(err)
				}
				for _, id := range due {
					claimed <- id
				}
			})
		}
		wg.Wait()
		close(claimed)
		var got []string
		for id := range claimed {
			got = append(got, id)
		}
		if len(got) != 1 || got[0] != "shop" {
			t.Fatalf("four replicas claimed %v at the due moment, want [shop] once", got)
		}
		if missing, _ := s.UnscheduledSupport(ctx, []string{"shop"}); len(missing) != 1 {
			t.Errorf("a claimed tenant is still scheduled: UnscheduledSupport = %v", missing)
		}
	})
}

// TestTeamPresenceNamesTheFirstExpiry checks that TeamPresence finds the first status of the
// tenant's admins to expire, online or away, and none once all expired.
func TestTeamPresenceNamesTheFirstExpiry(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, clk *testenv.Clock) {
		ctx := context.Background()
		t0 := clk.Now()
		for _, a := range []struct {
			id     string
			status chat.AdminStatus
			ttl    time.Duration
		}{{"ada", chat.AdminOnline, 3 * time.Minute}, {"bob", chat.AdminAway, time.Minute}, {"cy", chat.AdminOnline, 2 * time.Minute}} {
			if _, err := s.SetAdminStatus(ctx, "shop", a.id, a.status, a.ttl); err != nil {
				t.Fatal(err)
			}
		}
		for _, step := range []struct {
			at   time.Time
			want time.Time
		}{
			{t0, t0.Add(time.Minute)},
			{t0.Add(time.Minute), t0.Add(2 * time.Minute)},
			{t0.Add(150 * time.Second), t0.Add(3 * time.Minute)},
			{t0.Add(3 * time.Minute), time.Time{}},
		} {
			clk.Set(step.at)
			p, err := s.TeamPresence(ctx, "shop")
			if err != nil || !p.NextExpiry.Equal(step.want) {
				t.Errorf("at %s: NextExpiry = %s, %v; want %s", step.at, p.NextExpiry, err, step.want)
			}
		}
	})
}

func TestForgetTenantLeavesOtherTenantsInTheSharedSets(t *testing.T) {
	onEachRedis(t, func(t *testing.T, s *presence.Store, clk *testenv.Clock) {
		ctx := context.Background()
		for _, tenant := range []string{"shop", "shop-2", "sho"} {
			for _, a := range []string{"a1", "a2"} {
				if _, err := s.SetAdminStatus(ctx, tenant, a, chat.AdminOnline, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.ScheduleSupport(ctx, tenant, float64(clk.Now().Add(time.Minute).UnixMilli())); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.ForgetTenant(ctx, "shop")
		if err != nil || n != 3 {
			t.Errorf("ForgetTenant = %d, %v; want 3 members removed (2 lapses, 1 schedule)", n, err)
		}
		clk.Advance(2 * time.Minute)
		var lapsed []string
		for _, l := range mustClaimLapsed(t, s, clk.Now()) {
			lapsed = append(lapsed, l.TenantID+"/"+l.AdminID)
		}
		sort.Strings(lapsed)
		if want := []string{"sho/a1", "sho/a2", "shop-2/a1", "shop-2/a2"}; !slices.Equal(lapsed, want) {
			t.Errorf("lapses after forgetting shop = %v, want %v", lapsed, want)
		}
		due, err := s.ClaimDueSupport(ctx, clk.Now(), 10)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(due)
		if want := []string{"sho", "shop-2"}; !slices.Equal(due, want) {
			t.Errorf("support due after forgetting shop = %v, want %v", due, want)
		}
	})
}

func mustClaimLapsed(t *testing.T, s *presence.Store, now time.Time) []chat.Lapse {
	t.Helper()
	got, err := s.ClaimLapsed(context.Background(), now, 100)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
