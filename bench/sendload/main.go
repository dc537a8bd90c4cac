// Command sendload measures the write path of two builds of Support Chat side by side: the
// latency of POST /api/v1/chat/{id}/messages with one writer and with eight writers on one
// conversation (through one replica and through three), the latency of uncached lists and
// conversation reads, and how many MongoDB commands each request costs, read from the
// service's own metrics.
//
// Each build is a `chatd` binary built from a git ref (in a temporary worktree) or from the
// checkout the tool runs in ("worktree"), run as `chatd serve` child processes on FerretDB
// v1.24.2 (a child process too, on SQLite files or on the local PostgreSQL) and a private
// redis-server, with one tenant whose issuer is a local devissuer minting RS256 tokens. The
// tool is only the load generator. Everything listens on 127.0.0.1. See bench/RESULTS.md.
//
//	go run ./bench/sendload [-old b04ebcf] [-new worktree] [-backends sqlite,postgresql] [-runs 1] [-posts 200] [-posts8 100]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/supportchat/supportchat/internal/localdeps"
)

func main() {
	localdeps.ServeFerretDBChildIfAsked()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sendload:", err)
		os.Exit(1)
	}
}

// params are the command's flags.
type params struct {
	oldRef, newRef string
	backends       []string
	scenarios      []string
	runs           int
	posts          int
	posts8         int
	warmup         int
	reads          int
	idleMax        time.Duration
	postgresURL    string
}

// backendNames are what -backends accepts, in the order they run.
func backendNames() []string { return []string{"sqlite", "postgresql"} }

// parseFlags reads the command line into params.
func parseFlags(args []string, stderr io.Writer) (params, error) {
	var p params
	var backends, scenarios string
	fs := flag.NewFlagSet("sendload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&p.oldRef, "old", "b04ebcf", "git ref of the old build")
	fs.StringVar(&p.newRef, "new", "worktree", `git ref of the new build, or "worktree": the checkout the tool runs in, uncommitted changes included`)
	fs.StringVar(&backends, "backends", strings.Join(backendNames(), ","), "FerretDB backends to measure on: sqlite, postgresql")
	fs.StringVar(&scenarios, "scenarios", strings.Join(scenarioNames(), ","), "scenarios to run: a (1 writer), a-nokey (a without Idempotency-Key), b (8 writers, 1 replica), c (8 writers, 3 replicas), d (uncached list and GET)")
	fs.IntVar(&p.runs, "runs", 1, "how many times each scenario runs for each build, old and new in turn")
	fs.IntVar(&p.posts, "posts", 200, "measured posts of the single writer (scenarios a and a-nokey)")
	fs.IntVar(&p.posts8, "posts8", 100, "posts of each of the 8 writers (scenarios b and c)")
	fs.IntVar(&p.warmup, "warmup", 20, "unmeasured posts of the single writer before it is measured")
	fs.IntVar(&p.reads, "reads", 200, "lists, and then GETs, of scenario d")
	fs.DurationVar(&p.idleMax, "idle-max", time.Minute, "longest idle interval measured for the background MongoDB commands (the count is scaled to the measured interval)")
	fs.StringVar(&p.postgresURL, "postgresql-url", localdeps.DefaultPostgreSQLURL, "PostgreSQL server (trust authentication) for the postgresql backend; a fresh database is created on it and dropped")
	if err := fs.Parse(args); err != nil {
		return p, err
	}
	if fs.NArg() > 0 {
		return p, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if p.backends, err = list("-backends", backends, backendNames()); err != nil {
		return p, err
	}
	if p.scenarios, err = list("-scenarios", scenarios, scenarioNames()); err != nil {
		return p, err
	}
	if p.runs < 1 || p.posts < 1 || p.posts8 < 1 || p.warmup < 0 || p.reads < 1 || p.idleMax < 0 {
		return p, errors.New("want -runs, -posts, -posts8 and -reads >= 1, -warmup >= 0 and -idle-max >= 0")
	}
	return p, nil
}

// list splits the comma-separated value of flag name and checks each item is one of known; it
// returns them in the order of known.
func list(name, value string, known []string) ([]string, error) {
	items := strings.Split(value, ",")
	for _, it := range items {
		if !slices.Contains(known, strings.TrimSpace(it)) {
			return nil, fmt.Errorf("%s: unknown %q, want some of %s", name, it, strings.Join(known, ","))
		}
	}
	var out []string
	for _, k := range known {
		if slices.ContainsFunc(items, func(it string) bool { return strings.TrimSpace(it) == k }) {
			out = append(out, k)
		}
	}
	return out, nil
}

// run is the command: it builds both binaries, measures every scenario on every backend, and
// prints a report per backend on stdout; progress goes to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sendload-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	loadStart := loadAverage()
	fmt.Fprintf(stdout, "# sendload\n\nmachine: %s %s/%s, nproc %d, load average at start %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadStart)

	builds, err := buildBoth(ctx, stderr, tmp, p.oldRef, p.newRef)
	if err != nil {
		return err
	}
	for _, b := range builds {
		fmt.Fprintf(stdout, "%s: %s\n", b.name, b.describe())
	}
	t, err := newTenant(tmp)
	if err != nil {
		return err
	}
	defer t.close()

	for _, name := range p.backends {
		results, err := measureBackend(ctx, stderr, tmp, name, builds, t, p)
		var skip *skipError
		switch {
		case errors.As(err, &skip):
			fmt.Fprintf(stdout, "\n## FerretDB v1.24.2 on %s\n\nskipped: %s\n", name, skip.reason)
			fmt.Fprintf(stderr, "%s skipped: %s\n", name, skip.reason)
			continue
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		}
		report(stdout, name, builds, p, results)
	}
	fmt.Fprintf(stdout, "\nload average at start %s, at end %s; nproc %d\n", loadStart, loadAverage(), runtime.NumCPU())
	return nil
}

// measureBackend runs FerretDB on backend name and every scenario on it, p.runs times, for
// each build in turn, and returns what they measured.
func measureBackend(ctx context.Context, stderr io.Writer, tmp, name string, builds []*build, t *tenant, p params) (*results, error) {
	fmt.Fprintf(stderr, "== backend %s\n", name)
	db, err := startBackend(ctx, stderr, tmp, name, p.postgresURL)
	if err != nil {
		return nil, err
	}
	defer db.stop()
	res := newResults()
	for r := range p.runs {
		for _, sc := range p.scenarios {
			for _, b := range builds {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				fmt.Fprintf(stderr, "-- %s, run %d/%d, scenario %s, %s build\n", name, r+1, p.runs, scenarioTitle(sc), b.name)
				e := &env{stderr: stderr, build: b, backend: db, tenant: t, p: p,
					database: fmt.Sprintf("sendload_%d_%s_%s_%d", os.Getpid(), b.name, strings.ReplaceAll(sc, "-", "_"), r+1)}
				m, err := e.run(ctx, scenarioByName(sc))
				if err != nil {
					return nil, fmt.Errorf("scenario %s, %s build: %w", sc, b.name, err)
				}
				res.add(sc, b.name, m)
			}
		}
	}
	return res, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages of the machine, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
