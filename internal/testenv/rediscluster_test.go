package testenv_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/testenv"
)

// TestRedisClusterServesEverySlotAndSurvivesARestart checks what the cluster tests rely on: keys
// spread over all three masters, a stopped cluster refuses commands, and a restarted one forms
// again on the same URL and serves every slot.
func TestRedisClusterServesEverySlotAndSurvivesARestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := testenv.StartRedisCluster(t)
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("ParseClusterURL(%q) = %v", c.URL(), err)
	}
	if len(opt.Addrs) != 3 {
		t.Errorf("URL() = %q names %d nodes, want 3", c.URL(), len(opt.Addrs))
	}
	rdb := redis.NewClusterClient(opt)
	defer rdb.Close()

	mustWriteEverywhere := func(label string) {
		t.Helper()
		for i := range 100 {
			if err := rdb.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
				t.Fatalf("%s: SET key-%d = %v", label, i, err)
			}
		}
		var masters, withKeys atomic.Int64
		err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			masters.Add(1)
			n, err := node.DBSize(ctx).Result()
			if n > 0 {
				withKeys.Add(1)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: DBSIZE on each master = %v", label, err)
		}
		if masters.Load() != 3 || withKeys.Load() != 3 {
			t.Errorf("%s: 100 keys landed on %d of %d masters, want all of 3", label, withKeys.Load(), masters.Load())
		}
	}
	mustWriteEverywhere("started")

	c.Stop(t)
	if err := rdb.Set(ctx, "key-0", 0, 0).Err(); err == nil {
		t.Fatal("SET with the cluster stopped = nil error")
	}

	c.Start(t)
	// The client learns the restarted nodes on its own; give it a generous while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := rdb.Set(ctx, "key-0", 0, 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SET 30 s after the restart = %v, want nil", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustWriteEverywhere("restarted")
}
