// Package wrk runs the load generator of the HTTP benchmarks under bench/: wrk
// (https://github.com/wg/wrk, Debian's 4.1.0) in a process of its own, so that its CPU is not
// the service's, with a Lua script that sends each request with the next of many callers'
// tokens and prints one parseable line of results.
package wrk

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is what one run of wrk reported.
type Result struct {
	Requests int64
	Duration time.Duration
	// Status counts non-2xx/3xx answers; Socket connect, read, write and timeout errors.
	Status, Socket int64
	P50, P99, Max  time.Duration
}

// Rate returns the answered requests per second, failures left out.
func (r Result) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors()) / r.Duration.Seconds()
}

// Errors counts the failed requests.
func (r Result) Errors() int64 { return r.Status + r.Socket }

// Pool pools runs: requests and time add up, P50 and P99 are the medians of the runs' own, Max
// is the largest.
func Pool(runs []Result) Result {
	var sum Result
	var p50s, p99s []time.Duration
	for _, r := range runs {
		sum.Requests += r.Requests
		sum.Duration += r.Duration
		sum.Status += r.Status
		sum.Socket += r.Socket
		sum.Max = max(sum.Max, r.Max)
		p50s = append(p50s, r.P50)
		p99s = append(p99s, r.P99)
	}
	sum.P50, sum.P99 = median(p50s), median(p99s)
	return sum
}

// median returns the median of ds, 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// Runner runs wrk.
type Runner struct {
	// Path is the wrk binary.
	Path string
	// Threads and Connections are wrk's -t and -c.
	Threads, Connections int
}

// Run runs wrk against url for d with the script file script (see Script), and returns what
// the script's done() printed.
func (r Runner) Run(ctx context.Context, url, script string, d time.Duration) (Result, error) {
	run, err := r.Start(ctx, url, script, d)
	if err != nil {
		return Result{}, err
	}
	return run.Wait()
}

// Running is a run of wrk started by Start.
type Running struct {
	cmd *exec.Cmd
	out strings.Builder
}

// Start starts wrk against url for d with the script file script, and returns at once.
func (r Runner) Start(ctx context.Context, url, script string, d time.Duration) (*Running, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	run := &Running{cmd: exec.CommandContext(ctx, r.Path,
		"-t", strconv.Itoa(r.Threads), "-c", strconv.Itoa(r.Connections), "-d", strconv.Itoa(secs)+"s",
		"--timeout", "30s", "-s", script, url)}
	run.cmd.Stdout, run.cmd.Stderr = &run.out, &run.out
	if err := run.cmd.Start(); err != nil {
		return nil, fmt.Errorf("wrk: %w", err)
	}
	return run, nil
}

// Stop ends the run early: wrk stops sending on SIGINT and reports what it measured until then.
func (run *Running) Stop() error { return run.cmd.Process.Signal(syscall.SIGINT) }

// Wait waits for the run to end and returns its result.
func (run *Running) Wait() (Result, error) {
	err := run.cmd.Wait()
	out := run.out.String()
	if err != nil {
		return Result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(line, resultPrefix); ok {
			return parse(rest)
		}
	}
	return Result{}, fmt.Errorf("wrk printed no result: %s", out)
}

// resultPrefix starts the line the script's done() prints.
const resultPrefix = "benchresult:"

// parse reads the fields of the script's done() line.
func parse(line string) (Result, error) {
	v := map[string]int64{}
	for f := range strings.FieldsSeq(line) {
		k, s, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Result{}, fmt.Errorf("wrk result %q: %w", f, err)
		}
		v[k] = n
	}
	if _, ok := v["requests"]; !ok {
		return Result{}, errors.New("wrk result without requests")
	}
	us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
	return Result{
		Requests: v["requests"], Duration: us("duration_us"),
		Status: v["status"], Socket: v["connect"] + v["read"] + v["write"] + v["timeout"],
		P50: us("p50_us"), P99: us("p99_us"), Max: us("max_us"),
	}, nil
}

// Script returns a wrk script that GETs path with the header X-Tenant-ID: tenantID, each
// request carrying the next token of tokens in turn, as many distinct callers would (each
// thread starts at a different one), and whose done() prints the line Wait parses.
func Script(path, tenantID string, tokens []string) string {
	var b strings.Builder
	b.WriteString("local tokens = {\n")
	for _, t := range tokens {
		fmt.Fprintf(&b, "  %q,\n", t)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, `local n = #tokens
local i = 0
local threads = 0
setup = function(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
init = function(args)
  i = (offset * 37) %% n
end
request = function()
  i = i %% n + 1
  return wrk.format("GET", %q, { ["X-Tenant-ID"] = %q, ["Authorization"] = "Bearer " .. tokens[i] })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%s requests=%%d duration_us=%%d status=%%d connect=%%d read=%%d write=%%d timeout=%%d p50_us=%%d p99_us=%%d max_us=%%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`, path, tenantID, resultPrefix)
	return b.String()
}

// Version returns the first line wrk prints about itself.
func Version(ctx context.Context, path string) string {
	out, _ := exec.CommandContext(ctx, path, "-v").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
