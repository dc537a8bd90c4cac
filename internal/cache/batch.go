package cache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/redisconn"
)

// errShortReply is an MGET answered with fewer values than keys.
var errShortReply = errors.New("redis: MGET answered fewer values than keys")

// batchTimeout bounds one batch of reads.
const batchTimeout = time.Second

// mget returns the values of keys (nil for missing ones), read in the next batch of b: the
// lists that arrive while a batch is in flight share the next round trip (redisconn.Batch).
func mget(ctx context.Context, b *redisconn.Batch, keys ...string) ([]any, error) {
	var cmd *redis.SliceCmd
	if err := b.Do(ctx, func(ctx context.Context, p redis.Pipeliner) { cmd = p.MGet(ctx, keys...) }); err != nil {
		return nil, err
	}
	vals, err := cmd.Result()
	if err == nil && len(vals) != len(keys) {
		return nil, errShortReply
	}
	return vals, err
}
