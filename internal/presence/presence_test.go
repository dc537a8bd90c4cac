package presence_test

import (
	"context"
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
