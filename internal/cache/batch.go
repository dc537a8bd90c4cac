package cache

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batchTimeout bounds one batch of reads.
const batchTimeout = time.Second

// batcher reads keys for many requests in one round trip: requests that arrive while a batch
// is in flight are sent together, as one pipeline, as soon as it returns. Every read still
// starts after its request arrived, so a list never sees a generation older than the writes
// that returned before it; under load, many lists share one round trip (and one system call
// each way) instead of paying one each.
type batcher struct {
	rdb redis.UniversalClient

	mu      sync.Mutex
	pending []*batchRead
	running bool
}

// batchRead is one request's MGET.
type batchRead struct {
	keys []string
	vals []any
	err  error
	done chan struct{}
}

// mget returns the values of keys (nil for missing ones), read in the next batch.
func (b *batcher) mget(ctx context.Context, keys ...string) ([]any, error) {
	r := &batchRead{keys: keys, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	if !b.running {
		b.running = true
		// A batch serves many requests, so no one caller's context bounds it: batchTimeout does.
		go b.run() //nolint:contextcheck // see above
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.vals, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends batches until none is waiting.
func (b *batcher) run() {
	for {
		b.mu.Lock()
		batch := b.pending
		b.pending = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.send(batch)

	}
}

func (b *batcher) send(batch []*batchRead) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	cmds := make([]*redis.SliceCmd, len(batch))
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range batch {
			cmds[i] = p.MGet(ctx, r.keys...)
		}
		return nil
	})
	for i, r := range batch {
		r.vals, r.err = cmds[i].Result()
		if r.err == nil && err != nil && len(r.vals) != len(r.keys) {
			r.err = err
		}
		close(r.done)
	}
}
