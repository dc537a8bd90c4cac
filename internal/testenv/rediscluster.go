package testenv

import (
	"context"
	"testing"

	"github.com/supportchat/supportchat/internal/localdeps"
)

// RedisCluster is a Redis Cluster of three redis-server child processes private to one test,
// each the master of a third of the 16384 slots, without replicas or persistence. Tests may stop
// and restart all its nodes to simulate an outage.
type RedisCluster struct {
	c *localdeps.RedisCluster
}

// StartRedisCluster starts three redis-server processes in cluster mode on free ports of
// 127.0.0.1, joins them with redis-cli --cluster create, and waits until every node says the
// cluster is ok with every slot served (about a second, up to 30 s on a loaded machine). The
// processes are killed when the test ends.
func StartRedisCluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	c, err := localdeps.StartRedisCluster(tb.TempDir())
	if err != nil {
		tb.Fatalf("testenv: %v", missing(err))
	}
	tb.Cleanup(c.Stop)
	return &RedisCluster{c: c}
}

// URL returns the cluster's address in go-redis's cluster URL form, such as
// redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002.
func (c *RedisCluster) URL() string { return c.c.URL() }

// Stop kills every node, as an outage would.
func (c *RedisCluster) Stop(tb testing.TB) {
	tb.Helper()
	c.c.Stop()
}

// Start restarts the stopped nodes on their ports with their cluster config files, so the same
// cluster forms again (empty: nothing is persisted), and waits until it is ok.
func (c *RedisCluster) Start(tb testing.TB) {
	tb.Helper()
	if err := c.c.Start(); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
}

// StopNodeNotServing kills one node that does not serve key's slot, as a lost master would,
// and waits until the node that serves it says cluster_state:fail (with every slot required,
// the default, the cluster then refuses every command, although key's node keeps its data).
// Start brings the node back.
func (c *RedisCluster) StopNodeNotServing(tb testing.TB, key string) {
	tb.Helper()
	if err := c.c.StopNodeNotServing(context.Background(), key); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
}
