// Package server assembles Support Chat from its configuration (MongoDB, Redis, tenants, OIDC,
// telemetry, the HTTP API) and runs it until its context ends. cmd/chatd and cmd/chatd-dev are
// thin shells around Run.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/httpapi"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/presence"
	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
)

// ServiceName names the service in traces and logs.
const ServiceName = "support-chat"

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
	// OnListen is called with the bound address once the server accepts connections.
	OnListen func(addr net.Addr)
	// SpanExporter replaces the OTLP exporter (tests).
	SpanExporter sdktrace.SpanExporter
	// Signals reports SIGHUP to reload tenants; nil installs the process's own handler.
	Signals <-chan os.Signal
}

// NewLogger returns the service's JSON logger on w at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Run serves the API on cfg.Addr until ctx ends, then shuts down in order: stop taking requests
// and finish in-flight ones (bounded by cfg.ShutdownTimeout), flush telemetry, close MongoDB and
// Redis. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, o Options) (err error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	log := NewLogger(o.Stdout, cfg.LogLevel)
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

	tenants := tenant.NewRegistry(cfg.TenantsDir, tenant.Options{
		Logger:  log,
		Rewrite: o.RewriteTenant,
		OnReload: func(r tenant.ReloadResult) {
			metrics.TenantReload(r.Err == nil && len(r.Invalid) == 0, r.Loaded, len(r.Invalid))
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

	rdb, err := redisconn.Open(cfg.RedisURL, redisconn.Options{Mode: cfg.RedisMode})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer rdb.Close()
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp), redisotel.WithDBStatement(false)); err != nil {
		return fmt.Errorf("redis tracing: %w", err)
	}
	rdb.AddHook(metrics.RedisHook())

	store := db.Store()
	svc := chat.NewService(chat.Deps{
		Conversations: store,
		Settings:      store,
		Admins:        store,
		Presence:      presence.New(rdb, time.Now),
		Events:        events.NewPublisher(rdb, log, metrics),
		Tenants:       tenants,
		Now:           time.Now,
		NewID:         newID,
		PresenceTTL:   cfg.PresenceTTL,
		Logger:        log,
		Caches:        metrics,
	})
	verifier := auth.New(auth.Options{
		HTTPClient: &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(tel.Propagator()))},
		Timeout:    cfg.OIDCTimeout,
		Logger:     log,
		Observer:   metrics,
	})
	keeper := idempotency.NewKeeper(store, cfg.IdempotencyTTL, time.Now, func() string { return newID() + newID() })

	handler := httpapi.New(httpapi.Deps{
		Chat:          svc,
		Tenants:       tenants,
		Authenticator: verifier,
		Idempotency:   keeper,
		Ready: []httpapi.ReadyCheck{
			{Name: "mongodb", Critical: true, Check: func(ctx context.Context) error {
				if db.Ping(ctx) != nil {
					return errors.New("mongodb unreachable")
				}
				return nil
			}},
			{Name: "tenants", Critical: true, Check: func(context.Context) error {
				if st := tenants.Status(); !st.Ready {
					return fmt.Errorf("no tenant loaded (%d invalid files)", st.Invalid)
				}
				return nil
			}},
			{Name: "redis", Critical: false, Check: func(ctx context.Context) error {
				if rdb.Ping(ctx).Err() != nil {
					return errors.New("redis unreachable: presence reads offline, events are not delivered")
				}
				return nil
			}},
		},
		Metrics:  metrics.Handler(),
		Observer: metrics,
		Middleware: []gin.HandlerFunc{
			otelgin.Middleware(ServiceName, otelgin.WithTracerProvider(tp), otelgin.WithPropagators(tel.Propagator())),
			tenantSpanAttribute,
		},
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	done := make(chan struct{})
	go func() {
		defer close(done)
		background(bg, log, cfg, db, tenants, svc, o.Signals)
	}()
	defer func() { stopBackground(); <-done }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.InfoContext(ctx, "listening", "addr", ln.Addr().String(), "tenants", tenants.Status().Loaded)
	if o.OnListen != nil {
		o.OnListen(ln.Addr())
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// Sweeping expired idempotency records on servers without TTL indexes: how often, and how
// many records one sweep deletes at most.
const (
	idempotencySweepInterval = time.Minute
	idempotencySweepBatch    = 1000
)

// background runs the service's housekeeping until ctx ends: index builds until they succeed,
// the tenant file watch, SIGHUP reloads, the presence sweep, and the sweep of expired
// idempotency records where the server has no TTL indexes.
func background(ctx context.Context, log *slog.Logger, cfg config.Config, db *mongodb.DB, tenants *tenant.Registry, svc *chat.Service, signals <-chan os.Signal) {
	if signals == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		signals = ch
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := tenants.Watch(ctx); err != nil {
			log.Error("tenant watch stopped; SIGHUP still reloads", "error", err)
		}
	}()
	defer func() { <-watchDone }()

	indexed := ensureIndexes(ctx, log, db)
	sweep := time.NewTicker(sweepInterval(cfg.PresenceTTL))
	defer sweep.Stop()
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	expired := time.NewTicker(idempotencySweepInterval)
	defer expired.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
			res := tenants.Reload()
			log.Info("tenants reloaded on SIGHUP", "loaded", res.Loaded, "invalid", len(res.Invalid))
		case <-retry.C:
			if !indexed {
				indexed = ensureIndexes(ctx, log, db)
			}
		case <-expired.C:
			if !indexed || !db.NeedsSweep() {
				continue
			}
			if n, err := db.Store().SweepIdempotency(ctx, time.Now(), idempotencySweepBatch); err != nil {
				log.Warn("sweeping expired idempotency records", "error", err)
			} else if n > 0 {
				log.Debug("expired idempotency records deleted", "count", n)
			}
		case <-sweep.C:
			if n, err := svc.SweepPresence(ctx); err != nil {
				log.Debug("presence sweep", "error", err)
			} else if n > 0 {
				log.Info("admins lapsed offline", "count", n)
			}
		}
	}
}

// ensureIndexes builds the MongoDB indexes, reporting whether it succeeded; the service keeps
// running (and unready answers come from /readyz) while MongoDB is unreachable.
func ensureIndexes(ctx context.Context, log *slog.Logger, db *mongodb.DB) bool {
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.EnsureIndexes(ictx); err != nil {
		log.Warn("mongodb indexes not ensured yet; retrying", "error", err)
		return false
	}
	return true
}

// sweepInterval is how often lapsed admins are looked for: a fraction of the presence TTL.
func sweepInterval(ttl time.Duration) time.Duration {
	if d := ttl / 6; d > time.Second {
		return d
	}
	return time.Second
}

// tenantSpanAttribute adds the tenant id to the request's server span once the tenant is known.
func tenantSpanAttribute(c *gin.Context) {
	c.Next()
	if t, err := tenant.FromContext(c.Request.Context()); err == nil {
		trace.SpanFromContext(c.Request.Context()).SetAttributes(attribute.String("chat.tenant.id", t.ID))
	}
}

// newID returns 12 random bytes as 24 hex digits, the id format of conversations and messages.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
