package idempotency

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is an in-memory Store for the keeper's pure logic; the MongoDB store has its own
// integration tests, and the API tests run the whole protocol against it.
type memStore struct {
	mu    sync.Mutex
	recs  map[string]Record
	resps map[string]Response
	now   func() time.Time
}

func (m *memStore) Reserve(_ context.Context, rec Record) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := rec.TenantID + ":" + rec.Key
	if old, ok := m.recs[k]; ok && old.ExpiresAt.After(m.now()) {
		if r, ok := m.resps[k]; ok {
			old.Response = &r
		}
		return old, false, nil
	}
	delete(m.resps, k)
	m.recs[k] = rec
	return rec, true, nil
}

func (m *memStore) SaveResponse(_ context.Context, rec Record, resp Response) (Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := rec.TenantID + ":" + rec.Key
	if r, ok := m.resps[k]; ok {
		return r, nil
	}
	m.resps[k] = resp
	return resp, nil
}

func (m *memStore) Release(_ context.Context, tenantID, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.recs[tenantID+":"+key]; ok {
		r.Released = true
		m.recs[tenantID+":"+key] = r
	}
	return nil
}

func newKeeper() (*Keeper, *time.Time) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	n := 0
	var mu sync.Mutex
	seed := func() string { mu.Lock(); defer mu.Unlock(); n++; return "seed-" + strconv.Itoa(n) }
	return NewKeeper(&memStore{recs: map[string]Record{}, resps: map[string]Response{}, now: clock}, time.Hour, clock, seed), &now
}

func TestKeeper(t *testing.T) {
	ctx := context.Background()
	k, now := newKeeper()
	req := Request{TenantID: "shop", CallerID: "ada", Route: "POST /chat/start", Key: "k1", Body: []byte(`{"message": "hi"}`)}

	first, err := k.Begin(ctx, req)
	if err != nil || first.Replay != nil {
		t.Fatalf("first Begin = %+v, %v", first, err)
	}
	// A racing twin runs with the same seed.
	twin, err := k.Begin(ctx, req)
	if err != nil || twin.Replay != nil || twin.Seed != first.Seed {
		t.Fatalf("twin = %+v, %v; want the first seed %q", twin, err, first.Seed)
	}
	// The twin failing does not release the key its sibling is using.
	if _, err := k.Finish(ctx, twin, Response{Status: 409}); err != nil {
		t.Fatal(err)
	}
	if r, err := k.Finish(ctx, first, Response{Status: 201, Body: []byte(`{"id":"c1"}`), Location: "/api/v1/chat/c1"}); err != nil || string(r.Body) != `{"id":"c1"}` {
		t.Fatalf("Finish = %+v, %v; want its own response stored", r, err)
	}
	// The same body with other white space replays.
	spaced := req
	spaced.Body = []byte(`{ "message":"hi" }`)
	again, err := k.Begin(ctx, spaced)
	if err != nil || again.Replay == nil || again.Replay.Status != 201 || string(again.Replay.Body) != `{"id":"c1"}` || again.Replay.Location != "/api/v1/chat/c1" {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	other := req
	other.Body = []byte(`{"message":"other"}`)
	if _, err := k.Begin(ctx, other); !errors.Is(err, ErrKeyReused) {
		t.Errorf("another body = %v, want ErrKeyReused", err)
	}
	// The key is scoped to caller and route.
	for _, r := range []Request{{TenantID: "shop", CallerID: "bob", Route: req.Route, Key: "k1", Body: req.Body}, {TenantID: "shop", CallerID: "ada", Route: "POST /chat/x/messages", Key: "k1", Body: req.Body}} {
		if a, err := k.Begin(ctx, r); err != nil || a.Replay != nil {
			t.Errorf("Begin(%+v) = %+v, %v; want a fresh attempt", r, a, err)
		}
	}
	// After the TTL the key is forgotten.
	*now = now.Add(2 * time.Hour)
	if a, err := k.Begin(ctx, req); err != nil || a.Replay != nil {
		t.Errorf("after expiry = %+v, %v; want a fresh attempt", a, err)
	}
}

func TestFailureReleasesTheKeyButKeepsTheSeed(t *testing.T) {
	ctx := context.Background()
	k, _ := newKeeper()
	req := Request{TenantID: "shop", CallerID: "ada", Route: "r", Key: "k", Body: []byte(`{}`)}
	a, _ := k.Begin(ctx, req)
	if _, err := k.Finish(ctx, a, Response{Status: 400}); err != nil {
		t.Fatal(err)
	}
	// The corrected request runs, with the seed of the failed one: if a twin of the failed
	// attempt stored something after all, the corrected request finds it.
	fixed := req
	fixed.Body = []byte(`{"message":"fixed"}`)
	again, err := k.Begin(ctx, fixed)
	if err != nil {
		t.Fatalf("after a failed attempt the key is still taken: %v", err)
	}
	if again.Seed != a.Seed || again.Replay != nil {
		t.Errorf("corrected attempt = %+v; want a fresh run with the seed %q", again, a.Seed)
	}
	if _, err := k.Finish(ctx, again, Response{Status: 201, Body: []byte(`{"id":"m1"}`), Location: ""}); err != nil {
		t.Fatal(err)
	}
	// Its response is now the key's: a retry of it replays, the first body is refused.
	if r, err := k.Begin(ctx, fixed); err != nil || r.Replay == nil || string(r.Replay.Body) != `{"id":"m1"}` {
		t.Errorf("retry of the corrected request = %+v, %v; want the stored response", r, err)
	}
	if _, err := k.Begin(ctx, req); !errors.Is(err, ErrKeyReused) {
		t.Errorf("first body after the corrected one succeeded = %v, want ErrKeyReused", err)
	}
}

// TestTwinsAnswerTheFirstStoredResponse has two attempts of one request succeed with
// different bodies (as twins whose work interleaved might): both answer with the response
// stored first, and so does every replay.
func TestTwinsAnswerTheFirstStoredResponse(t *testing.T) {
	ctx := context.Background()
	k, _ := newKeeper()
	req := Request{TenantID: "shop", CallerID: "ada", Route: "POST /chat/start", Key: "twin", Body: []byte(`{"message":"hi"}`)}
	a, _ := k.Begin(ctx, req)
	b, _ := k.Begin(ctx, req)
	first, err := k.Finish(ctx, b, Response{Status: 201, Body: []byte(`{"id":"c1","messages":["hi","away"]}`), Location: "/api/v1/chat/c1"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := k.Finish(ctx, a, Response{Status: 201, Body: []byte(`{"id":"c1","messages":["hi"]}`), Location: "/api/v1/chat/c1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(second.Body) != string(first.Body) {
		t.Errorf("the second twin answers %s, want the first stored answer %s", second.Body, first.Body)
	}
	replay, err := k.Begin(ctx, req)
	if err != nil || replay.Replay == nil || string(replay.Replay.Body) != string(first.Body) {
		t.Errorf("replay = %+v, %v; want the first stored answer", replay, err)
	}
}

func TestBadKeys(t *testing.T) {
	k, _ := newKeeper()
	for _, key := range []string{"", strings.Repeat("k", MaxKeyLength+1), "tab\there", "ünïcode"} {
		if _, err := k.Begin(context.Background(), Request{Key: key}); !errors.Is(err, ErrBadKey) {
			t.Errorf("Begin(key %q) = %v, want ErrBadKey", key, err)
		}
	}
}
