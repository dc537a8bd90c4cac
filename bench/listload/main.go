// Command listload measures the throughput of GET /api/v1/chat/list against a ceiling: the
// real service (server.Run over HTTP on 127.0.0.1, FerretDB on SQLite in a child process, a
// private redis-server, RS256 tokens from a local issuer), loaded at the highest rate a fixed
// number of vegeta workers reach with many distinct tokens, and then, the same way, a bare Gin
// handler (gin.New, no middleware) answering the bytes of a real list response without
// authentication or storage. It prints requests per second, p50, p99 and errors of both and
// their ratio. The load generator runs in the same process as the service and shares its
// CPUs. See bench/RESULTS.md.
//
//	go run ./bench/listload [-duration 10s] [-warmup 3s] [-workers 32] [-conversations 500] [-customers 100] [-admins 4]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gin-gonic/gin"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/supportchat/supportchat/bench/internal/stack"
)

func main() {
	stack.ServeChildIfAsked()
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
	workers          int
	conversations    int
	customers        int
	admins           int
	mongoURI         string
	cpuProfile       string
	limits           bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var p params
	fs := flag.NewFlagSet("listload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&p.duration, "duration", 10*time.Second, "how long each target is measured")
	fs.DurationVar(&p.warmup, "warmup", 3*time.Second, "how long each target is loaded before it is measured")
	fs.IntVar(&p.workers, "workers", 32, "vegeta workers: concurrent requests, each sent as soon as the previous one is answered (-rate=0)")
	fs.IntVar(&p.conversations, "conversations", 500, "conversations in the tenant")
	fs.IntVar(&p.customers, "customers", 100, "customers the conversations belong to, each with a token of its own")
	fs.IntVar(&p.admins, "admins", 4, "admins with a token of their own")
	fs.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of the service's measured run (service and load generator, one process) to this file")
	fs.StringVar(&p.mongoURI, "mongodb-uri", os.Getenv("BENCH_MONGODB_URI"), "a MongoDB to use instead of FerretDB (a fresh database on it); default $BENCH_MONGODB_URI")
	fs.BoolVar(&p.limits, "limits", false, "turn the rate limits on, with quotas the load never reaches, to measure what their checks in Redis cost")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.workers < 1 || p.customers < 1 || p.conversations < p.customers || p.admins < 0 || p.duration <= 0 || p.warmup < 0 {
		return errors.New("want -workers >= 1, -customers >= 1, -conversations >= -customers, -admins >= 0, -duration > 0")
	}
	fmt.Fprintf(stdout, "machine: %s %s/%s, %d CPUs (%s), GOMAXPROCS %d, load average before the run %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0), loadAverage())

	t0 := time.Now()
	s, err := stack.Start(ctx, stack.Options{MongoURI: p.mongoURI, Limits: p.limits})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "service: %s, started in %s\n", s.URL, time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	plan := stack.Plan{Conversations: p.conversations, Customers: p.customers, Admins: max(p.admins, 1)}
	if err := stack.Seed(ctx, s.MongoURI, s.Database, stack.TenantID, plan); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(stdout, "tenant %s: %d conversations of %d customers (3 messages each), seeded in bulk in %s\n",
		stack.TenantID, p.conversations, p.customers, time.Since(t0).Round(time.Millisecond))

	listURL := s.URL + "/api/v1/chat/list"
	fmt.Fprintf(stdout, "minting a token for each customer and admin, and checking each one's list once\n")
	targets, sample, err := mintTargets(ctx, s, listURL, p)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tokens: %d distinct RS256 tokens (%d customers, %d admins); a customer's list is %d bytes\n",
		len(targets), p.customers, p.admins, len(sample))

	if p.cpuProfile != "" {
		f, err := os.Create(p.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	service := attack(ctx, stdout, "service (list)", targets, p)
	if p.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	bareURL, stopBare, err := serveBytes(sample)
	if err != nil {
		return err
	}
	defer stopBare()
	bare := make([]vegeta.Target, len(targets))
	for i, t := range targets {
		bare[i] = vegeta.Target{Method: t.Method, URL: bareURL, Header: t.Header}
	}
	floor := attack(ctx, stdout, "bare Gin, same bytes", bare, p)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	fmt.Fprintf(stdout, "\nGET /api/v1/chat/list, %d workers, %s each after %s of warm-up, %d conversations, %d tokens:\n\n",
		p.workers, p.duration, p.warmup, p.conversations, len(targets))
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| target\t| requests/s\t| p50\t| p99\t| errors\t|")
	fmt.Fprintln(tw, "|---\t|---:\t|---:\t|---:\t|---:\t|")
	for _, r := range []*result{service, floor} {
		fmt.Fprintf(tw, "| %s\t| %.1f\t| %s\t| %s\t| %d of %d\t|\n", r.name, r.rate(), ms(r.m.Latencies.P50), ms(r.m.Latencies.P99), r.failed, r.m.Requests)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if floor.rate() > 0 && service.rate() > 0 {
		fmt.Fprintf(stdout, "\nservice / bare Gin: %.2f%% of the ceiling's requests/s (the ceiling is %.1fx the service)\n",
			100*service.rate()/floor.rate(), floor.rate()/service.rate())
	}
	for _, r := range []*result{service, floor} {
		if r.failed > 0 {
			fmt.Fprintf(stdout, "%s: status codes %v, first errors %q\n", r.name, r.m.StatusCodes, firstN(r.m.Errors, 5))
		}
	}
	return nil
}

// mintTargets mints a token for every customer and admin, checks each one's list once (which
// also fetches the issuer's keys), and returns one target per token and a customer's list.
func mintTargets(ctx context.Context, s *stack.Stack, listURL string, p params) ([]vegeta.Target, []byte, error) {
	var targets []vegeta.Target
	var sample []byte
	perCustomer := p.conversations / p.customers
	add := func(id, name string, admin bool, want int) error {
		token, err := s.Issuer.Mint(id, name, admin, 24*time.Hour)
		if err != nil {
			return err
		}
		h := http.Header{}
		h.Set("X-Tenant-ID", stack.TenantID)
		h.Set("Authorization", "Bearer "+token)
		t := vegeta.Target{Method: http.MethodGet, URL: listURL, Header: h}
		body, err := get(ctx, t)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if got := bytes.Count(body, []byte(`"subject"`)); got < want {
			return fmt.Errorf("%s: %d conversations listed, want %d: %.300s", id, got, want, body)
		}
		if sample == nil {
			sample = body
		}
		targets = append(targets, t)
		return nil
	}
	for i := range p.customers {
		id, name := stack.Customer(i)
		if err := add(id, name, false, min(perCustomer, 20)); err != nil {
			return nil, nil, err
		}
	}
	for i := range p.admins {
		id, name := stack.Admin(i)
		if err := add(id, name, true, min(p.conversations, 20)); err != nil {
			return nil, nil, err
		}
	}
	return targets, sample, nil
}

// get sends t once and returns the body of a 200 answer.
func get(ctx context.Context, t vegeta.Target) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header = t.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %.300s", t.URL, resp.StatusCode, body)
	}
	return body, nil
}

// result is what one target did while it was measured.
type result struct {
	name string
	m    vegeta.Metrics
	// failed counts the requests that got no 200 answer.
	failed uint64
}

// rate returns the 200 answers per second.
func (r *result) rate() float64 {
	if r.m.Duration <= 0 {
		return 0
	}
	return float64(r.m.Requests-r.failed) / (r.m.Duration + r.m.Wait).Seconds()
}

// attack loads targets in turn with p.workers workers at the highest rate they reach, first for
// p.warmup (not measured), then for p.duration, and returns what the second part measured.
func attack(ctx context.Context, stdout io.Writer, name string, targets []vegeta.Target, p params) *result {
	fmt.Fprintf(stdout, "%s: warming up %s, then measuring %s\n", name, p.warmup, p.duration)
	var r *result
	for _, du := range []time.Duration{p.warmup, p.duration} {
		r = &result{name: name}
		if du == 0 {
			continue
		}
		a := vegeta.NewAttacker(
			vegeta.Workers(uint64(p.workers)),
			vegeta.MaxWorkers(uint64(p.workers)),
			vegeta.KeepAlive(true),
			vegeta.Timeout(30*time.Second),
			vegeta.Proxy(func(*http.Request) (*url.URL, error) { return nil, nil }),
		)
		results := a.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: 0}, du, name)
		done := ctx.Done()
	collect:
		for {
			select {
			case res, ok := <-results:
				if !ok {
					break collect
				}
				r.m.Add(res)
				if res.Code != http.StatusOK {
					r.failed++
				}
			case <-done:
				a.Stop()
				done = nil
			}
		}
		r.m.Close()
	}
	return r
}

// serveBytes serves body as the answer to every GET of /api/v1/chat/list from a bare Gin
// engine (gin.New, no middleware, no authentication, no storage) on 127.0.0.1, with the
// service's server timeouts, and returns its URL.
func serveBytes(body []byte) (string, func(), error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/api/v1/chat/list", func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", body) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/api/v1/chat/list", func() { _ = srv.Close() }, nil
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// loadAverage returns the 1, 5 and 15 minute load averages of the machine, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// cpuModel returns the CPU's model name, or "unknown CPU".
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// firstN returns up to n of ss.
func firstN(ss []string, n int) []string { return ss[:min(n, len(ss))] }
