package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/cache"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/datarights"
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

// Service is Support Chat assembled from its configuration: every part wired to the others,
// nothing running yet. Run serves it; a test may take its Handler and start only the loops it
// needs. Its exported parts are there for tests to look at, never to replace.
type Service struct {
	// Handler is the API, with Options.Handler around it.
	Handler http.Handler
	// Logger is the service's logger.
	Logger *slog.Logger
	// Metrics are the service's Prometheus metrics.
	Metrics *telemetry.Metrics
	// DB is the record; Store its collections.
	DB    *mongodb.DB
	Store *mongodb.Store
	// Redis is the client of the cache, presence, limits and the event bus.
	Redis redis.UniversalClient
	// Tenants are the loaded tenant files.
	Tenants *tenant.Registry
	// Chat is the chat service behind the API, Log the conversation log it writes through.
	Chat *chat.Service
	Log  *convlog.Log
	// Hub serves the event streams of this replica.
	Hub *events.Hub
	// Limiter applies the limits.
	Limiter *limits.Limiter
	// Eraser erases customers; Retention erases the conversations tenants keep no longer.
	Eraser    *datarights.Eraser
	Retention *datarights.Sweeper
	// Audit is the tenants' audit trail of data rights work.
	Audit *audit.Trail

	cfg     config.Config
	signals <-chan os.Signal
	bus     *events.Bus
	changed *tenantChanges
	hooks   *webhook.Workers
	tel     *telemetry.Telemetry
	// indexed is set once the indexes are built ("indexes" loop).
	indexed atomic.Bool
	// closers run in reverse order on Close.
	closers []func()
}

// New assembles the service of cfg and o: the one place where its parts are made and wired. It
// connects to nothing that may be down (MongoDB and Redis are dialled lazily), so it fails only
// on a bad configuration. Close releases what it made.
func New(ctx context.Context, cfg config.Config, o Options) (_ *Service, err error) {
	o = o.withDefaults()
	s := &Service{cfg: cfg, signals: o.Signals, Logger: o.Logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.observe(ctx, o); err != nil {
		return nil, err
	}
	if err := s.connect(ctx, o); err != nil {
		return nil, err
	}
	lists := cache.New(s.Redis, cache.Options{Observer: s.Metrics, LocalBytes: localBytes(cfg.CacheLocalBytes), Now: o.Now})
	lease := redisconn.NewLease(s.Redis)
	s.assembleChat(o, lists, lease)
	s.newLimiter() //nolint:contextcheck // the limiter's lease refresher lives until Close
	s.assembleDataRights(o, lists, lease)
	s.assembleAPI(o, lists) //nolint:contextcheck // handlers run under their requests' contexts
	if !o.Webhooks.Off {
		s.hooks = s.newWebhookWorkers(o, lease)
	}
	return s, nil
}

// observe makes the service's logger (unless Options.Logger is set), tracing and metrics.
func (s *Service) observe(ctx context.Context, o Options) error {
	if s.Logger == nil {
		logs := NewProcessLog(o.Stdout)
		logs.Level.Set(s.cfg.LogLevel)
		s.onClose(func() { _ = logs.Close() })
		s.Logger = logs.Logger
	}
	s.Logger.InfoContext(ctx, "starting", "version", o.Version, "config", s.cfg.String())
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: ServiceName, Version: o.Version, Getenv: o.Getenv, Exporter: o.SpanExporter})
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	s.tel = tel
	s.onClose(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := tel.Shutdown(sctx); serr != nil {
			s.Logger.Warn("telemetry shutdown", "error", serr)
		}
	})
	s.Metrics = telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: s.cfg.MetricsTenantLabel, Version: o.Version})
	return nil
}

// connect loads the tenants and opens the clients of MongoDB and Redis, and the event bus and
// hub over Redis.
func (s *Service) connect(ctx context.Context, o Options) error {
	cfg, log, metrics := s.cfg, s.Logger, s.Metrics
	// Tenants whose files changed have their support blocks announced by the support clock.
	s.changed = newTenantChanges()
	s.Tenants = tenant.NewRegistry(cfg.TenantsDir, tenant.Options{
		Logger:  log,
		Rewrite: o.RewriteTenant,
		OnReload: func(r tenant.ReloadResult) {
			metrics.TenantReload(r.Err == nil && len(r.Invalid) == 0, r.Loaded, len(r.Invalid))
			metrics.TenantsChanged(r.Added, r.Removed)
			s.changed.add(r.Changed, r.Removed)
		},
	})
	if res := s.Tenants.Reload(); res.Err != nil {
		log.ErrorContext(ctx, "tenants not loaded", "dir", cfg.TenantsDir, "error", res.Err)
	}

	db, err := mongodb.Open(ctx, cfg.MongoURI, cfg.MongoDatabase, mongodb.Options{
		Timeout: cfg.MongoTimeout,
		Monitor: joinMonitors(telemetry.NewMongoMonitor(s.tel.TracerProvider(), metrics), o.MongoMonitor),
		Logger:  log,
		Now:     o.Now,
	})
	if err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	s.DB, s.Store = db, db.Store()
	s.onClose(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = db.Close(cctx)
	})

	rdb, streamRDB, err := openRedis(cfg, o.Tuning.RedisTimeout, s.tel, metrics)
	if err != nil {
		return err
	}
	s.Redis = rdb
	s.onClose(func() { _ = rdb.Close() }) // closing on the way out: nothing to do about a failure
	s.onClose(func() { _ = streamRDB.Close() })
	s.bus = events.NewBus(rdb, httpapi.RenderEvent, events.BusOptions{Logger: log, Observer: metrics})
	s.Hub = events.NewHub(events.NewBus(streamRDB, httpapi.RenderEvent, events.BusOptions{Logger: log}), events.HubOptions{Logger: log, Block: o.Tuning.EventBlock, Buffer: o.Tuning.EventBuffer})
	s.onClose(s.Hub.Close)
	return nil
}

// localBytes is the cache's in-process budget of CHAT_CACHE_LOCAL_BYTES, where 0 means none.
func localBytes(configured int64) int64 {
	if configured == 0 {
		return -1
	}
	return configured
}

// assembleChat makes the conversation log and the chat service over it.
func (s *Service) assembleChat(o Options, lists *cache.Cache, lease *redisconn.Lease) {
	s.Log = convlog.New(convlog.Deps{
		Store:      wrapped[convlog.Store](o.Wrap.Log, s.Store),
		Events:     s.bus,
		Caches:     lists,
		Logger:     s.Logger,
		Observer:   s.Metrics,
		Lease:      lease,
		Now:        o.Now,
		RelayGrace: o.Tuning.RelayGrace,
	})
	team := presence.New(s.Redis, o.Now)
	s.Audit = audit.New(s.Store, s.cfg.AuditRetention, o.Now)
	s.Chat = chat.NewService(chat.Deps{
		Log:          s.Log,
		Store:        wrapped[chat.Store](o.Wrap.Lists, s.Store),
		Settings:     s.Store,
		Admins:       s.Store,
		Presence:     team,
		SupportClock: team,
		SupportLog:   s.Store,
		Events:       s.bus,
		Invalidator:  lists,
		Tenants:      s.Tenants,
		Now:          o.Now,
		NewID:        o.NewID,
		PresenceTTL:  s.cfg.PresenceTTL,
		SettingsTTL:  o.Tuning.CacheTTL,
		StatsTTL:     o.Tuning.CacheTTL,
		Logger:       s.Logger,
		Caches:       s.Metrics,
	})
}

// newLimiter makes the limiter. Limits count in Redis across replicas; each replica limits on
// its own while Redis is down. The limiter's lease refresher lives until Close.
func (s *Service) newLimiter() {
	cfg := s.cfg
	s.Limiter = limits.New(s.Redis, limits.Config{
		RequestsPerMinute:       cfg.Limits.RequestsPerMinute,
		WritesPerMinute:         cfg.Limits.WritesPerMinute,
		EventStreams:            cfg.Limits.EventStreams,
		TenantRequestsPerSecond: cfg.Limits.TenantRequestsPerSecond,
		TenantEventStreams:      cfg.Limits.TenantEventStreams,
		ReplicaEventStreams:     cfg.MaxEventStreams,
	}, limits.Options{Logger: s.Logger, Observer: s.Metrics}) // real time: limits count real requests
	s.onClose(s.Limiter.Close)
}

// assembleDataRights makes the eraser of customers, which erases from MongoDB, the event
// streams, the cached lists and the limits, and the retention sweeper.
func (s *Service) assembleDataRights(o Options, lists *cache.Cache, lease *redisconn.Lease) {
	s.Eraser = datarights.NewEraser(datarights.EraserDeps{
		Jobs:     s.Store,
		Records:  wrapped[datarights.Records](o.Wrap.Erasure, s.Store),
		Events:   s.bus,
		Caches:   lists,
		Limits:   s.Limiter,
		Lease:    lease,
		Audit:    s.Audit,
		Observer: s.Metrics,
		Now:      o.Now,
		NewID:    o.NewID,
		Logger:   s.Logger,
		Settle:   o.Tuning.ErasureSettle,
		Interval: o.Tuning.DataRightsInterval,
		LeaseTTL: o.Tuning.ErasureLease,
	})
	s.Retention = datarights.NewSweeper(datarights.SweeperDeps{
		Records:  s.Store,
		Events:   s.bus,
		Caches:   lists,
		Lease:    lease,
		Tenants:  s.Tenants.All,
		Policy:   s.Chat,
		Audit:    s.Audit,
		Observer: s.Metrics,
		Now:      o.Now,
		Logger:   s.Logger,
	})
}

// assembleAPI makes the token verifier, the Idempotency-Key keeper, the limiter and the HTTP
// API over the chat service.
func (s *Service) assembleAPI(o Options, lists *cache.Cache) {
	cfg, log, metrics, tp := s.cfg, s.Logger, s.Metrics, s.tel.TracerProvider()
	verifier := auth.New(auth.Options{
		// Every connection to an issuer is checked as it is made: public addresses only, the
		// operator's allowed networks, and loopback for an issuer configured on loopback.
		HTTPClient: &http.Client{Transport: otelhttp.NewTransport(netguard.New(cfg.IssuerAllowedNetworks).Transport(), otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(s.tel.Propagator()))},
		Timeout:    cfg.OIDCTimeout,
		Logger:     log,
		Observer:   metrics,
	})
	keeper := idempotency.NewKeeper(wrapped[idempotency.Store](o.Wrap.Idempotency, s.Store), cfg.IdempotencyTTL, o.Now, func() string { return o.NewID() + o.NewID() })
	streamMaxAge := o.Tuning.StreamMaxAge
	if streamMaxAge <= 0 {
		streamMaxAge = verifier.KeysMaxAge()
	}
	// Handlers and middleware run under each request's context.
	s.Handler = httpapi.New(httpapi.Deps{
		Chat:           s.Chat,
		Tenants:        s.Tenants,
		Authenticator:  verifier,
		Idempotency:    keeper,
		Ready:          readiness(s.DB, s.Tenants, s.Redis, metrics),
		Observer:       metrics,
		Middleware:     tracing(s.tel),
		Cache:          lists,
		SupportTTL:     o.Tuning.CacheTTL,
		Events:         s.Hub,
		Streams:        metrics,
		Heartbeat:      o.Tuning.Heartbeat,
		StreamRecheck:  o.Tuning.StreamRecheck,
		StreamMaxAge:   streamMaxAge,
		Logger:         log,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		RequestTimeout: o.Tuning.RequestTimeout,
		Limits:         s.Limiter,
		Now:            o.Now,
		Webhooks:       webhook.NewService(s.Store, webhook.Targets{Allowed: cfg.WebhookAllowedNetworks}, o.Now),
		Erasures:       s.Eraser,
		Audit:          s.Audit,
		Exporter:       datarights.NewExporter(s.Store, s.Audit, o.Now),
	})
	if o.Handler != nil {
		s.Handler = o.Handler(s.Handler)
	}
}

// newWebhookWorkers makes the workers that deliver the record's events to webhook endpoints.
func (s *Service) newWebhookWorkers(o Options, lease *redisconn.Lease) *webhook.Workers {
	tp := s.tel.TracerProvider()
	return webhook.NewWorkers(webhook.Options{
		Store:   s.Store,
		Sources: []webhook.Source{s.Log, s.Store.SupportChanges()},
		Render: func(e chat.Event) (json.RawMessage, error) {
			p, err := httpapi.RenderEvent(e)
			return p.Admin, err
		},
		Lease:    lease,
		Observer: s.Metrics,
		Logger:   s.Logger,
		Now:      o.Now,
		// Every connection to a receiver is checked as it is made (netguard).
		Allowed: s.cfg.WebhookAllowedNetworks,
		// Traced, but no trace context goes to a receiver: it is not ours.
		Transport: func(rt http.RoundTripper) http.RoundTripper {
			return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()))
		},
		Timeout:  s.cfg.WebhookTimeout,
		Schedule: o.Webhooks.Schedule,
		Poll:     o.Webhooks.Poll,
		LeaseTTL: o.Webhooks.LeaseTTL,
	})
}

// Close releases what New made, last made first: the limiter, the event streams, the Redis
// and MongoDB clients, telemetry (flushed) and the log writer. Run calls it; a test that
// called New calls it itself.
func (s *Service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *Service) onClose(f func()) { s.closers = append(s.closers, f) }

// withDefaults returns o with the production values where o leaves them out.
func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = newID
	}
	return o
}

// joinMonitors returns a monitor telling every one of ms of each event; nil ones are left out.
func joinMonitors(ms ...*event.CommandMonitor) *event.CommandMonitor {
	var live []*event.CommandMonitor
	for _, m := range ms {
		if m != nil {
			live = append(live, m)
		}
	}
	if len(live) == 1 {
		return live[0]
	}
	return &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			for _, m := range live {
				if m.Started != nil {
					m.Started(ctx, e)
				}
			}
		},
		Succeeded: func(ctx context.Context, e *event.CommandSucceededEvent) {
			for _, m := range live {
				if m.Succeeded != nil {
					m.Succeeded(ctx, e)
				}
			}
		},
		Failed: func(ctx context.Context, e *event.CommandFailedEvent) {
			for _, m := range live {
				if m.Failed != nil {
					m.Failed(ctx, e)
				}
			}
		},
	}
}

// openRedis returns the Redis client of the service, measured and, with tracing on, traced
// (with tracing off the hook would only make spans nobody records), and a second one
// for the event streams' blocking reads, one connection per tenant with open streams on this
// replica: a pool of their own, so they never starve ordinary commands. Neither connects yet:
// Redis may be down at start-up, and the service works without it. timeout bounds dialling
// and each read and write (0: redisconn's default).
func openRedis(cfg config.Config, timeout time.Duration, tel *telemetry.Telemetry, metrics *telemetry.Metrics) (rdb, streamRDB redis.UniversalClient, err error) {
	rdb, err = redisconn.Open(cfg.RedisURL, redisconn.Options{Mode: cfg.RedisMode, Timeout: timeout})
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
	streamRDB, err = redisconn.Open(cfg.RedisURL, redisconn.Options{Mode: cfg.RedisMode, PoolSize: streamReaderPool, Timeout: timeout})
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
