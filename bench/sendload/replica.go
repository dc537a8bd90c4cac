package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds of a replica's start and stop.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// replica is a `chatd serve` child process.
type replica struct {
	name       string
	url        string
	metricsURL string
	cmd        *exec.Cmd
	logs       *lineLog
	exited     chan struct{}
}

// startReplica runs `chatd serve` from bin on free ports of 127.0.0.1 (the API and the metrics) with the variables vars
// (and of this process's environment only PATH and HOME), and returns once it answers /readyz.
// A free port may be taken before chatd binds it, so it tries a few.
func startReplica(ctx context.Context, stderr io.Writer, bin, name string, vars map[string]string) (*replica, error) {
	var err error
	for range 3 {
		var r *replica
		if r, err = tryReplica(ctx, stderr, bin, name, vars); err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, err
}

// tryReplica makes one attempt of startReplica.
func tryReplica(ctx context.Context, stderr io.Writer, bin, name string, vars map[string]string) (*replica, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &replica{name: name, url: "http://" + addr, metricsURL: "http://" + metricsAddr, logs: newLineLog(stderr, name+": ", 20), exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "serve")
	r.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "CHAT_ADDR=" + addr, "CHAT_METRICS_ADDR=" + metricsAddr}
	for k, v := range vars {
		r.cmd.Env = append(r.cmd.Env, k+"="+v)
	}
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.SysProcAttr = childAttr()
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	if err := r.waitReady(ctx); err != nil {
		r.stop()
		return nil, fmt.Errorf("%s: %w; its last lines:\n%s", name, err, r.logs.tail())
	}
	return r, nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}

// waitReady polls /readyz until it answers 200, the process exits or readyTimeout passes.
func (r *replica) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last string
	for {
		status, err := r.get(ctx, "/readyz")
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			return nil
		default:
			last = fmt.Sprintf("/readyz answered %d", status)
		}
		select {
		case <-r.exited:
			return fmt.Errorf("exited before it was ready (%s)", r.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %s", readyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get sends a GET of path to the replica and returns the status of its answer.
func (r *replica) get(ctx context.Context, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// stop sends SIGTERM and waits for the process to exit, killing it after stopTimeout.
func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(stopTimeout):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.logs.close()
}

// lineLog passes the first limit lines written to it to out, each with prefix, counts the others,
// and keeps the last few for error messages.
type lineLog struct {
	mu         sync.Mutex
	out        io.Writer
	prefix     string
	limit      int
	shown      int
	suppressed int
	partial    []byte
	last       []string
}

// lastLines is how many lines lineLog keeps for tail.
const lastLines = 20

// newLineLog returns a lineLog writing up to limit lines to out.
func newLineLog(out io.Writer, prefix string, limit int) *lineLog {
	return &lineLog{out: out, prefix: prefix, limit: limit}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// line handles one complete line.
func (l *lineLog) line(s string) {
	l.last = append(l.last, s)
	if len(l.last) > lastLines {
		l.last = l.last[1:]
	}
	if l.shown < l.limit {
		l.shown++
		fmt.Fprintf(l.out, "%s%s\n", l.prefix, s)
		return
	}
	l.suppressed++
}

// tail returns the last lines written.
func (l *lineLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "\n")
}

// close reports how many lines were not passed on.
func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed > 0 {
		fmt.Fprintf(l.out, "%s%d more lines not shown\n", l.prefix, l.suppressed)
	}
}
