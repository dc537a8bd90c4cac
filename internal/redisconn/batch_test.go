package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestBatchRunsEveryCallersCommands has many callers each increment a key of its own and read
// it back through one Batch; every caller must see exactly its own commands' results, and the
// commands must have reached Redis once each.
func TestBatchRunsEveryCallersCommands(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb, err := redisconn.Open(r.URL(), redisconn.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	b := redisconn.NewBatch(rdb, 5*time.Second)
	ctx := context.Background()

	const callers, rounds = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			key := fmt.Sprintf("batch:%d", i)
			for n := 1; n <= rounds; n++ {
				var incr *redis.IntCmd
				var get *redis.StringCmd
				if err := b.Do(ctx, func(ctx context.Context, p redis.Pipeliner) {
					incr = p.Incr(ctx, key)
					get = p.Get(ctx, key)
				}); err != nil {
					errs <- err
					return
				}
				if v, err := incr.Result(); err != nil || v != int64(n) {
					errs <- fmt.Errorf("%s: INCR = %d, %w; want %d", key, v, err, n)
					return
				}
				if v, err := get.Int64(); err != nil || v != int64(n) {
					errs <- fmt.Errorf("%s: GET = %d, %w; want %d", key, v, err, n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range callers {
		if v, err := rdb.Get(ctx, fmt.Sprintf("batch:%d", i)).Int64(); err != nil || v != rounds {
			t.Errorf("batch:%d = %d, %v; want %d", i, v, err, rounds)
		}
	}
}

// TestBatchReportsRedisDownOnTheCommands checks that a pipeline Redis cannot run leaves its
// error on the callers' commands, and that a caller whose context ends stops waiting.
func TestBatchReportsRedisDownOnTheCommands(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb, err := redisconn.Open(r.URL(), redisconn.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	b := redisconn.NewBatch(rdb, 5*time.Second)
	r.Stop(t)

	var get *redis.StringCmd
	if err := b.Do(context.Background(), func(ctx context.Context, p redis.Pipeliner) { get = p.Get(ctx, "k") }); err != nil {
		t.Fatalf("Do() = %v, want nil: the error belongs on the command", err)
	}
	if err := get.Err(); err == nil || errors.Is(err, redis.Nil) {
		t.Errorf("GET with Redis down: error = %v, want a connection error", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Do(ctx, func(ctx context.Context, p redis.Pipeliner) { p.Get(ctx, "k") }); !errors.Is(err, context.Canceled) {
		t.Errorf("Do(cancelled ctx) = %v, want context.Canceled", err)
	}
}
