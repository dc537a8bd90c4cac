package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/bench/internal/wrk"
)

// total pools t's runs (wrk.Pool).
func (t *target) total() wrk.Result { return wrk.Pool(t.runs) }

// generator runs wrk.
type generator struct {
	run    wrk.Runner
	p      params
	stdout io.Writer
}

// load runs wrk against t for the warm-up, then for the measured duration, and records the
// second run.
func (g generator) load(ctx context.Context, t *target) error {
	script := filepath.Join(os.TempDir(), fmt.Sprintf("listload-%d.lua", os.Getpid()))
	if err := os.WriteFile(script, []byte(wrk.Script(listPath, stack.TenantID, t.tokens)), 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(script) }()
	if err := t.prime(ctx); err != nil {
		return err
	}
	if g.p.warmup > 0 {
		if _, err := g.run.Run(ctx, t.url+listPath, script, g.p.warmup); err != nil {
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
	r, err := g.run.Run(ctx, t.url+listPath, script, g.p.duration)
	if stop != nil {
		stop()
	}
	if err != nil {
		return err
	}
	t.runs = append(t.runs, r)
	fmt.Fprintf(g.stdout, "  %.0f requests/s, p50 %s, p99 %s, %d failed of %d\n", r.Rate(), ms(r.P50), ms(r.P99), r.Errors(), r.Requests)
	return nil
}
