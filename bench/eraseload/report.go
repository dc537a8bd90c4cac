package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/supportchat/supportchat/bench/internal/wrk"
)

// report prints the erasure's throughput and the list load of each round's phases, with each
// phase's p99 against the round's baseline.
func report(stdout io.Writer, rounds []round, p params) error {
	fmt.Fprintf(stdout, "\nErasure of a customer with %d conversations × %d messages (settle %s, worker interval %s, status read every %s):\n\n",
		p.eraseConversations, p.eraseMessages, p.settle, p.interval, p.poll)
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| round\t| messages\t| conversations\t| log entries\t| DELETE → messages all erased\t| messages/s\t| DELETE → done\t| messages/s, settle included\t|")
	fmt.Fprintln(tw, "|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|")
	for i, r := range rounds {
		e := r.erasure
		if !e.finished {
			fmt.Fprintf(tw, "| %d\t| %d counted\t| %d\t| %d\t| —\t| —\t| not done after %s\t| —\t|\n", i+1, e.counts.Messages, e.counts.Conversations, e.counts.Entries, seconds(e.done))
			continue
		}
		fmt.Fprintf(tw, "| %d\t| %d\t| %d\t| %d\t| %s\t| %.0f\t| %s\t| %.0f\t|\n", i+1, e.counts.Messages, e.counts.Conversations, e.counts.Entries,
			seconds(e.deleted), perSecond(e.counts.Messages, e.deleted), seconds(e.done), perSecond(e.counts.Messages, e.done))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\nGET %s of the %d other customers, wrk %d threads × %d connections; baseline %s after %s of warm-up:\n\n",
		listPath, p.customers, p.threads, p.connections, p.duration, p.warmup)
	tw = tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| round\t| phase\t| measured\t| requests/s\t| p50\t| p99\t| max\t| errors\t| p99 vs baseline\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|")
	var base, first, rest []wrk.Result
	row := func(round, phase string, r, baseline wrk.Result) {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %.0f\t| %s\t| %s\t| %s\t| %d of %d\t| %s\t|\n", round, phase, seconds(r.Duration), r.Rate(),
			ms(r.P50), ms(r.P99), ms(r.Max), r.Errors(), r.Requests, ratio(r.P99, baseline.P99))
	}
	for i, r := range rounds {
		n := fmt.Sprint(i + 1)
		row(n, "baseline, no erasure", r.baseline, r.baseline)
		phase := "erasure: first pass"
		switch {
		case !r.erasure.finished:
			phase = "erasure, not done within -timeout"
		case !r.hasRest:
			phase = "erasure, whole (fewer messages counted than seeded)"
		}
		row(n, phase, r.firstPass, r.baseline)
		base, first = append(base, r.baseline), append(first, r.firstPass)
		if r.hasRest {
			row(n, "erasure: settle and second pass", r.rest, r.baseline)
			rest = append(rest, r.rest)
		}
	}
	if len(rounds) > 1 {
		b := wrk.Pool(base)
		row("all", "baseline, no erasure", b, b)
		row("all", "erasure: first pass", wrk.Pool(first), b)
		if len(rest) > 0 {
			row("all", "erasure: settle and second pass", wrk.Pool(rest), b)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe first pass is measured from %s before the DELETE until the first status whose count of messages is the final one;\n", leadIn)
	fmt.Fprintln(stdout, "messages/s divides that count by the time from the DELETE to that status (within one status read).")
	if len(rounds) > 1 {
		fmt.Fprintln(stdout, "Rows \"all\" pool the rounds: p50 and p99 are the medians of the rounds' own; max is the largest.")
	}
	return nil
}

// seconds formats d in seconds.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// perSecond returns n per d.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ratio formats a/b.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}
