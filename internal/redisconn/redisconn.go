// Package redisconn connects to Redis with the timeouts and the circuit breaker a service needs
// when Redis is a cache and a bus it must survive losing.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrOpen is returned without contacting Redis while the breaker is open after a failure.
var ErrOpen = errors.New("redis unavailable (circuit open)")

// Options tune the connection; zero values take the defaults.
type Options struct {
	// Mode is how url is read (CHAT_REDIS_MODE): "single" (or empty) for one Redis server at a
	// redis://, rediss:// or unix:// URL, "cluster" for a Redis Cluster at go-redis's cluster
	// URL, redis://node1:6379?addr=node2:6379&addr=node3:6379.
	Mode string
	// Timeout bounds dialing and each read and write (default 500ms): Redis answers in well under
	// a millisecond when healthy, and a slow Redis must not make requests slow.
	Timeout time.Duration
	// OpenFor is how long calls fail fast after a connection failure before one is let through
	// again (default 1s), so an outage costs at most one timeout per second, not one per request.
	OpenFor time.Duration
	// PoolSize is the most connections kept to the server, or to each node of a cluster
	// (default: the URL's pool_size, else go-redis's 10 per CPU, 5 per CPU and node for a
	// cluster). A client for blocking reads holds one connection per waiting reader.
	PoolSize int
	Now      func() time.Time
}

// Open returns a client for the Redis at url, a single server or a cluster as o.Mode says. It
// does not connect: Redis may be down at start-up, and the service works without it.
func Open(url string, o Options) (redis.UniversalClient, error) {
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.OpenFor <= 0 {
		o.OpenFor = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var client redis.UniversalClient
	switch o.Mode {
	case "", "single":
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("parse redis url: %w", err)
		}
		opts.DialTimeout = o.Timeout
		opts.ReadTimeout = o.Timeout
		opts.WriteTimeout = o.Timeout
		opts.PoolTimeout = o.Timeout
		if o.PoolSize > 0 {
			opts.PoolSize = o.PoolSize
		}
		opts.MaxRetries = 1
		opts.ContextTimeoutEnabled = true
		client = redis.NewClient(opts)
	case "cluster":
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("parse redis cluster url: %w", err)
		}
		opts.DialTimeout = o.Timeout
		opts.ReadTimeout = o.Timeout
		opts.WriteTimeout = o.Timeout
		opts.PoolTimeout = o.Timeout
		if o.PoolSize > 0 {
			opts.PoolSize = o.PoolSize
		}
		// The cluster client retries a failed command itself, on the same node and then on
		// another (up to MaxRedirects times); node clients that also retried, and redialed five
		// times each, would make the first call of an outage take seconds instead of one retry.
		opts.MaxRetries = -1
		opts.DialerRetries = 1
		opts.ContextTimeoutEnabled = true
		client = redis.NewClusterClient(opts)
	default:
		return nil, fmt.Errorf("redis mode %q: want single or cluster", o.Mode)
	}
	// A cluster client runs its hooks around each whole command or pipeline, whichever nodes
	// serve it and however often it is redirected or retried, so one breaker covers every node
	// without OnNewNode (and one unreachable node opens it for all). Its DialHook is not called
	// there (the node clients dial); a failed dial reaches ProcessHook as the command's error.
	client.AddHook(newBreaker(o.OpenFor, o.Now))
	return client, nil
}

// breaker is a go-redis hook that fails calls fast for a while after a connection failure.
type breaker struct {
	openFor   time.Duration
	now       func() time.Time
	openUntil atomic.Int64 // unix nanoseconds
}

// newBreaker returns a breaker that stays open for openFor after a failure.
func newBreaker(openFor time.Duration, now func() time.Time) *breaker {
	return &breaker{openFor: openFor, now: now}
}

var _ redis.Hook = (*breaker)(nil)

// DialHook passes dials through.
func (b *breaker) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			b.trip()
		}
		return conn, err
	}
}

// ProcessHook fails fast while the breaker is open and opens it on connection failures.
func (b *breaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if b.isOpen() {
			cmd.SetErr(ErrOpen)
			return ErrOpen
		}
		err := next(ctx, cmd)
		b.observe(err)
		return err
	}
}

// ProcessPipelineHook does for pipelines what ProcessHook does for single commands.
func (b *breaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if b.isOpen() {
			for _, cmd := range cmds {
				cmd.SetErr(ErrOpen)
			}
			return ErrOpen
		}
		err := next(ctx, cmds)
		b.observe(err)
		return err
	}
}

func (b *breaker) isOpen() bool { return b.now().UnixNano() < b.openUntil.Load() }

func (b *breaker) trip() { b.openUntil.Store(b.now().Add(b.openFor).UnixNano()) }

// observe opens the breaker when err says Redis could not be reached; answers such as redis.Nil
// or a script error mean Redis is fine.
func (b *breaker) observe(err error) {
	if err == nil || errors.Is(err, redis.Nil) {
		return
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) {
		b.trip()
	}
}
