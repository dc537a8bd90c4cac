package redisconn_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestPurgeTenantDeletesEveryKeyOfTheTenant seeds keys of the shapes the service writes for
// two tenants whose ids share a prefix, and global keys, on a single Redis and on a Redis
// Cluster; purging one tenant deletes all its keys, on every node and slot, and nothing else.
func TestPurgeTenantDeletesEveryKeyOfTheTenant(t *testing.T) {
	for _, srv := range []struct {
		mode  string
		start func(testing.TB) string
	}{
		{"single", func(tb testing.TB) string { return testenv.StartRedis(tb).URL() }},
		{"cluster", func(tb testing.TB) string { return testenv.StartRedisCluster(tb).URL() }},
	} {
		t.Run(srv.mode, func(t *testing.T) {
			ctx := context.Background()
			rdb, err := redisconn.Open(srv.start(t), redisconn.Options{Mode: srv.mode, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()

			purged := seedKeys(t, rdb, "acme", 1234)
			kept := append(seedKeys(t, rdb, "acme-2", 3), seedKeys(t, rdb, "acm", 3)...)
			kept = append(kept, "chat:presence:lapses", "chat:support:due", "chat:lease:relay", "other:{acme}:x")
			for _, k := range kept[len(kept)-4:] {
				if err := rdb.Set(ctx, k, "1", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			all := append(slices.Clone(purged), kept...)
			slices.Sort(all)
			if got := allKeys(t, rdb); !slices.Equal(got, all) {
				t.Fatalf("seeded %d keys, found %d", len(all), len(got))
			}

			// Ids with glob characters match themselves only.
			for _, id := range []string{"acm?", "acme*", "*", "acm[e]", `acm\e`} {
				if n, err := redisconn.PurgeTenant(ctx, rdb, id); err != nil || n != 0 {
					t.Errorf("PurgeTenant(%q) = %d, %v; want nothing deleted", id, n, err)
				}
			}
			n, err := redisconn.PurgeTenant(ctx, rdb, "acme")
			if err != nil {
				t.Fatalf("PurgeTenant: %v", err)
			}
			if n != int64(len(purged)) {
				t.Errorf("PurgeTenant deleted %d keys, want %d", n, len(purged))
			}
			slices.Sort(kept)
			if got := allKeys(t, rdb); !slices.Equal(got, kept) {
				t.Errorf("keys after the purge = %q, want %q", got, kept)
			}
			if n, err := redisconn.PurgeTenant(ctx, rdb, "acme"); err != nil || n != 0 {
				t.Errorf("second PurgeTenant = %d, %v; want nothing deleted", n, err)
			}
		})
	}
}

// seedKeys writes keys of tenantID of the shapes the service writes, lists more of them,
// and returns their names.
func seedKeys(tb testing.TB, rdb redis.UniversalClient, tenantID string, lists int) []string {
	tb.Helper()
	ctx := context.Background()
	tag := "chat:{" + tenantID + "}"
	keys := []string{tag + ":gen:a", tag + ":support", tag + ":events", tag + ":presence:online",
		"chat:{" + tenantID + ":cust-1}:limit:w", "chat:{" + tenantID + ":admin-1}:limit:r", tag + ":limit:streams"}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, keys[0])
		p.Set(ctx, keys[1], "1 2\n{}", time.Hour)
		p.XAdd(ctx, &redis.XAddArgs{Stream: keys[2], Values: []string{"e", "{}"}})
		p.ZAdd(ctx, keys[3], redis.Z{Score: 1, Member: "admin-1"})
		p.Incr(ctx, keys[4])
		p.Incr(ctx, keys[5])
		p.HSet(ctx, keys[6], "replica", 1)
		for i := range lists {
			k := fmt.Sprintf("%s:list:a:%d", tag, i)
			p.Set(ctx, k, "page", time.Hour)
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

// allKeys returns every key of rdb, sorted.
func allKeys(tb testing.TB, rdb redis.UniversalClient) []string {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, "*", 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return it.Err()
	}
	var err error
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		// One master at a time: keys is not shared safely.
		for _, addr := range cluster.Options().Addrs {
			node := redis.NewClient(&redis.Options{Addr: addr})
			err = scan(ctx, node)
			_ = node.Close()
			if err != nil {
				break
			}
		}
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}
