package testenv

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/supportchat/supportchat/internal/localdeps"
)

// RedisURLEnv names the variable that points the tests at a Redis server instead of a private
// redis-server.
const RedisURLEnv = "CHAT_TEST_REDIS_URL"

// Redis is a redis-server child process private to one test, or the server CHAT_TEST_REDIS_URL
// names. Tests may stop and restart a private one to simulate an outage.
type Redis struct {
	url     string
	private *localdeps.Redis // nil on a CHAT_TEST_REDIS_URL server
}

// StartRedis starts a redis-server on a free port of 127.0.0.1, without persistence, and waits
// until it answers PING; it is killed when the test ends. When CHAT_TEST_REDIS_URL is set, that
// server is used instead.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	if url := os.Getenv(RedisURLEnv); url != "" {
		return &Redis{url: url}
	}
	r, err := localdeps.StartRedis()
	if err != nil {
		tb.Fatalf("testenv: %v", missing(err))
	}
	tb.Cleanup(r.Stop)
	return &Redis{url: r.URL(), private: r}
}

// missing adds to err, when it says a program is not installed, that CI installs it.
func missing(err error) error {
	if errors.Is(err, localdeps.ErrNoRedisServer) || errors.Is(err, localdeps.ErrNoRedisCLI) {
		return fmt.Errorf("%w; .ci/run does", err)
	}
	return err
}

// URL returns the server's address, such as redis://127.0.0.1:6379/0.
func (r *Redis) URL() string { return r.url }

// Stop kills the server, as an outage would. It skips the test on a CHAT_TEST_REDIS_URL server.
func (r *Redis) Stop(tb testing.TB) {
	tb.Helper()
	r.mustBePrivate(tb)
	r.private.Stop()
}

// Start restarts a stopped server on the same port and waits until it answers PING. It skips
// the test on a CHAT_TEST_REDIS_URL server.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	r.mustBePrivate(tb)
	if err := r.private.Start(); err != nil {
		tb.Fatalf("testenv: restart redis-server: %v", err)
	}
}

// mustBePrivate skips the test unless r is a redis-server of its own.
func (r *Redis) mustBePrivate(tb testing.TB) {
	tb.Helper()
	if r.private == nil {
		tb.Skipf("testenv: %s is set; the shared Redis cannot be stopped or started", RedisURLEnv)
	}
}
