// Command listload measures the throughput of GET /api/v1/chat/list against a ceiling, with
// the load generator in a process of its own: wrk (https://github.com/wg/wrk, Debian's 4.1.0)
// loads, in one run and in turn, the real service with the rate limits off, the real service
// with the production limits on (quotas the load never reaches, so every request pays for its
// checks), and a bare Gin handler (gin.New, no middleware) answering the bytes of a real list
// without authentication or storage. The service is server.Run over HTTP on 127.0.0.1, on
// FerretDB with SQLite in a child process, a private redis-server, RS256 tokens from a local
// issuer, and its access log written to a file, one line per request as in production. It
// prints requests per second, p50, p99 and errors of each target and their ratios to the
// ceiling. See bench/RESULTS.md.
//
//	go run ./bench/listload [-duration 10s] [-warmup 3s] [-connections 32] [-threads 2] [-rounds 1]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/supportchat/supportchat/bench/internal/machine"
	"github.com/supportchat/supportchat/bench/internal/wrk"
	"github.com/supportchat/supportchat/internal/localdeps"
	"github.com/supportchat/supportchat/internal/server"
)

func main() {
	localdeps.ServeFerretDBChildIfAsked()
	// As chatd's main: the service runs in this process (server.Run).
	server.SetProcessGlobals(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "listload:", err)
		os.Exit(1)
	}
}

// params are the command's flags.
type params struct {
	duration, warmup time.Duration
	connections      int
	threads          int
	rounds           int
	conversations    int
	customers        int
	admins           int
	mongoURI         string
	cpuProfile       string
	wrk              string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var p params
	fs := flag.NewFlagSet("listload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&p.duration, "duration", 10*time.Second, "how long each target is measured in each round")
	fs.DurationVar(&p.warmup, "warmup", 3*time.Second, "how long each target is loaded before it is measured")
	fs.IntVar(&p.connections, "connections", 32, "wrk connections: concurrent requests, each sent as soon as the previous one is answered")
	fs.IntVar(&p.threads, "threads", 2, "wrk threads")
	fs.IntVar(&p.rounds, "rounds", 1, "rounds of the three targets, measured in turn and pooled")
	fs.IntVar(&p.conversations, "conversations", 500, "conversations in the tenant")
	fs.IntVar(&p.customers, "customers", 100, "customers the conversations belong to, each with a token of its own")
	fs.IntVar(&p.admins, "admins", 4, "admins with a token of their own")
	fs.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (both services and the ceiling; not wrk) during the measured runs of the service with limits on to this file")
	fs.StringVar(&p.mongoURI, "mongodb-uri", os.Getenv("BENCH_MONGODB_URI"), "a MongoDB to use instead of FerretDB (fresh databases on it); default $BENCH_MONGODB_URI")
	fs.StringVar(&p.wrk, "wrk", "wrk", "the wrk binary (Debian: apt-get install wrk)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.connections < 1 || p.threads < 1 || p.threads > p.connections || p.rounds < 1 || p.customers < 1 || p.conversations < p.customers || p.admins < 0 || p.duration <= 0 || p.warmup < 0 {
		return errors.New("want -connections >= -threads >= 1, -rounds >= 1, -customers >= 1, -conversations >= -customers, -admins >= 0, -duration > 0")
	}
	wrkPath, err := exec.LookPath(p.wrk)
	if err != nil {
		return fmt.Errorf("the load generator wrk is not installed (Debian: apt-get install wrk): %w", err)
	}
	fmt.Fprintf(stdout, "machine: %s (before the run)\n", machine.Describe())
	fmt.Fprintf(stdout, "load generator: %s (%s), %d threads, %d connections, its own process\n", wrkPath, wrk.Version(ctx, wrkPath), p.threads, p.connections)

	dir, err := os.MkdirTemp("", "listload-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	var targets []*target
	for _, limits := range []bool{false, true} {
		t, err := startService(ctx, stdout, dir, limits, p)
		if err != nil {
			return err
		}
		defer t.close()
		targets = append(targets, t)
	}
	ceiling, err := startCeiling(targets[0].sample, targets[0].tokens)
	if err != nil {
		return err
	}
	defer ceiling.close()
	targets = append(targets, ceiling)

	if p.cpuProfile != "" {
		targets[1].profile = p.cpuProfile
	}
	g := generator{run: wrk.Runner{Path: wrkPath, Threads: p.threads, Connections: p.connections}, p: p, stdout: stdout}
	for round := range p.rounds {
		for _, t := range targets {
			fmt.Fprintf(stdout, "round %d: %s: warming up %s, then measuring %s\n", round+1, t.name, p.warmup, p.duration)
			if err := g.load(ctx, t); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}
	fmt.Fprintf(stdout, "load average after the run %s\n", machine.LoadAverage())
	return report(stdout, targets, p)
}

// report prints the table of the targets and each one's ratio to the ceiling, the last target.
func report(stdout io.Writer, targets []*target, p params) error {
	fmt.Fprintf(stdout, "\nGET /api/v1/chat/list, wrk %d threads × %d connections, %s measured per round after %s of warm-up, %d round(s), %d conversations, %d tokens:\n\n",
		p.threads, p.connections, p.duration, p.warmup, p.rounds, p.conversations, p.customers+p.admins)
	ceiling := targets[len(targets)-1].total()
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| target\t| requests/s\t| p50\t| p99\t| max\t| errors\t| vs ceiling\t|")
	fmt.Fprintln(tw, "|---\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|")
	for _, t := range targets {
		r := t.total()
		ratio := "—"
		if ceiling.Rate() > 0 {
			ratio = fmt.Sprintf("%.2f", r.Rate()/ceiling.Rate())
		}
		fmt.Fprintf(tw, "| %s\t| %.0f\t| %s\t| %s\t| %s\t| %d of %d\t| %s\t|\n", t.name, r.Rate(), ms(r.P50), ms(r.P99), ms(r.Max), r.Errors(), r.Requests, ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.rounds > 1 {
		fmt.Fprintln(stdout, "\nper round, requests/s:")
		for _, t := range targets {
			var rates []string
			for _, r := range t.runs {
				rates = append(rates, fmt.Sprintf("%.0f", r.Rate()))
			}
			fmt.Fprintf(stdout, "- %s: %s\n", t.name, strings.Join(rates, ", "))
		}
	}
	fmt.Fprintln(stdout, "\np50 and p99 of pooled rounds are the medians of the rounds' own; max is the largest.")
	for _, t := range targets {
		if e := t.total().Errors(); e > 0 {
			fmt.Fprintf(stdout, "%s: %d requests failed (non-2xx answers or socket errors)\n", t.name, e)
		}
	}
	return nil
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// startProfile starts a CPU profile into path, and returns what stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
