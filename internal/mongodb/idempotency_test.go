package mongodb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/testenv"
)

// record returns a fresh idempotency record of shop for key, created at now for a day.
func record(key, seed string, now time.Time) idempotency.Record {
	return idempotency.Record{
		Key: key, TenantID: shop, Fingerprint: "fp-" + key, Seed: seed,
		CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
	}
}

// mustStoreAt returns a store on a fresh database whose clock stands at t0.
func mustStoreAt(tb testing.TB) *mongodb.Store {
	tb.Helper()
	clk := testenv.NewClock(t0)
	return mustOpen(tb, clk.Now).Store()
}

func TestReserveRacedOnlyOneWins(t *testing.T) {
	s := mustStoreAt(t)
	const racers = 8
	type result struct {
		rec      idempotency.Record
		reserved bool
		err      error
	}
	results := make([]result, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			r := &results[i]
			r.rec, r.reserved, r.err = s.Reserve(context.Background(), record("k1", string(rune('a'+i)), t0))
		})
	}
	wg.Wait()

	winners := 0
	var seed string
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Reserve(racer %d): %v", i, r.err)
		}
		if r.reserved {
			winners++
			seed = r.rec.Seed
		}
	}
	if winners != 1 {
		t.Fatalf("%d racers reserved the key, want exactly 1", winners)
	}
	for i, r := range results {
		if r.rec.Seed != seed {
			t.Errorf("racer %d got seed %q, want the winner's %q", i, r.rec.Seed, seed)
		}
	}
}

func TestReserveExpiredRecordIsReplaced(t *testing.T) {
	clk := testenv.NewClock(t0)
	s := mustOpen(t, clk.Now).Store()
	ctx := context.Background()
	first := record("k1", "first", t0)
	first.ExpiresAt = t0.Add(time.Hour)
	if _, ok, err := s.Reserve(ctx, first); err != nil || !ok {
		t.Fatalf("Reserve(new key) = %v, %v; want reserved", ok, err)
	}

	clk.Advance(30 * time.Minute)
	got, ok, err := s.Reserve(ctx, record("k1", "second", clk.Now()))
	if err != nil || ok || got.Seed != "first" {
		t.Errorf("Reserve(unexpired key) = seed %q, %v, %v; want the first record, not reserved", got.Seed, ok, err)
	}

	clk.Advance(30 * time.Minute) // now == ExpiresAt: expired
	third := record("k1", "third", clk.Now())
	got, ok, err = s.Reserve(ctx, third)
	if err != nil || !ok {
		t.Fatalf("Reserve(expired key) = %v, %v; want reserved", ok, err)
	}
	if diff := cmp.Diff(third, got); diff != "" {
		t.Errorf("Reserve(expired key) record (-want +got):\n%s", diff)
	}
	got, ok, err = s.Reserve(ctx, record("k1", "fourth", clk.Now()))
	if err != nil || ok || got.Seed != "third" {
		t.Errorf("Reserve(after replacement) = seed %q, %v, %v; want the third record", got.Seed, ok, err)
	}
}

func TestResponsesAndRelease(t *testing.T) {
	s := mustStoreAt(t)
	ctx := context.Background()
	done := record("done", "s1", t0)
	if _, ok, err := s.Reserve(ctx, done); err != nil || !ok {
		t.Fatalf("Reserve: %v, %v", ok, err)
	}
	resp := idempotency.Response{Fingerprint: done.Fingerprint, Status: 201, Body: []byte(`{"id":"x"}`), Location: "/api/v1/chat/x"}
	if got, err := s.SaveResponse(ctx, done, resp); err != nil || !cmp.Equal(got, resp) {
		t.Fatalf("SaveResponse = %+v, %v; want its own", got, err)
	}
	// A twin's response comes second: the first stays, and is what the twin answers.
	if got, err := s.SaveResponse(ctx, done, idempotency.Response{Status: 201, Body: []byte(`{"id":"y"}`)}); err != nil || !cmp.Equal(got, resp) {
		t.Errorf("second SaveResponse = %+v, %v; want the first stored response", got, err)
	}
	if err := s.Release(ctx, shop, "done"); err != nil {
		t.Fatalf("Release(done): %v", err)
	}
	got, ok, err := s.Reserve(ctx, record("done", "s2", t0))
	if err != nil || ok {
		t.Fatalf("Reserve(after releasing a done key) = %v, %v; want the stored record", ok, err)
	}
	if got.Response == nil || !cmp.Equal(*got.Response, resp) || got.Seed != "s1" {
		t.Errorf("stored record = %+v; want seed s1 with response %+v", got, resp)
	}

	if _, ok, err := s.Reserve(ctx, record("failed", "s1", t0)); err != nil || !ok {
		t.Fatalf("Reserve: %v, %v", ok, err)
	}
	if err := s.Release(ctx, outdoor, "failed"); err != nil {
		t.Fatalf("Release(other tenant): %v", err)
	}
	if got, _, _ := s.Reserve(ctx, record("failed", "s2", t0)); got.Released {
		t.Error("another tenant's Release released the key")
	}
	if err := s.Release(ctx, shop, "failed"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	// A released key keeps its record and seed: a retry still finds what a twin stored.
	got, ok, err = s.Reserve(ctx, record("failed", "s3", t0))
	if err != nil || ok || !got.Released || got.Seed != "s1" || got.Response != nil {
		t.Errorf("Reserve(after release) = %+v, %v, %v; want the released record with seed s1, no response", got, ok, err)
	}
	// The corrected request's response carries its own fingerprint.
	corrected := idempotency.Response{Fingerprint: "corrected", Status: 201, Body: []byte(`{}`)}
	if _, err := s.SaveResponse(ctx, got, corrected); err != nil {
		t.Fatalf("SaveResponse: %v", err)
	}
	if got, _, _ := s.Reserve(ctx, record("failed", "s4", t0)); got.Response == nil || got.Response.Fingerprint != "corrected" {
		t.Errorf("after SaveResponse = %+v; want the corrected response", got)
	}
}

// TestExpiredRecordForgetsItsResponse takes over a key whose record expired: its old response
// is not the new request's.
func TestExpiredRecordForgetsItsResponse(t *testing.T) {
	clk := testenv.NewClock(t0)
	s := mustOpen(t, clk.Now).Store()
	ctx := context.Background()
	old := record("k", "old", t0)
	if _, ok, err := s.Reserve(ctx, old); err != nil || !ok {
		t.Fatalf("Reserve: %v, %v", ok, err)
	}
	if _, err := s.SaveResponse(ctx, old, idempotency.Response{Status: 201, Body: []byte(`{"old":true}`)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(25 * time.Hour)
	fresh := record("k", "fresh", clk.Now())
	got, ok, err := s.Reserve(ctx, fresh)
	if err != nil || !ok || got.Response != nil {
		t.Fatalf("Reserve(expired key) = %+v, %v, %v; want reserved anew without a response", got, ok, err)
	}
	resp := idempotency.Response{Status: 201, Body: []byte(`{"fresh":true}`)}
	if stored, err := s.SaveResponse(ctx, fresh, resp); err != nil || string(stored.Body) != `{"fresh":true}` {
		t.Errorf("SaveResponse(fresh) = %s, %v; want its own", stored.Body, err)
	}
}

func TestSweepIdempotency(t *testing.T) {
	clk := testenv.NewClock(t0)
	s := mustOpen(t, clk.Now).Store()
	ctx := context.Background()
	for i := range 5 {
		rec := record(fmt.Sprintf("k%d", i), "seed", t0.Add(time.Duration(i)*time.Hour))
		if _, ok, err := s.Reserve(ctx, rec); err != nil || !ok {
			t.Fatalf("Reserve: %v, %v", ok, err)
		}
	}
	// Records live 24h (see record): at t0+26h30m the first three have expired.
	now := t0.Add(26*time.Hour + 30*time.Minute)
	for _, want := range []int{2, 1, 0} {
		if n, err := s.SweepIdempotency(ctx, now, 2); err != nil || n != want {
			t.Fatalf("SweepIdempotency(limit 2) = %d, %v; want %d", n, err, want)
		}
	}
	clk.Set(now)
	for i := range 5 {
		_, fresh, err := s.Reserve(ctx, record(fmt.Sprintf("k%d", i), "new", now))
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		if want := i < 3; fresh != want {
			t.Errorf("key k%d reserved anew = %v, want %v (swept or expired)", i, fresh, want)
		}
	}
}
