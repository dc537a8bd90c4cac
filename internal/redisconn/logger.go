package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Logger receives go-redis's own log lines (a pool that cannot dial while Redis is down, for
// instance), which go-redis otherwise prints as plain text on stderr, and logs them as slog
// warnings: at most one line per interval, saying how many it left out since the last.
type Logger struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// NewLogger returns a Logger writing to log at most once per interval.
func NewLogger(log *slog.Logger, interval time.Duration, now func() time.Time) *Logger {
	return &Logger{log: log, interval: interval, now: now}
}

// Printf logs one go-redis line, unless a line was logged less than the interval ago.
func (l *Logger) Printf(ctx context.Context, format string, v ...any) {
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...), "suppressed", suppressed)
}

// SetLogger makes l the logger of every go-redis client of the process. go-redis has no
// logger per client, so this is process-wide; call it once, from the program's wiring.
func SetLogger(l *Logger) { redis.SetLogger(l) }
