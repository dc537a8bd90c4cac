// Package server is Support Chat's composition root: New assembles the service from its
// configuration (MongoDB, Redis, tenants, OIDC, telemetry, the HTTP API), Loops are its
// background jobs, and Run serves it until its context ends. cmd/chatd and cmd/chatd-dev are
// thin shells around Run; tests assemble the service through New or Run too.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"go.mongodb.org/mongo-driver/v2/event"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/datarights"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
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
	// Stdout receives the JSON log lines when Logger is nil.
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
	// Now is the clock of the chat service, its caches, presence, the support clock and the
	// expiry of Idempotency-Key records (time.Now in production; tests move it to business
	// hours' edges). Tokens and limits are checked against the real time.
	Now func() time.Time
	// Webhooks tunes the webhook workers; zero values take the defaults (tests shorten them).
	Webhooks WebhookTuning
	// Logger is the service's logger; nil makes one that writes JSON lines to Stdout at
	// cfg.LogLevel. The binaries make theirs in main, where the process's globals are set.
	Logger *slog.Logger
	// NewID makes the ids of conversations, messages and Idempotency-Key records (12 random
	// bytes as hex in production).
	NewID func() string
	// Wrap wraps the stores the service reads and writes through (tests inject faults).
	Wrap StoreWrappers
	// MongoMonitor observes the MongoDB commands besides the service's own tracing and
	// metrics (tests count round trips).
	MongoMonitor *event.CommandMonitor
	// Tuning shortens what tests wait for; zero values take the production defaults.
	Tuning Tuning
}

// StoreWrappers wrap the stores of the service; nil ones leave a store as it is.
type StoreWrappers struct {
	// Log wraps the conversation log's store (entries and views).
	Log func(convlog.Store) convlog.Store
	// Lists wraps the store of lists and history.
	Lists func(chat.Store) chat.Store
	// Idempotency wraps the store of Idempotency-Key records.
	Idempotency func(idempotency.Store) idempotency.Store
	// Erasure wraps the records erasure deletes from.
	Erasure func(datarights.Records) datarights.Records
}

// wrapped returns wrap(s), or s when wrap is nil.
func wrapped[T any](wrap func(T) T, s T) T {
	if wrap == nil {
		return s
	}
	return wrap(s)
}

// Tuning is what tests change of the service's timings; zero values take the defaults.
type Tuning struct {
	// CacheTTL is how long a replica keeps a tenant's settings, reply statistics and support
	// block (the defaults of chat.Deps and httpapi.Deps).
	CacheTTL time.Duration
	// RelayGrace is how long the log's relay leaves an entry to its writer
	// (convlog.DefaultRelayGrace).
	RelayGrace time.Duration
	// Heartbeat, StreamRecheck and StreamMaxAge tune the event streams (httpapi.Deps); the
	// default max age is the verifier's key set max age.
	Heartbeat, StreamRecheck, StreamMaxAge time.Duration
	// EventBlock and EventBuffer tune the event hub (events.HubOptions).
	EventBlock  time.Duration
	EventBuffer int
	// RequestTimeout bounds one API request (httpapi.Deps).
	RequestTimeout time.Duration
	// RedisTimeout bounds dialling Redis and each read and write (redisconn.Options).
	RedisTimeout time.Duration
	// ErasureSettle is the pause between an erasure's two passes (datarights.DefaultSettle);
	// DataRightsInterval how often the eraser looks for work (a second).
	ErasureSettle, DataRightsInterval time.Duration
	// ErasureLease is how long a replica holds an erasure job without renewing it.
	ErasureLease time.Duration
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
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// ProcessLog is a process's log: JSON lines, written in batches while the service is busy
// (telemetry.LogWriter), at Level, which main sets once it has loaded the configuration.
type ProcessLog struct {
	*slog.Logger
	Level *slog.LevelVar
	lines *telemetry.LogWriter
}

// NewProcessLog returns a process log writing to w, at level info until Level is set.
func NewProcessLog(w io.Writer) *ProcessLog {
	l := &ProcessLog{Level: new(slog.LevelVar), lines: telemetry.NewLogWriter(w)}
	l.Logger = NewLogger(l.lines, l.Level)
	return l
}

// Close writes the lines still pending; later lines are written at once.
func (l *ProcessLog) Close() error { return l.lines.Close() }

// SetProcessGlobals sets what gin and go-redis keep per process rather than per value: gin's
// release mode, and go-redis's logger, which sends its own lines (a pool that cannot dial)
// through log at most every redisLogInterval instead of printing plain text. The binaries'
// main calls it once.
func SetProcessGlobals(log *slog.Logger) {
	gin.SetMode(gin.ReleaseMode)
	redisconn.SetLogger(redisconn.NewLogger(log, redisLogInterval, time.Now))
}

// Run assembles the service (New), runs its background loops and serves the API on cfg.Addr
// and the metrics on cfg.MetricsAddr until ctx ends, then shuts down in order: stop taking
// requests and finish in-flight ones (bounded by cfg.ShutdownTimeout), stop serving metrics,
// stop the loops, flush telemetry, close MongoDB and Redis. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, o Options) error {
	s, err := New(ctx, cfg, o)
	if err != nil {
		return err
	}
	defer s.Close()
	bg, stopLoops := context.WithCancel(ctx)
	loopsDone := s.start(bg, s.Loops())
	defer func() { stopLoops(); loopsDone() }()
	// Shutdown waits for in-flight requests; event streams end at once, cleanly, and their
	// clients reconnect to another replica with their Last-Event-ID.
	return serve(ctx, s.Logger, cfg, o, s.Handler, s.Metrics.Handler(), s.Hub.Close, func() int { return s.Tenants.Status().Loaded })
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
