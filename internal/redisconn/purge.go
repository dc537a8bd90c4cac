package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// purgeBatch is how many keys PurgeTenant asks each SCAN for, and so the most it unlinks in
// one pipeline.
const purgeBatch = 500

// TenantKeyPatterns returns the SCAN patterns of every key of a tenant: the service's keys are
// "chat:{<tenant>}..." (the tenant's hash tag: its cache, presence, support, event stream and
// limits) and "chat:{<tenant>:<subject>}..." (the limits of one caller, each on a slot of its
// own). The closing brace or the colon after the id keeps the keys of tenant "acme-2" out of
// those of "acme". Glob characters of the id are escaped.
func TenantKeyPatterns(tenantID string) []string {
	id := globEscape(tenantID)
	return []string{"chat:{" + id + "}*", "chat:{" + id + ":*"}
}

// globEscape escapes the characters special to Redis's glob-style patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PurgeTenant deletes every key of the tenant (TenantKeyPatterns) and returns how many it
// deleted. It scans every master of a Redis Cluster, or the one server, purgeBatch keys at a
// time, and unlinks each batch in one pipeline of single-key UNLINKs (the keys of one batch
// may lie on different slots). Run it only for a tenant no replica serves any more: a key
// written meanwhile may be left behind (running it again deletes it).
func PurgeTenant(ctx context.Context, rdb redis.UniversalClient, tenantID string) (int64, error) {
	if tenantID == "" {
		return 0, errors.New("purge tenant keys: no tenant id")
	}
	var deleted atomic.Int64
	purge := func(ctx context.Context, node redis.Cmdable) error {
		for _, pattern := range TenantKeyPatterns(tenantID) {
			n, err := unlinkMatching(ctx, rdb, node, pattern)
			deleted.Add(n)
			if err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return purge(ctx, node) })
	} else {
		err = purge(ctx, rdb)
	}
	if err != nil {
		return deleted.Load(), fmt.Errorf("purge tenant keys: %w", err)
	}
	return deleted.Load(), nil
}

// unlinkMatching scans node for the keys matching pattern and unlinks them through rdb, which
// sends each to the node serving it. It returns how many it unlinked.
func unlinkMatching(ctx context.Context, rdb redis.UniversalClient, node redis.Cmdable, pattern string) (int64, error) {
	var deleted int64
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, pattern, purgeBatch).Result()
		if err != nil {
			return deleted, fmt.Errorf("scan %s: %w", pattern, err)
		}
		if len(keys) > 0 {
			cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			for _, c := range cmds {
				if ic, ok := c.(*redis.IntCmd); ok && ic.Err() == nil {
					deleted += ic.Val()
				}
			}
			if err != nil {
				return deleted, fmt.Errorf("unlink: %w", err)
			}
		}
		if cursor = next; cursor == 0 {
			return deleted, nil
		}
	}
}
