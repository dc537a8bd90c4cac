// Package server assembles Support Chat from its configuration (MongoDB, Redis, tenants, OIDC,
// telemetry, the HTTP API) and runs it until its context ends. cmd/chatd and cmd/chatd-dev are
// thin shells around Run.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/cache"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/httpapi"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/limits"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/netguard"
	"github.com/supportchat/supportchat/internal/presence"
	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/webhook"
)

// ServiceName names the service in traces and logs.
const ServiceName = "support-chat"

// maxHeaderBytes bounds a request's headers (net/http answers 431 beyond it): room for an
// 8 KiB bearer token and ordinary headers, not the 1 MiB default.
const maxHeaderBytes = 32 << 10

// streamReaderPool bounds the connections of the event stream readers of one replica: the
// number of tenants with open streams on it at once.
const streamReaderPool = 1000

// redisLogInterval is how often at most go-redis's own lines reach the log while Redis is down.
const redisLogInterval = 10 * time.Second

// Options are what differs between the binaries that run the server.
type Options struct {
	// Version is the build's version, reported in logs, traces and metrics.
	Version string
	// Getenv reads the OTEL_* variables (os.Getenv in production).
	Getenv func(string) string
	// Stdout receives the JSON log lines.
	Stdout io.Writer
	// RewriteTenant adjusts every tenant loaded from files (chatd-dev points issuers at its
	// local development issuers); nil in production.
	RewriteTenant func(*tenant.Tenant)
	// Handler wraps the service's HTTP handler (chatd-dev serves its demo pages in front of
	// it); nil in production.
	Handler func(http.Handler) http.Handler
	// OnListen is called with the bound addresses once the servers accept connections.
	OnListen func(Addrs)
	// SpanExporter replaces the OTLP exporter (tests).
	SpanExporter sdktrace.SpanExporter
	// Signals reports SIGHUP to reload tenants; nil installs the process's own handler.
	Signals <-chan os.Signal
	// Now is the clock of the chat service, its caches, presence and the support clock
	// (time.Now in production; tests move it to business hours' edges). Tokens are checked
	// against the real time.
	Now func() time.Time
	// Webhooks tunes the webhook workers; zero values take the defaults (tests shorten them).
	Webhooks WebhookTuning
}

// WebhookTuning is what tests change of the webhook workers.
type WebhookTuning struct {
	// Off runs no webhook workers on this replica (a test's replica that only writes).
	Off bool
	// Schedule is the wait before each retry (webhook.DefaultSchedule).
	Schedule []time.Duration
	// Poll is how often the queue and the record are read (webhook.DefaultPoll).
	Poll time.Duration
	// LeaseTTL is how long an endpoint stays with a replica that stopped renewing it.
	LeaseTTL time.Duration
}

// Addrs are the addresses the service listens on.
type Addrs struct {
	// API serves the API, /healthz and /readyz (CHAT_ADDR).
	API net.Addr
	// Metrics serves /metrics and nothing else (CHAT_METRICS_ADDR).
	Metrics net.Addr
}

// NewLogger returns the service's JSON logger on w at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Run serves the API on cfg.Addr and the metrics on cfg.MetricsAddr until ctx ends, then shuts
// down in order: stop taking requests and finish in-flight ones (bounded by cfg.ShutdownTimeout),
// stop serving metrics, flush telemetry, close MongoDB and Redis. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, o Options) (err error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// Lines go out in batches while the service is busy (telemetry.LogWriter); the last
	// deferred call writes what is left.
	lines := telemetry.NewLogWriter(o.Stdout)
	defer func() { _ = lines.Close() }()
	log := NewLogger(lines, cfg.LogLevel)
	log.InfoContext(ctx, "starting", "version", o.Version, "config", cfg.String())
	// go-redis prints its own lines (a pool that cannot dial) as plain text unless given a
	// logger; it takes one per process, not per client.
	redisconn.SetLogger(redisconn.NewLogger(log, redisLogInterval, time.Now))

	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: ServiceName, Version: o.Version, Getenv: o.Getenv, Exporter: o.SpanExporter})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := tel.Shutdown(sctx); serr != nil {
			log.Warn("telemetry shutdown", "error", serr)
		}
	}()
	tp := tel.TracerProvider()
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: cfg.MetricsTenantLabel, Version: o.Version})

	// Tenants whose files changed have their support blocks announced by the background loop.
	changed := newTenantChanges()
	tenants := tenant.NewRegistry(cfg.TenantsDir, tenant.Options{
		Logger:  log,
		Rewrite: o.RewriteTenant,
		OnReload: func(r tenant.ReloadResult) {
			metrics.TenantReload(r.Err == nil && len(r.Invalid) == 0, r.Loaded, len(r.Invalid))
			metrics.TenantsChanged(r.Added, r.Removed)
			changed.add(r.Changed, r.Removed)
		},
	})
	if res := tenants.Reload(); res.Err != nil {
		log.ErrorContext(ctx, "tenants not loaded", "dir", cfg.TenantsDir, "error", res.Err)
	}

	db, err := mongodb.Open(ctx, cfg.MongoURI, cfg.MongoDatabase, mongodb.Options{
		Timeout: cfg.MongoTimeout,
		Monitor: telemetry.NewMongoMonitor(tp, metrics),
		Logger:  log,
	})
	if err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = db.Close(cctx)
	}()

	rdb, streamRDB, err := openRedis(cfg, tel, metrics)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }() // closing on the way out: nothing to do about a failure
	defer func() { _ = streamRDB.Close() }()
	bus := events.NewBus(rdb, httpapi.RenderEvent, events.BusOptions{Logger: log, Observer: metrics})
	hub := events.NewHub(events.NewBus(streamRDB, httpapi.RenderEvent, events.BusOptions{Logger: log}), events.HubOptions{Logger: log})
	localBytes := cfg.CacheLocalBytes
	if localBytes == 0 {
		localBytes = -1 // CHAT_CACHE_LOCAL_BYTES=0: no in-process layer
	}
	lists := cache.New(rdb, cache.Options{Observer: metrics, LocalBytes: localBytes, Now: o.Now})

	store := db.Store()
	lease := redisconn.NewLease(rdb)
	convs := convlog.New(convlog.Deps{
		Store:    store,
		Events:   bus,
		Caches:   lists,
		Logger:   log,
		Observer: metrics,
		Lease:    lease,
		Now:      o.Now,
	})
	team := presence.New(rdb, o.Now)
	svc := chat.NewService(chat.Deps{
		Log:          convs,
		Store:        store,
		Settings:     store,
		Admins:       store,
		Presence:     team,
		SupportClock: team,
		SupportLog:   store,
		Events:       bus,
		Invalidator:  lists,
		Tenants:      tenants,
		Now:          o.Now,
		NewID:        newID,
		PresenceTTL:  cfg.PresenceTTL,
		Logger:       log,
		Caches:       metrics,
	})
	verifier := auth.New(auth.Options{
		// Every connection to an issuer is checked as it is made: public addresses only, the
		// operator's allowed networks, and loopback for an issuer configured on loopback.
		HTTPClient: &http.Client{Transport: otelhttp.NewTransport(netguard.New(cfg.IssuerAllowedNetworks).Transport(), otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(tel.Propagator()))},
		Timeout:    cfg.OIDCTimeout,
		Logger:     log,
		Observer:   metrics,
	})
	keeper := idempotency.NewKeeper(store, cfg.IdempotencyTTL, o.Now, func() string { return newID() + newID() })
	// Limits count in Redis across replicas; each replica limits on its own while Redis is down.
	// The limiter's lease refresher lives until Close, not until ctx ends.
	limiter := limits.New(rdb, limits.Config{ //nolint:contextcheck // see above
		RequestsPerMinute:       cfg.Limits.RequestsPerMinute,
		WritesPerMinute:         cfg.Limits.WritesPerMinute,
		EventStreams:            cfg.Limits.EventStreams,
		TenantRequestsPerSecond: cfg.Limits.TenantRequestsPerSecond,
		TenantEventStreams:      cfg.Limits.TenantEventStreams,
		ReplicaEventStreams:     cfg.MaxEventStreams,
	}, limits.Options{Logger: log, Observer: metrics})
	defer limiter.Close()

	// Handlers and middleware run under each request's context, not under ctx.
	handler := httpapi.New(httpapi.Deps{ //nolint:contextcheck // see above
		Chat:          svc,
		Tenants:       tenants,
		Authenticator: verifier,
		Idempotency:   keeper,
		Ready:         readiness(db, tenants, rdb, metrics),
		Observer:      metrics,
		Middleware:    tracing(tel), //nolint:contextcheck // request contexts, as above
		Cache:         lists,
		Events:        hub,
		Streams:       metrics,
		StreamMaxAge:  verifier.KeysMaxAge(),
		Logger:        log,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		Limits:        limiter,
		Now:           o.Now,
		Webhooks:      webhook.NewService(store, webhook.Targets{Allowed: cfg.WebhookAllowedNetworks}, o.Now),
	})
	hooks := webhook.NewWorkers(webhook.Options{
		Store:   store,
		Sources: []webhook.Source{convs, store.SupportChanges()},
		Render: func(e chat.Event) (json.RawMessage, error) {
			p, err := httpapi.RenderEvent(e)
			return p.Admin, err
		},
		Lease:    lease,
		Observer: metrics,
		Logger:   log,
		Now:      o.Now,
		// Every connection to a receiver is checked as it is made (netguard).
		Allowed: cfg.WebhookAllowedNetworks,
		// Traced, but no trace context goes to a receiver: it is not ours.
		Transport: func(rt http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()))
		},
		Timeout:  cfg.WebhookTimeout,
		Schedule: o.Webhooks.Schedule,
		Poll:     o.Webhooks.Poll,
		LeaseTTL: o.Webhooks.LeaseTTL,
	})

	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	done := make(chan struct{})
	go func() {
		defer close(done)
		background(bg, log, cfg, db, tenants, changed, svc, convs, bus, o.Signals)
	}()
	defer func() { stopBackground(); <-done }()
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		if !o.Webhooks.Off {
			hooks.Run(bg)
		}
	}()
	defer func() { stopBackground(); <-hooksDone }()

	// Shutdown waits for in-flight requests; event streams end at once, cleanly, and their
	// clients reconnect to another replica with their Last-Event-ID.
	if o.Handler != nil {
		handler = o.Handler(handler)
	}
	return serve(ctx, log, cfg, o, handler, metrics.Handler(), hub.Close, func() int { return tenants.Status().Loaded })
}

// serve runs the API server on cfg.Addr and the metrics server on cfg.MetricsAddr until ctx
// ends, then shuts them down: the API stops accepting, calls onShutdown (which ends the event
// streams), and waits for in-flight requests up to cfg.ShutdownTimeout; the metrics server
// stops last, so Prometheus can scrape a replica while it drains.
func serve(ctx context.Context, log *slog.Logger, cfg config.Config, o Options, handler, metrics http.Handler, onShutdown func(), loaded func() int) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("CHAT_ADDR: %w", err)
	}
	mln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		_ = ln.Close() // never served: nothing to do about a failure
		return fmt.Errorf("CHAT_METRICS_ADDR: %w", err)
	}
	srv := httpServer(ctx, log, handler)
	srv.RegisterOnShutdown(onShutdown)
	// The metrics listener serves GET /metrics and answers 404 to everything else.
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	msrv := httpServer(ctx, log, mux)

	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { serveErr <- msrv.Serve(mln) }()
	addrs := Addrs{API: ln.Addr(), Metrics: mln.Addr()}
	log.InfoContext(ctx, "listening", "addr", addrs.API.String(), "metrics_addr", addrs.Metrics.String(), "tenants", loaded())
	if o.OnListen != nil {
		o.OnListen(addrs)
	}

	select {
	case err := <-serveErr:
		// One server lost its listener; the other must not outlive Run.
		_, _ = srv.Close(), msrv.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := errors.Join(srv.Shutdown(sctx), msrv.Shutdown(sctx)); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// httpServer returns a server of handler with the service's bounds on headers, reads, writes
// and idle connections; its requests' contexts outlive ctx, so shutdown lets them finish.
func httpServer(ctx context.Context, log *slog.Logger, handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // event streams clear it for themselves
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// openRedis returns the Redis client of the service, measured and, with tracing on, traced
// (with tracing off the hook would only make spans nobody records), and a second one
// for the event streams' blocking reads, one connection per tenant with open streams on this
// replica: a pool of their own, so they never starve ordinary commands. Neither connects yet:
// Redis may be down at start-up, and the service works without it.
func openRedis(cfg config.Config, tel *telemetry.Telemetry, metrics *telemetry.Metrics) (rdb, streamRDB redis.UniversalClient, err error) {
	rdb, err = redisconn.Open(cfg.RedisURL, redisconn.Options{Mode: cfg.RedisMode})
	if err != nil {
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	if tel.Enabled() {
		if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tel.TracerProvider()), redisotel.WithDBStatement(false)); err != nil {
			_ = rdb.Close()
			return nil, nil, fmt.Errorf("redis tracing: %w", err)
		}
	}
	rdb.AddHook(metrics.RedisHook())
	streamRDB, err = redisconn.Open(cfg.RedisURL, redisconn.Options{Mode: cfg.RedisMode, PoolSize: streamReaderPool})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	return rdb, streamRDB, nil
}

// newID returns 12 random bytes as 24 hex digits, the id format of conversations and messages.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
