package stack

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// redisServer is a private redis-server child process.
type redisServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis runs redis-server on a free port of 127.0.0.1, without persistence, and waits
// until it answers PING.
func startRedis() (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: install it (apt-get install redis-server)")
	}
	for attempt := 1; ; attempt++ {
		r, err := runRedis(bin)
		if err == nil || attempt == 3 {
			return r, err
		}
	}
}

// runRedis starts one redis-server on a port that was free a moment ago.
func runRedis(bin string) (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &redisServer{url: fmt.Sprintf("redis://127.0.0.1:%d/0", port), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-r.done:
			return nil, fmt.Errorf("redis-server on port %d exited", port)
		default:
		}
		if ours(addr, cmd.Process.Pid) {
			return r, nil
		}
	}
	r.stop()
	return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s", port)
}

// ours reports whether the server at addr answers PING and is the process pid, not another
// server that took the port first.
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

// stop kills the server and waits for it.
func (r *redisServer) stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
}
