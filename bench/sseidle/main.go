// Command sseidle measures what idle event streams cost the service: it starts the real
// service (bench/internal/stack), opens -streams event streams to it from a child process (so
// the client's sockets and memory are not counted), waits until all are open and idle, and
// reports the service process's RSS and Go memory before and after, per stream.
//
//	go run ./bench/sseidle -streams 10000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/internal/localdeps"
	"github.com/supportchat/supportchat/internal/server"
)

func main() {
	localdeps.ServeFerretDBChildIfAsked()
	// As chatd's main: the service runs in this process (server.Run).
	server.SetProcessGlobals(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sseidle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sseidle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	streams := fs.Int("streams", 10000, "event streams to open")
	connect := fs.String("connect", "", "(child) the service's host:port to open streams to")
	token := fs.String("token", "", "(child) the bearer token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *connect != "" {
		return client(*connect, *token, *streams, stdout)
	}

	s, err := stack.Start(ctx, stack.Options{LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer s.Close()
	tok, err := s.Issuer.Mint("idle-customer", "Idle", false, 24*time.Hour)
	if err != nil {
		return err
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return err
	}
	before := measure()
	fmt.Fprintf(stdout, "%s %s/%s, %d CPUs; opening %d event streams from a child process\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *streams)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.CommandContext(ctx, self, "-connect", u.Host, "-token", tok, "-streams", strconv.Itoa(*streams))
	child.Stderr = stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return err
	}
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = stdin.Close(); _ = child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		return fmt.Errorf("client: %q %w", line, err)
	}
	fmt.Fprintf(stdout, "%d streams open in %s\n", *streams, time.Since(t0).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // let them go idle
	after := measure()

	per := func(a, b uint64) string {
		return fmt.Sprintf("%.1f KiB", float64(int64(b)-int64(a))/float64(*streams)/1024)
	}
	fmt.Fprintf(stdout, "\n| | before | with %d idle streams | per stream |\n|---|---:|---:|---:|\n", *streams)
	fmt.Fprintf(stdout, "| RSS of the service process | %s | %s | %s |\n", mib(before.rss), mib(after.rss), per(before.rss, after.rss))
	fmt.Fprintf(stdout, "| Go heap in use | %s | %s | %s |\n", mib(before.heap), mib(after.heap), per(before.heap, after.heap))
	fmt.Fprintf(stdout, "| goroutine stacks | %s | %s | %s |\n", mib(before.stack), mib(after.stack), per(before.stack, after.stack))
	fmt.Fprintf(stdout, "| goroutines | %d | %d | |\n", before.goroutines, after.goroutines)
	return nil
}

type mem struct {
	rss, heap, stack uint64
	goroutines       int
}

func measure() mem {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{rss: rss(), heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// rss reads VmRSS of this process from /proc (0 elsewhere).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// client opens n event streams to addr, reads each one's first bytes (the stream is open once
// the service sent "retry:"), says "ready" and holds them until its stdin closes.
func client(addr, token string, n int, stdout io.Writer) error {
	req := "GET /api/v1/chat/events HTTP/1.1\r\nHost: " + addr + "\r\nX-Tenant-ID: " + stack.TenantID +
		"\r\nAuthorization: Bearer " + token + "\r\nAccept: text/event-stream\r\n\r\n"
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		got := ""
		for !strings.Contains(got, "retry:") {
			k, err := c.Read(buf)
			if err != nil {
				return fmt.Errorf("stream %d: %w (read %q)", i, err, got)
			}
			got += string(buf[:k])
		}
		if !strings.HasPrefix(got, "HTTP/1.1 200") {
			return errors.New("stream refused: " + got)
		}
		_ = c.SetReadDeadline(time.Time{})
		conns = append(conns, c)
	}
	fmt.Fprintln(stdout, "ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}
