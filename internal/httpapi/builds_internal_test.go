package httpapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedBuildsRunOncePerKey starts many requests at once for two keys: each key is built
// once and every request gets its own key's value; a request that leaves does not fail the
// others, and the build goes on without it.
func TestSharedBuildsRunOncePerKey(t *testing.T) {
	var b builds
	var runs atomic.Int32
	release := make(chan struct{})
	build := func(v string) func(context.Context) ([]byte, error) {
		return func(ctx context.Context) ([]byte, error) {
			runs.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte(v), nil
		}
	}
	// One request leaves before the build is done.
	leaving, leave := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := b.share(leaving, "a", build("A"))
		left <- err
	}()
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		key, want := "a", "A"
		if i%2 == 1 {
			key, want = "b", "B"
		}
		wg.Go(func() {
			v, err := b.share(context.Background(), key, build(want))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			got[i] = string(v)
		})
	}
	time.Sleep(50 * time.Millisecond) // let them join the builds in flight
	leave()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("the request that left got %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	for i, v := range got {
		if want := map[bool]string{true: "A", false: "B"}[i%2 == 0]; v != want {
			t.Errorf("request %d got %q, want %q", i, v, want)
		}
	}
	// Requests that arrived while a key's build ran shared it. On a loaded machine a
	// straggler may start after the builds were released and build its key again; without
	// sharing there would be 21 builds.
	if n := runs.Load(); n < 2 || n > 4 {
		t.Errorf("%d builds for 21 requests of two keys, want 2 (a straggler or two at most)", n)
	}
}

// TestASharedBuildThatPanicsFailsItsRequests: the build runs outside the request's goroutine,
// where the recovery middleware cannot catch a panic; it must fail the requests, not the
// process.
func TestASharedBuildThatPanicsFailsItsRequests(t *testing.T) {
	var b builds
	_, err := b.share(context.Background(), "k", func(context.Context) ([]byte, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a panicking build returned %v, want an error naming the panic", err)
	}
	if v, err := b.share(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("ok"), nil }); err != nil || string(v) != "ok" {
		t.Fatalf("the next build of the key = %q, %v; want ok", v, err)
	}
}
