package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// results are the series measured on one backend: by scenario, then build name, one slice of
// series per run.
type results struct {
	runs map[string]map[string][][]*series
}

// newResults returns empty results.
func newResults() *results { return &results{runs: map[string]map[string][][]*series{}} }

// add records what one run of scenario sc measured for build.
func (r *results) add(sc, build string, measured []*series) {
	if r.runs[sc] == nil {
		r.runs[sc] = map[string][][]*series{}
	}
	r.runs[sc][build] = append(r.runs[sc][build], measured)
}

// names returns the names of the series scenario sc measured for build, in order.
func (r *results) names(sc, build string) []string {
	var names []string
	for _, run := range r.runs[sc][build] {
		for _, s := range run {
			if !slices.Contains(names, s.name) {
				names = append(names, s.name)
			}
		}
	}
	return names
}

// perRun returns series name of scenario sc for build, one per run.
func (r *results) perRun(sc, build, name string) []*series {
	var out []*series
	for _, run := range r.runs[sc][build] {
		for _, s := range run {
			if s.name == name {
				out = append(out, s)
			}
		}
	}
	return out
}

// merged returns series name of scenario sc for build merged over the runs.
func (r *results) merged(sc, build, name string) *series {
	m := newSeries(name)
	for _, s := range r.perRun(sc, build, name) {
		m.merge(s)
	}
	return m
}

// report prints the tables of one backend: latency and errors, then MongoDB commands per
// request, old and new side by side.
func report(w io.Writer, backend string, builds []*build, p params, r *results) {
	oldB, newB := builds[0].name, builds[1].name
	fmt.Fprintf(w, "\n## FerretDB v1.24.2 on %s\n\n", backend)
	fmt.Fprintf(w, "old = %s; new = %s. %d run(s) of each scenario, old and new in turn, pooled. Latency: client-side wall clock of each attempt, from sending the request to reading the whole answer, in ms, `old / new`.\n\n",
		builds[0].describe(), builds[1].describe(), p.runs)
	fmt.Fprintln(w, "| scenario | request | requests | requests/s | p50 ms | p99 ms | max ms | non-2xx old | non-2xx new | retries |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---|---|---:|")
	for _, sc := range p.scenarios {
		for _, name := range r.names(sc, oldB) {
			o, n := r.merged(sc, oldB, name), r.merged(sc, newB, name)
			fmt.Fprintf(w, "| %s | %s | %d / %d | %s / %s | %s / %s | %s / %s | %s / %s | %s | %s | %d / %d |\n",
				scenarioTitle(sc), name, o.requests(), n.requests(), o.rate(), n.rate(),
				ms(o.percentile(0.5)), ms(n.percentile(0.5)), ms(o.percentile(0.99)), ms(n.percentile(0.99)),
				ms(o.maxLatency()), ms(n.maxLatency()), o.errorsText(), n.errorsText(), o.retries, n.retries)
		}
	}
	commandTable(w, oldB, newB, p, r)
	timeTable(w, oldB, newB, p, r)
	notes(w, oldB, newB, p, r)
}

// commandTable prints the MongoDB commands per request of every series that counted them,
// in total and by operation and collection.
func commandTable(w io.Writer, oldB, newB string, p params, r *results) {
	fmt.Fprintln(w, "\nMongoDB commands per request (the `_count` of chat_mongodb_command_duration_seconds of every replica, after minus before, background subtracted, divided by the requests):")
	fmt.Fprintln(w, "\n| request | operation collection | old | new |")
	fmt.Fprintln(w, "|---|---|---:|---:|")
	eachMeasured(oldB, newB, p, r, func(title string, o, n, all commandCounts) {
		fmt.Fprintf(w, "| **%s** | **total** | **%.2f** | **%.2f** |\n", title, o.total(), n.total())
		for _, k := range all.keys() {
			if k.metric != "" || (math.Abs(o[k]) < 0.005 && math.Abs(n[k]) < 0.005) {
				continue
			}
			fmt.Fprintf(w, "| | %s | %.2f | %.2f |\n", k, o[k], n[k])
		}
	})
}

// eachMeasured calls f with the title of every series that counted MongoDB commands, its
// counts per request of the old and the new build, and both together.
func eachMeasured(oldB, newB string, p params, r *results, f func(title string, o, n, all commandCounts)) {
	for _, sc := range p.scenarios {
		for _, name := range r.names(sc, oldB) {
			o, n := r.merged(sc, oldB, name).perRequest(), r.merged(sc, newB, name).perRequest()
			if o == nil && n == nil {
				continue
			}
			all := commandCounts{}
			all.add(o)
			all.add(n)
			f(scenarioTitle(sc)+": "+name, o, n, all)
		}
	}
}

// timeTable prints where the service's time per request went: the time its handlers took, and
// the MongoDB commands' and Redis commands' round trips by operation (these may overlap, and
// some of them run after the answer or in the background, which is subtracted like the counts).
func timeTable(w io.Writer, oldB, newB string, p params, r *results) {
	fmt.Fprintln(w, "\nServer-side time per request, ms (the `_sum` of chat_http_request_duration_seconds, chat_mongodb_command_duration_seconds and chat_redis_command_duration_seconds of every replica, after minus before, background subtracted, divided by the requests):")
	fmt.Fprintln(w, "\n| request | series | old | new |")
	fmt.Fprintln(w, "|---|---|---:|---:|")
	eachMeasured(oldB, newB, p, r, func(title string, o, n, all commandCounts) {
		fmt.Fprintf(w, "| **%s** | | | |\n", title)
		for _, metric := range []string{httpSeconds, mongoSeconds, redisSeconds} {
			fmt.Fprintf(w, "| | **%s, all** | **%.2f** | **%.2f** |\n", metric, 1000*o.seconds(metric), 1000*n.seconds(metric))
			for _, k := range all.keys() {
				if k.metric != metric || (math.Abs(o[k]) < 0.00001 && math.Abs(n[k]) < 0.00001) {
					continue
				}
				fmt.Fprintf(w, "| | %s %s | %.2f | %.2f |\n", metric, k, 1000*o[k], 1000*n[k])
			}
		}
	})
}

// notes prints the background correction, the checks of what was stored and, with several
// runs, the p50 of each run.
func notes(w io.Writer, oldB, newB string, p params, r *results) {
	fmt.Fprintln(w, "\nNotes:")
	fmt.Fprintf(w, "- Background correction: after each scenario the replicas sat idle (presence renewals going on) for as long as its measured requests took (at most %s); the MongoDB commands per second counted then, times each series' measured time, were subtracted:\n", p.idleMax)
	for _, sc := range p.scenarios {
		for _, name := range r.names(sc, oldB) {
			var parts []string
			for _, b := range []string{oldB, newB} {
				m := r.merged(sc, b, name)
				if m.commands == nil {
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %.1f commands over %s (%.3f per request)", b, m.background, m.elapsed.Round(time.Millisecond), m.background/float64(max(m.requests(), 1))))
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  - %s: %s: %s\n", scenarioTitle(sc), name, strings.Join(parts, "; "))
			}
		}
	}
	for _, sc := range p.scenarios {
		for _, name := range r.names(sc, oldB) {
			for _, b := range []string{oldB, newB} {
				for i, s := range r.perRun(sc, b, name) {
					for _, n := range s.notes {
						fmt.Fprintf(w, "- %s, %s, run %d: %s\n", scenarioTitle(sc), b, i+1, n)
					}
				}
			}
			if p.runs > 1 {
				fmt.Fprintf(w, "- %s: %s: p50 by run, ms: old %s; new %s\n", scenarioTitle(sc), name, runP50s(r.perRun(sc, oldB, name)), runP50s(r.perRun(sc, newB, name)))
			}
		}
	}
}

// runP50s lists the p50 of each run.
func runP50s(runs []*series) string {
	var parts []string
	for _, s := range runs {
		parts = append(parts, ms(s.percentile(0.5)))
	}
	return strings.Join(parts, ", ")
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

// perRequestText formats a series' MongoDB commands per request, or "unmeasured".
func perRequestText(s *series) string {
	if c := s.perRequest(); c != nil {
		return fmt.Sprintf("%.2f", c.total())
	}
	return "unmeasured"
}
