package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/supportchat/supportchat/internal/localdeps"
	"github.com/supportchat/supportchat/internal/server"
)

// asChatdEnv names the variable that makes this test binary run main() instead of the tests:
// the tests start the real chatd as a child process of their own, with its own signal handling
// and exit code.
const asChatdEnv = "CHATD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asChatdEnv) == "1" {
		main() // exits
	}
	gin.SetMode(gin.ReleaseMode) // as main sets it
	os.Exit(m.Run())
}

// runChatd is run with a process log on stdout, as main runs it.
func runChatd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	logs := server.NewProcessLog(stdout)
	defer func() { _ = logs.Close() }()
	return run(ctx, args, getenv, logs, stdout, stderr)
}

// chatd is a `chatd serve` child process.
type chatd struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{} // closed when the process has exited
	state  *os.ProcessState
}

// startChatd runs `chatd serve` with the variables env (and no others of this process but PATH
// and HOME) until it exits or the test ends, and waits until it listens.
func startChatd(t *testing.T, env map[string]string) *chatd {
	t.Helper()
	p := &chatd{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "serve")
	p.cmd.Env = []string{asChatdEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = localdeps.ChildAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting chatd: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// addr waits for the "listening" log line and returns the address chatd listens on.
func (p *chatd) addr(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.exited:
			t.Fatalf("chatd exited before listening: %v\nstdout:\n%s\nstderr:\n%s", p.state, p.stdout, p.stderr)
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				return line.Addr
			}
		}
	}
	t.Fatalf("chatd did not listen within 60s; stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
	return ""
}

// signal sends sig to the process.
func (p *chatd) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit code (-1 when a
// signal ended it).
func (p *chatd) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.exited:
		return p.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, errors.New("chatd did not exit within " + timeout.String())
	}
}

// logs returns what the process wrote, for failure messages.
func (p *chatd) logs() string {
	return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
}
