package server

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/testenv"
)

// newService assembles a service on FerretDB (through uri, when not empty) and a private
// redis-server, with no tenants, closed when the test ends.
func newService(t *testing.T, uri string) *Service {
	t.Helper()
	base, database := testenv.MustMongo(t)
	if uri == "" {
		uri = base
	}
	rds := testenv.StartRedis(t)
	env := map[string]string{
		"CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database, "CHAT_MONGODB_TIMEOUT": "2s",
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": t.TempDir(),
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), cfg, Options{Stdout: io.Discard, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Every loop has a name of its own, and all of them return once their context ends.
func TestLoopsAreNamedAndEndWithTheirContext(t *testing.T) {
	s := newService(t, "")
	loops := s.Loops()
	names := map[string]bool{}
	for _, l := range loops {
		if l.Name == "" || names[l.Name] {
			t.Errorf("loop name %q is empty or repeated", l.Name)
		}
		names[l.Name] = true
	}
	for _, want := range []string{"log relay", "indexes", "support clock", "webhooks"} {
		if !names[want] {
			t.Errorf("no loop %q among %v", want, names)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := s.start(ctx, loops)
	time.Sleep(100 * time.Millisecond) // every loop has started its work
	cancel()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the loops did not end within 30s of their context")
	}
}

// The index loop keeps trying while MongoDB cannot be reached, and builds the indexes once it
// answers; the expiry of idempotency records waits for it.
func TestIndexLoopBuildsTheIndexesOnceMongoDBAnswers(t *testing.T) {
	base, _ := testenv.MustMongo(t)
	uri, proxy := testenv.ProxyMongo(t, base)
	proxy.Cut()
	s := newService(t, uri)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.buildIndexes(ctx) }()
	defer func() { cancel(); <-done }()

	// At least one attempt fails while the network is cut (each is bounded by the 2 s
	// operation timeout).
	time.Sleep(3 * time.Second)
	if s.indexed.Load() {
		t.Fatal("indexes reported built while MongoDB was unreachable")
	}
	proxy.Restore()
	for deadline := time.Now().Add(60 * time.Second); !s.indexed.Load(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("indexes not built within 60s of MongoDB answering again")
		}
	}
	select {
	case <-done: // the loop ends once the indexes are built
	case <-time.After(10 * time.Second):
		t.Error("the index loop still runs after building the indexes")
	}
}

// every calls its function on each tick, and not after its context ended.
func TestEveryCallsItsFunctionUntilTheContextEnds(t *testing.T) {
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); every(ctx, time.Millisecond, func() { calls.Add(1) }) }()
	for deadline := time.Now().Add(30 * time.Second); calls.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls in 30s at an interval of 1ms", calls.Load())
		}
	}
	cancel()
	<-done
	after := calls.Load()
	time.Sleep(20 * time.Millisecond)
	if got := calls.Load(); got != after {
		t.Errorf("%d calls after the context ended", got-after)
	}
}
