package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/localdeps"
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
		uri, err := s.startFerretDB() //nolint:contextcheck // FerretDB runs until the stack closes, after ctx ended
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

// startFerretDB runs FerretDB in process on SQLite files under dataDir; its warnings and
// errors go to stderr.
func (s *stack) startFerretDB() (string, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return "", err
	}
	f, err := localdeps.StartFerretDB(localdeps.FerretDBOptions{SQLiteDir: dir, Log: s.stderr, LogLevel: slog.LevelWarn})
	if err != nil {
		return "", err
	}
	s.closers = append(s.closers, f.Close)
	return f.URI(), nil
}

// startRedis runs a private redis-server on a free port, or embedded miniredis without one.
func (s *stack) startRedis() (string, error) {
	r, err := localdeps.StartRedis()
	if errors.Is(err, localdeps.ErrNoRedisServer) {
		m, err := miniredis.Run()
		if err != nil {
			return "", err
		}
		s.closers = append(s.closers, m.Close)
		fmt.Fprintln(s.stderr, "chatd-dev: redis-server not on PATH; using embedded miniredis")
		return "redis://" + m.Addr() + "/0", nil
	}
	if err != nil {
		return "", err
	}
	s.closers = append(s.closers, r.Stop)
	return r.URL(), nil
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
