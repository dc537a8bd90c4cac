package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/supportchat/supportchat/bench/internal/stack"
)

// result is what one measured run of wrk reported.
type result struct {
	requests       int64
	duration       time.Duration
	status, socket int64 // non-2xx/3xx answers; connect, read, write and timeout errors
	p50, p99, max  time.Duration
}

// rate returns the answered requests per second, failures left out.
func (r result) rate() float64 {
	if r.duration <= 0 {
		return 0
	}
	return float64(r.requests-r.errors()) / r.duration.Seconds()
}

// errors counts the failed requests.
func (r result) errors() int64 { return r.status + r.socket }

// total pools t's runs: requests and time add up, p50 and p99 are the medians of the runs'.
func (t *target) total() result {
	var sum result
	var p50s, p99s []time.Duration
	for _, r := range t.runs {
		sum.requests += r.requests
		sum.duration += r.duration
		sum.status += r.status
		sum.socket += r.socket
		sum.max = max(sum.max, r.max)
		p50s = append(p50s, r.p50)
		p99s = append(p99s, r.p99)
	}
	sum.p50, sum.p99 = median(p50s), median(p99s)
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

// generator runs wrk.
type generator struct {
	path   string
	p      params
	stdout io.Writer
}

// load runs wrk against t for the warm-up, then for the measured duration, and records the
// second run.
func (g generator) load(ctx context.Context, t *target) error {
	script := filepath.Join(os.TempDir(), fmt.Sprintf("listload-%d.lua", os.Getpid()))
	if err := os.WriteFile(script, []byte(luaScript(t.tokens)), 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(script) }()
	if err := t.prime(ctx); err != nil {
		return err
	}
	if g.p.warmup > 0 {
		if _, err := g.wrk(ctx, t, script, g.p.warmup); err != nil {
			return err
		}
	}
	var stop func()
	if t.profile != "" {
		var err error
		if stop, err = startProfile(t.profile); err != nil {
			return err
		}
	}
	r, err := g.wrk(ctx, t, script, g.p.duration)
	if stop != nil {
		stop()
	}
	if err != nil {
		return err
	}
	t.runs = append(t.runs, r)
	fmt.Fprintf(g.stdout, "  %.0f requests/s, p50 %s, p99 %s, %d failed of %d\n", r.rate(), ms(r.p50), ms(r.p99), r.errors(), r.requests)
	return nil
}

// wrk runs wrk against t for d with script and parses the line its done() prints.
func (g generator) wrk(ctx context.Context, t *target, script string, d time.Duration) (result, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	cmd := exec.CommandContext(ctx, g.path,
		"-t", strconv.Itoa(g.p.threads), "-c", strconv.Itoa(g.p.connections), "-d", strconv.Itoa(secs)+"s",
		"--timeout", "30s", "-s", script, t.url+listPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "listload:"); ok {
			return parseResult(rest)
		}
	}
	return result{}, fmt.Errorf("wrk printed no result: %s", out)
}

// parseResult reads the fields of the script's done() line.
func parseResult(line string) (result, error) {
	v := map[string]int64{}
	for f := range strings.FieldsSeq(line) {
		k, s, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return result{}, fmt.Errorf("wrk result %q: %w", f, err)
		}
		v[k] = n
	}
	us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
	return result{
		requests: v["requests"], duration: us("duration_us"),
		status: v["status"], socket: v["connect"] + v["read"] + v["write"] + v["timeout"],
		p50: us("p50_us"), p99: us("p99_us"), max: us("max_us"),
	}, nil
}

// luaScript is the wrk script: each request carries the next token of tokens in turn, as many
// distinct callers would (each thread starts at a different one), and done() prints one
// parseable line.
func luaScript(tokens []string) string {
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
  io.write(string.format("listload: requests=%%d duration_us=%%d status=%%d connect=%%d read=%%d write=%%d timeout=%%d p50_us=%%d p99_us=%%d max_us=%%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`, listPath, stack.TenantID)
	return b.String()
}

// wrkVersion returns the first line wrk prints about itself.
func wrkVersion(ctx context.Context, path string) string {
	out, _ := exec.CommandContext(ctx, path, "-v").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
