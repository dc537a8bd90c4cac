package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/alicebob/miniredis/v2"

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/tenant"
)

// dataDir holds FerretDB's SQLite files between runs, in a folder named for the storage
// layout, so a checkout never reads data an older one wrote in another layout (the
// conversation logs of docs/CONSISTENCY.md replaced v1's conversations with pending messages).
const dataDir = ".chatd-dev/v2"

// defaultAddr is where chatd-dev listens unless CHAT_ADDR says otherwise: this machine only.
const defaultAddr = "127.0.0.1:8080"

// defaultMetricsAddr is where chatd-dev serves /metrics unless CHAT_METRICS_ADDR says
// otherwise: this machine only, like the API. A busy port stops the start with an error naming
// CHAT_METRICS_ADDR (a local Prometheus listens on 9090 too).
const defaultMetricsAddr = "127.0.0.1:9090"

// defaultWebhookAllowedNetworks lets webhook deliveries reach receivers on this machine unless
// CHAT_WEBHOOK_ALLOWED_NETWORKS says otherwise, so a newcomer can point an endpoint at a local
// receiver (over http, which the allowed networks accept); production allows none by default.
const defaultWebhookAllowedNetworks = "127.0.0.0/8,::1/128"

// stack is the embedded development stack and what it must close.
type stack struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	// logs is the process's log (nil: the service logs to stderr on its own).
	logs *server.ProcessLog
	// now is the service's clock (server.Options.Now); nil is the real one.
	now func() time.Time

	mu      sync.Mutex
	issuers map[string]*devissuer.Issuer
	names   map[string]string // tenant names by id, for the demo pages
	closers []func()
}

// Run starts the embedded servers, then the service, seeds demo data once it listens, and
// serves until ctx ends.
func (s *stack) Run(ctx context.Context) error {
	env := localDefaults(s.getenv)
	getenv := func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return s.getenv(name)
	}
	if s.getenv("CHAT_MONGODB_URI") == "" {
		uri, err := s.startFerretDB(ctx)
		if err != nil {
			return fmt.Errorf("ferretdb: %w", err)
		}
		env["CHAT_MONGODB_URI"] = uri
	}
	if s.getenv("CHAT_REDIS_URL") == "" {
		url, err := s.startRedis()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		env["CHAT_REDIS_URL"] = url
		env["CHAT_REDIS_MODE"] = "single" // the embedded Redis is one server
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	var log *slog.Logger
	if s.logs != nil {
		s.logs.Level.Set(cfg.LogLevel)
		log = s.logs.Logger
	}
	seeded := make(chan error, 1)
	runErr := server.Run(ctx, cfg, server.Options{
		Logger:        log,
		Version:       "dev",
		Getenv:        getenv,
		Stdout:        s.stderr, // logs go to stderr so the tokens and curl stay readable on stdout
		RewriteTenant: s.rewrite,
		Handler:       s.pages,
		Now:           s.now,
		OnListen: func(a server.Addrs) {
			go func() { seeded <- s.welcome(ctx, cfg.TenantsDir, a) }()
		},
	})
	select {
	case err := <-seeded:
		if err != nil && runErr == nil {
			fmt.Fprintln(s.stderr, "chatd-dev: demo data:", err)
		}
	default:
	}
	return runErr
}

// localDefaults returns the variables chatd-dev sets where the user's environment does not:
// listeners on this machine only, and webhooks allowed to reach it. A variable the user sets
// wins.
func localDefaults(getenv func(string) string) map[string]string {
	env := map[string]string{}
	for name, value := range map[string]string{
		"CHAT_ADDR":                     defaultAddr, // loopback only: the demo mints admin tokens for anyone
		"CHAT_METRICS_ADDR":             defaultMetricsAddr,
		"CHAT_WEBHOOK_ALLOWED_NETWORKS": defaultWebhookAllowedNetworks,
	} {
		if getenv(name) == "" {
			env[name] = value
		}
	}
	return env
}

// rewrite points a tenant's issuer at its development issuer, started on first sight.
func (s *stack) rewrite(t *tenant.Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.issuers == nil {
		s.issuers = map[string]*devissuer.Issuer{}
		s.names = map[string]string{}
	}
	s.names[t.ID] = t.Name
	iss, ok := s.issuers[t.ID]
	if !ok {
		admin := ""
		if len(t.OIDC.AdminValues) > 0 {
			admin = t.OIDC.AdminValues[0]
		}
		var err error
		iss, err = devissuer.New(devissuer.Options{Audience: t.OIDC.Audience, AdminClaim: t.OIDC.AdminClaim, AdminValue: admin, NameClaim: t.OIDC.NameClaim})
		if err != nil {
			fmt.Fprintf(s.stderr, "chatd-dev: no development issuer for %s: %v\n", t.ID, err)
			return
		}
		s.issuers[t.ID] = iss
		s.closers = append(s.closers, func() { _ = iss.Close() })
	}
	t.OIDC.Issuer = iss.URL()
}

// issuer returns the development issuer of tenant id.
func (s *stack) issuer(id string) *devissuer.Issuer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuers[id]
}

// startFerretDB runs FerretDB in process on SQLite files under dataDir.
func (s *stack) startFerretDB(ctx context.Context) (string, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(quietFerretDB{slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})}),
	})
	if err != nil {
		return "", err
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(fctx)
	}()
	s.closers = append(s.closers, func() { cancel(); <-done })
	return f.MongoDBURI(), nil
}

// quietFerretDB drops FerretDB's dumps of the answers it sends ("Response header: ...",
// "Response message: ..."). It dumps every answer that is not ok as a warning: answers the
// service expects and handles (the TTL index FerretDB lacks, the driver's endSessions at
// shutdown, the duplicate keys by which racing writes and retries find each other) would
// otherwise fill a newcomer's terminal. Everything else FerretDB says still shows.
type quietFerretDB struct{ slog.Handler }

func (q quietFerretDB) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Response header:") || strings.HasPrefix(r.Message, "Response message:") {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietFerretDB) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietFerretDB{q.Handler.WithAttrs(attrs)}
}

func (q quietFerretDB) WithGroup(name string) slog.Handler {
	return quietFerretDB{q.Handler.WithGroup(name)}
}

// startRedis runs a private redis-server on a free port, or embedded miniredis without one.
func (s *stack) startRedis() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		m, err := miniredis.Run()
		if err != nil {
			return "", err
		}
		s.closers = append(s.closers, m.Close)
		fmt.Fprintln(s.stderr, "chatd-dev: redis-server not on PATH; using embedded miniredis")
		return "redis://" + m.Addr() + "/0", nil
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return "", err
	}
	s.closers = append(s.closers, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "redis://" + addr + "/0", nil
		}
	}
	return "", fmt.Errorf("redis-server did not start on %s", addr)
}

// freePort returns a TCP port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Close stops everything Run started, newest first.
func (s *stack) Close() {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}
