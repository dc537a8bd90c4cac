package redisconn

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batch sends the commands of concurrent callers to Redis together. Commands queued while a
// pipeline is in flight go out as the next pipeline as soon as it returns; a caller alone gets
// a pipeline of its own at once. Every command is still sent after its caller queued it, so a
// caller never reads a value older than the writes that returned before it; under load, many
// requests share one round trip (and one system call each way) instead of paying one each.
type Batch struct {
	rdb     redis.UniversalClient
	timeout time.Duration

	mu      sync.Mutex
	pending []*batchCall
	running bool
}

// batchCall is one caller's commands.
type batchCall struct {
	queue func(ctx context.Context, p redis.Pipeliner)
	done  chan struct{}
}

// NewBatch returns a Batch over rdb whose pipelines are bounded by timeout each.
func NewBatch(rdb redis.UniversalClient, timeout time.Duration) *Batch {
	return &Batch{rdb: rdb, timeout: timeout}
}

// Do has queue add the caller's commands to the next pipeline and waits until that pipeline
// has run: the commands queue added then hold their results (and errors). queue runs on the
// batch's goroutine, with the pipeline's context. Returns ctx.Err() when ctx ends first; the
// commands may then still run, and the caller must not read them.
func (b *Batch) Do(ctx context.Context, queue func(ctx context.Context, p redis.Pipeliner)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	call := &batchCall{queue: queue, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, call)
	if !b.running {
		b.running = true
		// A pipeline serves many requests, so no one caller's context bounds it: timeout does.
		go b.run() //nolint:contextcheck // see above
	}
	b.mu.Unlock()
	select {
	case <-call.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run sends pipelines until no call is waiting.
func (b *Batch) run() {
	for {
		b.mu.Lock()
		calls := b.pending
		b.pending = nil
		if len(calls) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.send(calls)
	}
}

// send runs the commands of calls as one pipeline. A failed pipeline leaves its error on every
// command it could not run, where each caller reads it.
func (b *Batch) send(calls []*batchCall) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	_, _ = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range calls {
			c.queue(ctx, p)
		}
		return nil
	})
	for _, c := range calls {
		close(c.done)
	}
}
