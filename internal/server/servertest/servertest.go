// Package servertest runs the whole service inside a test, through server.Run as chatd does.
package servertest

import (
	"context"
	"maps"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/server"
)

// Run is Start, returning the address of the API.
func Run(t testing.TB, env map[string]string, o server.Options, startBound time.Duration) net.Addr {
	t.Helper()
	return Start(t, env, o, startBound).API
}

// Start loads the configuration from env and runs the service with it and options o until the
// test ends (failing the test when Run fails), and returns the addresses it listens on. It fails
// the test when the service does not listen within startBound. o.Getenv and o.OnListen are
// set here; without o.Signals the service gets a channel nothing sends on, so SIGHUP reaches it
// only from the test that passes its own. Without CHAT_METRICS_ADDR in env the metrics take any
// free port of 127.0.0.1, so replicas of one test do not contend for :9090.
func Start(t testing.TB, env map[string]string, o server.Options, startBound time.Duration) server.Addrs {
	t.Helper()
	addrs, _ := StartStoppable(t, env, o, startBound)
	return addrs
}

// StartStoppable is Start, also returning a function that stops the service before the test
// ends, as SIGTERM does, and waits until Run returned; calling it again does nothing.
func StartStoppable(t testing.TB, env map[string]string, o server.Options, startBound time.Duration) (server.Addrs, func()) {
	t.Helper()
	withDefaults := map[string]string{"CHAT_METRICS_ADDR": "127.0.0.1:0"}
	maps.Copy(withDefaults, env)
	env = withDefaults
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	o.Getenv = func(k string) string { return env[k] }
	if o.Signals == nil {
		o.Signals = make(chan os.Signal)
	}
	addrc := make(chan server.Addrs, 1)
	o.OnListen = func(a server.Addrs) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- server.Run(ctx, cfg, o) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr := <-addrc:
		return addr, stop
	case err := <-errc:
		once.Do(func() {})
		t.Fatalf("Run = %v", err)
	case <-time.After(startBound):
		t.Fatalf("the service did not listen within %s", startBound)
	}
	return server.Addrs{}, stop
}
