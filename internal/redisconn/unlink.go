package redisconn

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// scanCount is how many keys one SCAN step looks at, and the most one UNLINK removes.
const scanCount = 500

// UnlinkMatching deletes every key matching the glob pattern, on every master of a Redis
// Cluster or on the one server, a SCAN step at a time so Redis never blocks on it, and returns
// how many it deleted. Quote the literal parts of the pattern with GlobQuote.
func UnlinkMatching(ctx context.Context, rdb redis.UniversalClient, pattern string) (int64, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := unlinkOn(ctx, node, pattern)
			total.Add(n)
			return err
		})
		return total.Load(), err
	}
	return unlinkOn(ctx, rdb, pattern)
}

func unlinkOn(ctx context.Context, rdb redis.Cmdable, pattern string) (int64, error) {
	var total int64
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return total, err
		}
		if len(keys) > 0 {
			// Keys of one scan step of one node may still lie in several slots: one by one
			// in a pipeline, so a Cluster never sees a cross-slot command.
			cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			for _, c := range cmds {
				total += c.(*redis.IntCmd).Val()
			}
		}
		if cursor = next; cursor == 0 {
			return total, nil
		}
	}
}

// GlobQuote escapes the characters SCAN's MATCH pattern gives a meaning: * ? [ ] \.
func GlobQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
