package localdeps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisCLI says redis-cli, which joins the nodes of a Redis Cluster, is not installed.
var ErrNoRedisCLI = errors.New("redis-cli not found on PATH: install it (apt-get install redis-tools, which redis-server depends on)")

// redisClusterTimeout bounds how long a started or restarted cluster may take until every node
// says cluster_state:ok with every slot served; a loaded CI machine needs seconds, not minutes.
const redisClusterTimeout = 30 * time.Second

// redisClusterNodes is how many masters a RedisCluster has: the fewest Redis Cluster accepts.
const redisClusterNodes = 3

// clusterNodeTimeout is how long a node of a RedisCluster goes unanswered before the others
// count it as failed (Redis's default is 15 s). A failed master with slots is cleared 2 node
// timeouts after it answers again, so StopNodeNotServing and Start take seconds, not a minute;
// it stays long enough that a loaded machine does not fail a node that is only slow.
const clusterNodeTimeout = 5 * time.Second

// RedisCluster is a Redis Cluster of three redis-server child processes, each the master of a
// third of the 16384 slots, without replicas or persistence. All its nodes, or one, may be
// stopped and started again, as in an outage.
type RedisCluster struct {
	bin   string
	dir   string
	nodes []*clusterNode

	mu sync.Mutex // guards each node's proc
}

// clusterNode is one node of a RedisCluster: its client port, its cluster bus port, and its
// running process, if any.
type clusterNode struct {
	port    int
	busPort int
	proc    *redisProcess
}

// StartRedisCluster starts three redis-server processes in cluster mode on free ports of
// 127.0.0.1, with their cluster config files in dir, joins them with redis-cli --cluster
// create, and returns once every node says the cluster is ok with every slot served (about a
// second, up to 30 s on a loaded machine). It returns ErrNoRedisServer or ErrNoRedisCLI when
// either is not installed. Stop kills the processes.
func StartRedisCluster(dir string) (*RedisCluster, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, ErrNoRedisCLI
	}
	c := &RedisCluster{bin: bin, dir: dir}
	// Free ports may be taken by someone else before redis-server binds them: try a few times.
	for attempt := 1; ; attempt++ {
		if err = c.startNewNodes(); err == nil {
			break
		}
		c.Stop()
		if attempt == 3 {
			return nil, fmt.Errorf("start redis cluster: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisClusterTimeout)
	defer cancel()
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli %s: %w\n%s%s", strings.Join(args, " "), err, out, c.output())
	}
	if err := c.waitOK(); err != nil {
		return nil, fmt.Errorf("%w%s", err, c.output())
	}
	return c, nil
}

// URL returns the cluster's address in go-redis's cluster URL form, such as
// redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002.
func (c *RedisCluster) URL() string {
	addrs := make([]string, len(c.nodes)-1)
	for i, n := range c.nodes[1:] {
		addrs[i] = "addr=" + n.addr()
	}
	return "redis://" + c.nodes[0].addr() + "?" + strings.Join(addrs, "&")
}

// Stop kills every running node, as an outage would, and waits until each has exited.
func (c *RedisCluster) Stop() {
	c.mu.Lock()
	var procs []*redisProcess
	for _, n := range c.nodes {
		if n.proc != nil {
			procs = append(procs, n.proc)
			n.proc = nil
		}
	}
	c.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
}

// Start restarts the stopped nodes on their ports with their cluster config files, so the same
// cluster forms again (empty: nothing is persisted), and returns once it is ok. On an error
// every node is stopped.
func (c *RedisCluster) Start() error {
	for _, n := range c.nodes {
		c.mu.Lock()
		running := n.proc != nil
		c.mu.Unlock()
		if running {
			continue
		}
		p, err := c.startNode(n)
		if err != nil {
			c.Stop()
			return fmt.Errorf("restart redis cluster node: %w", err)
		}
		c.mu.Lock()
		n.proc = p
		c.mu.Unlock()
	}
	if err := c.waitOK(); err != nil {
		return fmt.Errorf("restart redis cluster: %w%s", err, c.output())
	}
	return nil
}

// startNewNodes picks free ports and starts a fresh node on each.
func (c *RedisCluster) startNewNodes() error {
	ports, err := freePorts(2 * redisClusterNodes)
	if err != nil {
		return err
	}
	c.nodes = make([]*clusterNode, redisClusterNodes)
	for i := range c.nodes {
		n := &clusterNode{port: ports[2*i], busPort: ports[2*i+1]}
		c.nodes[i] = n
		p, err := c.startNode(n)
		if err != nil {
			return err
		}
		c.mu.Lock()
		n.proc = p
		c.mu.Unlock()
	}
	return nil
}

// startNode runs redis-server in cluster mode for n, with its config file in c.dir.
func (c *RedisCluster) startNode(n *clusterNode) (*redisProcess, error) {
	return startRedisServer(c.bin, n.port,
		"--cluster-enabled", "yes",
		"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
		"--cluster-port", strconv.Itoa(n.busPort),
		"--cluster-config-file", filepath.Join(c.dir, fmt.Sprintf("nodes-%d.conf", n.port)),
		"--dir", c.dir)
}

// waitOK polls every node until each says cluster_state:ok, knows all nodes and sees every
// slot served, or redisClusterTimeout passes.
func (c *RedisCluster) waitOK() error {
	ctx, cancel := context.WithTimeout(context.Background(), redisClusterTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
		defer clients[i].Close()
	}
	want := []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:" + strconv.Itoa(len(c.nodes))}
	for {
		var notOK error
		for i, rdb := range clients {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				notOK = fmt.Errorf("CLUSTER INFO on %s: %w", c.nodes[i].addr(), err)
				break
			}
			for _, w := range want {
				if !strings.Contains(info, w+"\r\n") {
					notOK = fmt.Errorf("CLUSTER INFO on %s lacks %s:\n%s", c.nodes[i].addr(), w, strings.TrimSpace(info))
					break
				}
			}
			if notOK != nil {
				break
			}
		}
		if notOK == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok within %s: %w", redisClusterTimeout, notOK)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// output returns what the nodes have written so far, for a failure message. It stops the nodes
// first: their output may only be read once they have exited.
func (c *RedisCluster) output() string {
	c.mu.Lock()
	var procs []*redisProcess
	var ports []int
	for _, n := range c.nodes {
		if n.proc != nil {
			procs = append(procs, n.proc)
			ports = append(ports, n.port)
		}
	}
	c.mu.Unlock()
	c.Stop()
	var b strings.Builder
	for i, p := range procs {
		fmt.Fprintf(&b, "\nredis-server on port %d:\n%s", ports[i], bytes.TrimSpace(p.output.Bytes()))
	}
	return b.String()
}

// addr returns the node's host:port.
func (n *clusterNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// StopNodeNotServing kills one node that does not serve key's slot, as a lost master would,
// and returns once the node that serves it says cluster_state:fail (with every slot required,
// the default, the cluster then refuses every command, although key's node keeps its data).
// Start brings the node back.
func (c *RedisCluster) StopNodeNotServing(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*redisClusterTimeout)
	defer cancel()
	owner := -1
	probe := redis.NewClient(&redis.Options{Addr: c.nodes[0].addr(), MaxRetries: -1})
	slot, err := probe.ClusterKeySlot(ctx, key).Result()
	var shards []redis.ClusterShard
	if err == nil {
		shards, err = probe.ClusterShards(ctx).Result()
	}
	_ = probe.Close()
	if err != nil {
		return fmt.Errorf("cluster shards: %w", err)
	}
	for _, sh := range shards {
		serves := slices.ContainsFunc(sh.Slots, func(r redis.SlotRange) bool { return r.Start <= slot && slot <= r.End })
		for _, nd := range sh.Nodes {
			for i, n := range c.nodes {
				if serves && nd.Role == "master" && int(nd.Port) == n.port {
					owner = i
				}
			}
		}
	}
	if owner < 0 {
		return fmt.Errorf("no node serves %q", key)
	}
	victim := c.nodes[(owner+1)%len(c.nodes)]
	c.mu.Lock()
	p := victim.proc
	victim.proc = nil
	c.mu.Unlock()
	p.stop()
	rdb := redis.NewClient(&redis.Options{Addr: c.nodes[owner].addr(), MaxRetries: -1})
	defer rdb.Close()
	for {
		if info, err := rdb.ClusterInfo(ctx).Result(); err == nil && strings.Contains(info, "cluster_state:fail\r\n") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not notice a lost node within %s", 2*redisClusterTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
