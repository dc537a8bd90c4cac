// Command eraseload measures the erasure of a customer (DELETE /api/v1/admin/customers/{id})
// while other customers list their conversations: how many messages per second the erasure
// deletes, and the list's p99 of the other customers while it runs against the same figure
// without it, in the same run. The load generator is wrk in a process of its own
// (bench/internal/wrk), as in bench/listload; the service is server.Run over HTTP on
// 127.0.0.1 with the production limits on (quotas the load never reaches), on FerretDB with
// SQLite in a child process, a private redis-server and RS256 tokens from a local issuer
// (bench/internal/stack). The pause between an erasure's two passes and the interval of the
// data rights worker are shortened (-settle, -interval), so a run does not wait 45 s between
// the passes. See bench/RESULTS.md.
//
//	go run ./bench/eraseload [-duration 65s] [-erase-conversations 20] [-erase-messages 500] [-rounds 1]
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
	"path/filepath"
	"syscall"
	"time"

	"github.com/supportchat/supportchat/bench/internal/machine"
	"github.com/supportchat/supportchat/bench/internal/stack"
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
		fmt.Fprintln(os.Stderr, "eraseload:", err)
		os.Exit(1)
	}
}

// listPath is the route the load asks for.
const listPath = "/api/v1/chat/list"

// params are the command's flags.
type params struct {
	duration, warmup   time.Duration
	connections        int
	threads            int
	rounds             int
	conversations      int
	customers          int
	eraseConversations int
	eraseMessages      int
	settle, interval   time.Duration
	poll, timeout      time.Duration
	mongoURI           string
	backend            string
	postgresURL        string
	postgresIndexes    string
	wrk                string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var p params
	fs := flag.NewFlagSet("eraseload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&p.duration, "duration", 65*time.Second, "how long the baseline (the list load without an erasure) is measured in each round: longer than the 60s a cached page lives, so that it sees every page built again once, as a long erasure does")
	fs.DurationVar(&p.warmup, "warmup", 3*time.Second, "how long the list is loaded before the baseline is measured")
	fs.IntVar(&p.connections, "connections", 32, "wrk connections: concurrent requests, each sent as soon as the previous one is answered")
	fs.IntVar(&p.threads, "threads", 2, "wrk threads")
	fs.IntVar(&p.rounds, "rounds", 1, "rounds of baseline and erasure, each round erasing a customer of its own")
	fs.IntVar(&p.conversations, "conversations", 500, "conversations (3 messages each) of the customers who list")
	fs.IntVar(&p.customers, "customers", 100, "customers who list, each with a token of its own")
	fs.IntVar(&p.eraseConversations, "erase-conversations", 20, "conversations of each customer erased")
	fs.IntVar(&p.eraseMessages, "erase-messages", 500, "messages in each of them (at most 4096)")
	fs.DurationVar(&p.settle, "settle", 2*time.Second, "the pause between an erasure's two passes (production: 45s)")
	fs.DurationVar(&p.interval, "interval", 200*time.Millisecond, "how often the data rights worker looks for work (production: 1s)")
	fs.DurationVar(&p.poll, "poll", 100*time.Millisecond, "how often the erasure's status is read")
	fs.DurationVar(&p.timeout, "timeout", 10*time.Minute, "how long an erasure may take before the run fails")
	fs.StringVar(&p.mongoURI, "mongodb-uri", os.Getenv("BENCH_MONGODB_URI"), "a MongoDB to use instead of FerretDB (a fresh database on it); default $BENCH_MONGODB_URI")
	fs.StringVar(&p.backend, "backend", "sqlite", "FerretDB's backend: sqlite (files in a temporary directory) or postgresql (a database created on -postgresql-url and dropped)")
	fs.StringVar(&p.postgresURL, "postgresql-url", localdeps.DefaultPostgreSQLURL, "PostgreSQL server (trust authentication) of -backend postgresql")
	fs.StringVar(&p.postgresIndexes, "postgresql-indexes", "deploy/ferretdb/postgresql-indexes.sql", "with -backend postgresql, the SQL script run on FerretDB's database after seeding, as deploy/README.md says to (\"\": none)")
	fs.StringVar(&p.wrk, "wrk", "wrk", "the wrk binary (Debian: apt-get install wrk)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.connections < 1 || p.threads < 1 || p.threads > p.connections || p.rounds < 1 || p.customers < 1 || p.conversations < p.customers ||
		p.eraseConversations < 1 || p.eraseMessages < 1 || p.eraseMessages > 4096 || p.duration <= 0 || p.warmup < 0 || p.poll <= 0 || p.timeout <= 0 ||
		(p.backend != "sqlite" && p.backend != "postgresql") {
		return errors.New("want -connections >= -threads >= 1, -rounds >= 1, -customers >= 1, -conversations >= -customers, -erase-conversations >= 1, 1 <= -erase-messages <= 4096, -duration, -poll and -timeout > 0, -backend sqlite or postgresql")
	}
	wrkPath, err := exec.LookPath(p.wrk)
	if err != nil {
		return fmt.Errorf("the load generator wrk is not installed (Debian: apt-get install wrk): %w", err)
	}
	fmt.Fprintf(stdout, "machine: %s (before the run)\n", machine.Describe())
	fmt.Fprintf(stdout, "load generator: %s (%s), %d threads, %d connections, its own process\n", wrkPath, wrk.Version(ctx, wrkPath), p.threads, p.connections)
	fmt.Fprintf(stdout, "shortened for the run: the pause between an erasure's passes %s (production 45s), the data rights worker's interval %s (production 1s)\n", p.settle, p.interval)

	dir, err := os.MkdirTemp("", "eraseload-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	b, err := start(ctx, stdout, dir, p)
	if err != nil {
		return err
	}
	defer b.close()

	script := filepath.Join(dir, "list.lua")
	if err := os.WriteFile(script, []byte(wrk.Script(listPath, stack.TenantID, b.tokens)), 0o600); err != nil {
		return err
	}
	runner := wrk.Runner{Path: wrkPath, Threads: p.threads, Connections: p.connections}
	var rounds []round
	for r := range p.rounds {
		res, err := b.round(ctx, stdout, runner, script, r)
		if err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
		rounds = append(rounds, res)
	}
	fmt.Fprintf(stdout, "load average after the run %s\n", machine.LoadAverage())
	return report(stdout, rounds, p)
}

// round is what one round measured.
type round struct {
	// baseline is the list load without an erasure; firstPass from the DELETE until the
	// erasure's count of messages reached its final value; rest from then until it was done.
	baseline, firstPass, rest wrk.Result
	// hasRest is false when the erasure was done before its messages were all counted (the
	// count never reached what was seeded): firstPass then runs until done.
	hasRest bool
	erasure erasureRun
}

// round measures the baseline, then the list load while customer r is erased.
func (b *bench) round(ctx context.Context, stdout io.Writer, runner wrk.Runner, script string, r int) (round, error) {
	var res round
	if err := b.prime(ctx); err != nil {
		return res, err
	}
	fmt.Fprintf(stdout, "round %d: baseline: warming up %s, then measuring %s (load average %s)\n", r+1, b.p.warmup, b.p.duration, machine.LoadAverage())
	if b.p.warmup > 0 {
		if _, err := runner.Run(ctx, b.url+listPath, script, b.p.warmup); err != nil {
			return res, err
		}
	}
	var err error
	if res.baseline, err = runner.Run(ctx, b.url+listPath, script, b.p.duration); err != nil {
		return res, err
	}
	printResult(stdout, res.baseline)

	fmt.Fprintf(stdout, "round %d: erasing %s (%d conversations, %d messages) under the same load (load average %s)\n",
		r+1, b.erased[r], b.p.eraseConversations, b.p.eraseConversations*b.p.eraseMessages, machine.LoadAverage())
	load, err := runner.Start(ctx, b.url+listPath, script, b.p.timeout+time.Minute)
	if err != nil {
		return res, err
	}
	stopLoad := func() (wrk.Result, error) {
		if err := load.Stop(); err != nil {
			return wrk.Result{}, err
		}
		return load.Wait()
	}
	// The load is on before the erasure is asked for (wrk connects in a few milliseconds).
	time.Sleep(leadIn)
	res.erasure, err = b.erase(ctx, b.erased[r], int64(b.p.eraseConversations*b.p.eraseMessages), func() error {
		// The first pass's deletes are counted: the rest of the load is measured apart.
		var err error
		if res.firstPass, err = stopLoad(); err != nil {
			return err
		}
		res.hasRest = true
		load, err = runner.Start(ctx, b.url+listPath, script, b.p.timeout+time.Minute)
		return err
	})
	last, stopErr := stopLoad()
	if err != nil {
		return res, errors.Join(err, stopErr)
	}
	if stopErr != nil {
		return res, stopErr
	}
	if res.hasRest {
		res.rest = last
	} else {
		res.firstPass = last
	}
	e := res.erasure
	if !e.finished {
		fmt.Fprintf(stdout, "  the erasure was not done after %s (-timeout): %d messages counted\n  list during it: ", b.p.timeout, e.counts.Messages)
		printResult(stdout, res.firstPass)
		return res, nil
	}
	fmt.Fprintf(stdout, "  erased %d messages, %d conversations, %d log entries; all messages counted %s after the DELETE, done after %s\n",
		e.counts.Messages, e.counts.Conversations, e.counts.Entries, e.deleted.Round(time.Millisecond), e.done.Round(time.Millisecond))
	fmt.Fprint(stdout, "  list during the first pass: ")
	printResult(stdout, res.firstPass)
	if res.hasRest {
		fmt.Fprint(stdout, "  list during the settle and the second pass: ")
		printResult(stdout, res.rest)
	}
	n, err := b.listed(ctx, b.erasedTokens[r])
	if err != nil {
		return res, fmt.Errorf("the erased customer's list after the erasure: %w", err)
	}
	if n != 0 {
		return res, fmt.Errorf("the erased customer's list after the erasure has %d conversations", n)
	}
	return res, nil
}

// leadIn is how long the load runs before the erasure is asked for.
const leadIn = 200 * time.Millisecond

func printResult(w io.Writer, r wrk.Result) {
	fmt.Fprintf(w, "%.0f requests/s over %s, p50 %s, p99 %s, %d failed of %d\n", r.Rate(), r.Duration.Round(time.Millisecond), ms(r.P50), ms(r.P99), r.Errors(), r.Requests)
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
