package localdeps

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoRedisServer says redis-server is not installed.
var ErrNoRedisServer = errors.New("redis-server not found on PATH: install it (apt-get install redis-server)")

// redisStartTimeout bounds how long a redis-server may take to answer PING.
const redisStartTimeout = 10 * time.Second

// Redis is a private redis-server child process on a free port of 127.0.0.1, without
// persistence. It may be stopped and started again on the same port, as in an outage.
type Redis struct {
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

// StartRedis starts a redis-server on a free port of 127.0.0.1, without persistence, and
// returns once it answers PING. It returns ErrNoRedisServer when redis-server is not installed.
func StartRedis() (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	// A free port may be taken by someone else before redis-server binds it: try a few.
	for range 3 {
		var ports []int
		if ports, err = freePorts(1); err != nil {
			continue
		}
		r := &Redis{bin: bin, port: ports[0]}
		if r.proc, err = startRedisServer(bin, r.port); err == nil {
			return r, nil
		}
	}
	return nil, err
}

// URL returns the server's address, such as redis://127.0.0.1:6379/0.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Stop kills the server, as an outage would, and waits until it has exited.
func (r *Redis) Stop() {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Start starts a stopped server again on its port, and returns once it answers PING.
func (r *Redis) Start() error {
	r.mu.Lock()
	running := r.proc != nil
	r.mu.Unlock()
	if running {
		return nil
	}
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
	p.cmd.SysProcAttr = ChildAttr()
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

// freePorts returns n distinct TCP ports of 127.0.0.1 nobody listens on right now. Someone else
// may take one before the caller binds it: callers try again with new ones.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so no port is handed out twice
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
