package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RedisURLEnv names the variable that points the tests at a Redis server instead of a private
// redis-server.
const RedisURLEnv = "CHAT_TEST_REDIS_URL"

// redisStartTimeout bounds how long a redis-server may take to answer PING.
const redisStartTimeout = 10 * time.Second

// Redis is a redis-server child process private to one test, or the server CHAT_TEST_REDIS_URL
// names. Tests may stop and restart a private one to simulate an outage.
type Redis struct {
	url  string
	bin  string
	port int

	mu   sync.Mutex
	proc *redisProcess
}

// redisProcess is one run of redis-server.
type redisProcess struct {
	cmd    *exec.Cmd
	output *bytes.Buffer
	exited chan struct{}
}

// StartRedis starts a redis-server on a free port of 127.0.0.1, without persistence, and waits
// until it answers PING; it is killed when the test ends. When CHAT_TEST_REDIS_URL is set, that
// server is used instead.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	if url := os.Getenv(RedisURLEnv); url != "" {
		return &Redis{url: url}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal("redis-server not found on PATH: install it (apt-get install redis-server); .ci/run does")
	}
	r := &Redis{bin: bin}
	tb.Cleanup(r.kill)
	port, p, err := startOnFreePort(bin)
	if err != nil {
		tb.Fatalf("testenv: start redis-server: %v", err)
	}
	r.port, r.proc = port, p
	r.url = redisURL(port)
	return r
}

// RunRedisServer starts a private redis-server as StartRedis does, for programs that are not
// tests (the benchmark tools), and returns its URL and how to stop it.
func RunRedisServer() (url string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server not found on PATH: install it (apt-get install redis-server)")
	}
	port, p, err := startOnFreePort(bin)
	if err != nil {
		return "", nil, err
	}
	return redisURL(port), p.stop, nil
}

// startOnFreePort runs redis-server from bin on a free port of 127.0.0.1. A free port may be
// taken by someone else before redis-server binds it, so it tries a few.
func startOnFreePort(bin string) (port int, p *redisProcess, err error) {
	for range 3 {
		if port, err = freePort(); err != nil {
			continue
		}
		if p, err = startRedisServer(bin, port); err == nil {
			return port, p, nil
		}
	}
	return 0, nil, err
}

// redisURL is the URL of the private server on port.
func redisURL(port int) string { return fmt.Sprintf("redis://127.0.0.1:%d/0", port) }

// URL returns the server's address, such as redis://127.0.0.1:6379/0.
func (r *Redis) URL() string { return r.url }

// Stop kills the server, as an outage would. It skips the test on a CHAT_TEST_REDIS_URL server.
func (r *Redis) Stop(tb testing.TB) {
	tb.Helper()
	r.mustBePrivate(tb)
	r.kill()
}

// Start restarts a stopped server on the same port and waits until it answers PING. It skips
// the test on a CHAT_TEST_REDIS_URL server.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	r.mustBePrivate(tb)
	r.mu.Lock()
	running := r.proc != nil
	r.mu.Unlock()
	if running {
		return
	}
	if err := r.start(); err != nil {
		tb.Fatalf("testenv: restart redis-server: %v", err)
	}
}

// mustBePrivate skips the test unless r is a redis-server of its own.
func (r *Redis) mustBePrivate(tb testing.TB) {
	tb.Helper()
	if r.bin == "" {
		tb.Skipf("testenv: %s is set; the shared Redis cannot be stopped or started", RedisURLEnv)
	}
}

// start runs redis-server on r.port and waits until it answers PING (and is this process).
func (r *Redis) start() error {
	p, err := startRedisServer(r.bin, r.port)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	return nil
}

// startRedisServer runs redis-server from bin on port of 127.0.0.1, without persistence and
// with the extra args, and waits until it answers PING (and is this process).
func startRedisServer(bin string, port int, args ...string) (*redisProcess, error) {
	p := &redisProcess{output: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning"}, args...)...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(redisStartTimeout)
	for !ours(addr, p.cmd.Process.Pid) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, bytes.TrimSpace(p.output.Bytes()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within %s", port, redisStartTimeout)
		}
	}
	return p, nil
}

// kill stops the running server, if any, and waits until it has exited.
func (r *Redis) kill() {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// stop kills the process and waits for it.
func (p *redisProcess) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// ours reports whether the Redis server at addr answers PING and is the process pid, not
// another server that took the port first.
func ours(addr string, pid int) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\nINFO server\r\n")); err != nil {
		return false
	}
	rd := bufio.NewReader(c)
	if line, err := rd.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		return false
	}
	header, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(header, "$") {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(header[1:]))
	if err != nil || n < 0 {
		return false
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(rd, info); err != nil {
		return false
	}
	return bytes.Contains(info, []byte("\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n"))
}

// freePort returns a TCP port of 127.0.0.1 nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
