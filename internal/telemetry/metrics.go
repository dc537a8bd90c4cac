package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/webhook"
)

// RouteUnmatched is the route label of requests that matched no route. The raw path is never a
// label value: clients choose it, so it would let them create series without bound.
const RouteUnmatched = "unmatched"

// Label values of outcome, status_class and result.
const (
	outcomeOK    = "ok"
	outcomeError = "error"
	class5xx     = "5xx"
	resultHit    = "hit"
	resultMiss   = "miss"
)

// ExemplarTraceID is the exemplar label that carries the trace id of an observation on the
// latency histograms; Grafana's exemplar links to a trace data source name it.
const ExemplarTraceID = "trace_id"

// MetricsOptions configures NewMetrics.
type MetricsOptions struct {
	// TenantLabel registers chat_tenant_http_requests_total{tenant,status_class} and
	// chat_tenant_http_request_duration_seconds{tenant,method,route}
	// (CHAT_METRICS_TENANT_LABEL, default true). Their tenant values are the ids of the tenants
	// the registry resolved from the operator's tenant files, never a value a client sends: at
	// most 5 counter series per tenant file, and one histogram (12 buckets) per route a tenant
	// uses. With hundreds of tenants turn it off and neither family is registered at all (the
	// global chat_http_requests_total and chat_http_request_duration_seconds still count every
	// request). chat_jwks_fetches_total keeps its tenant label either way: 2 series per tenant
	// file, created when the tenant is loaded, and its alert is per tenant.
	TenantLabel bool
	// Version is the version label of chat_build_info.
	Version string
}

// Metrics holds the service's Prometheus metrics on a private registry. Its methods implement
// the observer interfaces of the packages that report to it. Create it with NewMetrics.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	tenantRequests *prometheus.CounterVec   // nil without MetricsOptions.TenantLabel
	tenantDuration *prometheus.HistogramVec // nil without MetricsOptions.TenantLabel
	mongoDuration  *prometheus.HistogramVec
	redisDuration  *prometheus.HistogramVec
	cacheRequests  *prometheus.CounterVec
	jwksFetches    *prometheus.CounterVec
	sseOpen        prometheus.Gauge
	sseOpened      prometheus.Counter
	eventsSent     *prometheus.CounterVec
	eventsDeliv    *prometheus.CounterVec
	relayed        *prometheus.CounterVec
	tenantReloads  *prometheus.CounterVec
	tenantsLoaded  prometheus.Gauge
	tenantsInvalid prometheus.Gauge
	rateLimited    *prometheus.CounterVec
	readyChecks    *prometheus.CounterVec
	webhookTries   *prometheus.CounterVec
	webhookTime    *prometheus.HistogramVec
	webhookDue     prometheus.Gauge
	webhookLate    prometheus.Gauge
	webhookFanned  prometheus.Counter
	erasedConvs    *prometheus.CounterVec
	erasedMsgs     *prometheus.CounterVec
	overdue        prometheus.Gauge
}

// Buckets of the latency histograms, in seconds.
var (
	httpBuckets    = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	backendBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	// webhookBuckets reach CHAT_WEBHOOK_TIMEOUT's bound of 30 s: a receiver that times out
	// lands in the bucket of the timeout, not past the last one.
	webhookBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}
)

// Outcomes of a webhook delivery attempt (webhook.Observer): the receiver took it, it will be
// tried again, or it was the last attempt and the delivery is dead.
var webhookOutcomes = []string{"delivered", "retry", "dead"}

// NewMetrics registers the service's metrics, the Go runtime and process collectors and
// chat_build_info on a new private registry.
func NewMetrics(o MetricsOptions) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_http_requests_total",
			Help: "HTTP requests served, by method, route template (or \"unmatched\") and status class.",
		}, []string{"method", "route", "status_class"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by method and route template; SSE streams last as long as the client stays.",
			Buckets: httpBuckets,
		}, []string{"method", "route"}),
		mongoDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_mongodb_command_duration_seconds",
			Help:    "MongoDB command round trips, by command, collection (\"none\" for database commands) and outcome (ok or error).",
			Buckets: backendBuckets,
		}, []string{"operation", "collection", "outcome"}),
		redisDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_redis_command_duration_seconds",
			Help:    "Redis command round trips, by command (\"pipeline\" for a pipeline) and outcome (ok or error; a missing key is ok).",
			Buckets: backendBuckets,
		}, []string{"command", "outcome"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_cache_requests_total",
			Help: "Cache look-ups, by cache and result (hit or miss).",
		}, []string{"cache", "result"}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_jwks_fetches_total",
			Help: "OIDC discovery and JWKS fetches, by tenant and outcome (ok or error).",
		}, []string{"tenant", "outcome"}),
		sseOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_sse_streams_open",
			Help: "Server-Sent Events streams open now.",
		}),
		sseOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_sse_streams_opened_total",
			Help: "Server-Sent Events streams opened; with chat_sse_streams_open it gives their mean lifetime.",
		}),
		eventsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_events_published_total",
			Help: "Live events published on the event bus, by type and outcome (ok or error).",
		}, []string{"type", "outcome"}),
		eventsDeliv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_events_delivered_total",
			Help: "Live events written to SSE streams, by type.",
		}, []string{"type"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_log_relay_entries_total",
			Help: "Log entries the relay took up because their writer left them pending past the grace period (taken), and those whose events it published (published).",
		}, []string{"outcome"}),
		tenantReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_tenant_reloads_total",
			Help: "Reloads of the tenant files, by outcome (error when the folder could not be read or a file is invalid).",
		}, []string{"outcome"}),
		tenantsLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_tenants_loaded",
			Help: "Tenants loaded at the last reload.",
		}),
		tenantsInvalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_tenant_files_invalid",
			Help: "Tenant files that failed validation at the last reload.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_rate_limit_rejections_total",
			Help: "Requests refused by a limit (429; 503 for replica-event-streams), by tenant id (empty without the tenant label) and limit: requests, writes, event-streams, tenant-requests, tenant-event-streams or replica-event-streams.",
		}, []string{"tenant", "limit"}),
		readyChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_readiness_checks_total",
			Help: "Dependency checks of GET /readyz, by check (mongodb, tenants, redis) and outcome (ok or error); a failing redis check leaves the pod ready but degraded.",
		}, []string{"check", "outcome"}),
		webhookTries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_webhook_attempts_total",
			Help: "Webhook delivery attempts, by outcome: delivered (the receiver answered 2xx), retry (a network error, a timeout, 429 or 5xx, tried again later) or dead (the last attempt failed or the receiver refused it, such as a 4xx or a 410 that disabled the endpoint; only an admin's redelivery tries it again).",
		}, []string{"outcome"}),
		webhookTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_webhook_attempt_duration_seconds",
			Help:    "Time of one webhook delivery attempt, from connecting to reading the response (bounded by CHAT_WEBHOOK_TIMEOUT), by outcome.",
			Buckets: webhookBuckets,
		}, []string{"outcome"}),
		webhookDue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_webhook_queue_due",
			Help: "Webhook deliveries due now, as this replica's sender saw them at its last poll.",
		}),
		webhookLate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_webhook_queue_lateness_seconds",
			Help: "How long the oldest due webhook delivery has waited past its due time, as this replica's sender saw it at its last poll; 0 when none is due.",
		}),
		webhookFanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_webhook_fanned_out_total",
			Help: "Webhook deliveries created from the conversation log's events, one per subscribed endpoint.",
		}),
	}
	version := o.Version
	if version == "" {
		version = "unknown"
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "chat_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.httpRequests, m.httpDuration, m.mongoDuration, m.redisDuration, m.cacheRequests,
		m.jwksFetches, m.sseOpen, m.sseOpened, m.eventsSent, m.eventsDeliv, m.relayed, m.tenantReloads,
		m.tenantsLoaded, m.tenantsInvalid, m.rateLimited, m.readyChecks,
		m.webhookTries, m.webhookTime, m.webhookDue, m.webhookLate, m.webhookFanned,
	)
	m.registerDataRights(reg)
	if o.TenantLabel {
		m.tenantRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_tenant_http_requests_total",
			Help: "HTTP requests of a known tenant, by tenant id and status class.",
		}, []string{"tenant", "status_class"})
		m.tenantDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_tenant_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request of a known tenant, by tenant id, method and route template.",
			Buckets: httpBuckets,
		}, []string{"tenant", "method", "route"})
		reg.MustRegister(m.tenantRequests, m.tenantDuration)
	}
	// Series that alerts and ratios divide by exist from the start: the first dead webhook
	// delivery is an increase from 0.
	m.tenantReloads.WithLabelValues(outcomeOK)
	m.tenantReloads.WithLabelValues(outcomeError)
	for _, o := range webhookOutcomes {
		m.webhookTries.WithLabelValues(o)
		m.webhookTime.WithLabelValues(o)
	}
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg,
		EnableOpenMetrics: true,
	}))
	return m
}

// registerDataRights makes and registers the metrics of erasures and retention.
func (m *Metrics) registerDataRights(reg *prometheus.Registry) {
	m.erasedConvs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_erased_conversations_total",
		Help: "Conversations erased, by reason: erasure (of a customer, on request) or retention (resolved longer ago than the tenant keeps them).",
	}, []string{"reason"})
	m.erasedMsgs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_erased_messages_total",
		Help: "Messages erased with their conversations, by reason (erasure or retention).",
	}, []string{"reason"})
	m.overdue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chat_retention_overdue_seconds",
		Help: "How long past its tenant's retention the oldest resolved conversation not yet erased is, as this replica's retention sweeper last saw it (0: none is overdue).",
	})
	reg.MustRegister(m.erasedConvs, m.erasedMsgs, m.overdue)
	for _, r := range []string{"erasure", "retention"} {
		m.erasedConvs.WithLabelValues(r)
		m.erasedMsgs.WithLabelValues(r)
	}
}

// Erased counts conversations and their messages erased, by reason (datarights.Observer).
func (m *Metrics) Erased(reason string, conversations, messages int64) {
	m.erasedConvs.WithLabelValues(reason).Add(float64(conversations))
	m.erasedMsgs.WithLabelValues(reason).Add(float64(messages))
}

// RetentionOverdue sets how long past retention the oldest conversation left to erase is
// (datarights.Observer).
func (m *Metrics) RetentionOverdue(d time.Duration) { m.overdue.Set(d.Seconds()) }

// Handler serves the registry in the Prometheus text (or OpenMetrics) format, for GET /metrics.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry returns the private registry, for tests that gather it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest records one served HTTP request. route is the route template, empty or
// RouteUnmatched for a request that matched none; tenantID is the id of the tenant the registry
// resolved, empty when the request resolved none, and then only the global families count it.
// When ctx carries a sampled span of this service, the latency observations carry its trace id
// as an exemplar (served in the OpenMetrics format).
func (m *Metrics) ObserveRequest(ctx context.Context, method, route string, status int, d time.Duration, tenantID string) {
	method = methodLabel(method)
	if route == "" {
		route = RouteUnmatched
	}
	class := statusClass(status)
	ex := traceExemplar(ctx)
	m.httpRequests.WithLabelValues(method, route, class).Inc()
	if class != class5xx {
		m.httpRequests.WithLabelValues(method, route, class5xx) // a route's first 5xx counts from 0
	}
	observe(m.httpDuration.WithLabelValues(method, route), d.Seconds(), ex)
	if m.tenantRequests != nil && tenantID != "" {
		m.tenantRequests.WithLabelValues(tenantID, class).Inc()
		observe(m.tenantDuration.WithLabelValues(tenantID, method, route), d.Seconds(), ex)
	}
}

// JWKSFetch records one discovery or JWKS fetch of a tenant's issuer; outcome is "ok" or "error".
func (m *Metrics) JWKSFetch(tenantID, outcome string) {
	if outcome != outcomeOK {
		outcome = outcomeError
	}
	countOutcome(m.jwksFetches, outcome, tenantID)
}

// EventPublished records one live event published; err is nil on success.
func (m *Metrics) EventPublished(eventType string, err error) {
	countOutcome(m.eventsSent, outcome(err), eventType)
}

// EntriesRelayed records one pass of the log's relay: the pending entries it took up and how
// many of them it published.
func (m *Metrics) EntriesRelayed(taken, published int) {
	m.relayed.WithLabelValues("taken").Add(float64(taken))
	m.relayed.WithLabelValues("published").Add(float64(published))
}

// ReadinessCheck records one run of the readiness check named check; err is nil when it passed.
func (m *Metrics) ReadinessCheck(check string, err error) {
	countOutcome(m.readyChecks, outcome(err), check)
}

// EventDelivered records one live event written to an SSE stream.
func (m *Metrics) EventDelivered(eventType string) {
	m.eventsDeliv.WithLabelValues(eventType).Inc()
}

// CacheRequest records one look-up of the named cache.
func (m *Metrics) CacheRequest(cache string, hit bool) {
	result := resultMiss
	if hit {
		result = resultHit
	}
	m.cacheRequests.WithLabelValues(cache, result).Inc()
}

// SSEStreamOpened records that an SSE stream opened.
func (m *Metrics) SSEStreamOpened() {
	m.sseOpen.Inc()
	m.sseOpened.Inc()
}

// SSEStreamClosed records that an SSE stream closed.
func (m *Metrics) SSEStreamClosed() { m.sseOpen.Dec() }

// TenantReload records one reload of the tenant files: ok is false when the folder could not be
// read or a file is invalid; loaded and invalid count the tenants loaded and the invalid files.
func (m *Metrics) TenantReload(ok bool, loaded, invalid int) {
	o := outcomeOK
	if !ok {
		o = outcomeError
	}
	m.tenantReloads.WithLabelValues(o).Inc()
	m.tenantsLoaded.Set(float64(loaded))
	m.tenantsInvalid.Set(float64(invalid))
}

// TenantsChanged follows the tenants the registry holds: the series a tenant's alerts and
// dashboard variables need are created at 0 when it is added (its JWKS fetches ok and error,
// its 5xx requests with the tenant label), so its first failure is an increase that rate() and
// increase() see; a removed tenant's series are deleted.
func (m *Metrics) TenantsChanged(added, removed []string) {
	for _, id := range added {
		m.jwksFetches.WithLabelValues(id, outcomeOK)
		m.jwksFetches.WithLabelValues(id, outcomeError)
		if m.tenantRequests != nil {
			m.tenantRequests.WithLabelValues(id, class5xx)
		}
	}
	for _, id := range removed {
		byTenant := prometheus.Labels{"tenant": id}
		m.jwksFetches.DeletePartialMatch(byTenant)
		m.rateLimited.DeletePartialMatch(byTenant)
		if m.tenantRequests != nil {
			m.tenantRequests.DeletePartialMatch(byTenant)
			m.tenantDuration.DeletePartialMatch(byTenant)
		}
	}
}

// RateLimited records one request of tenantID refused by the limit named limit (one of the
// names of internal/limits, so the label is bounded). Without MetricsOptions.TenantLabel the
// tenant label is empty, which Prometheus treats as absent.
func (m *Metrics) RateLimited(tenantID, limit string) {
	if m.tenantRequests == nil {
		tenantID = ""
	}
	m.rateLimited.WithLabelValues(tenantID, limit).Inc()
}

// MongoCommand records one MongoDB command; collection is empty for database-level commands
// and err is nil on success. A command's error series is created with its first observation, and
// a sampled span in ctx gives the observation its trace id as an exemplar.
func (m *Metrics) MongoCommand(ctx context.Context, operation, collection string, d time.Duration, err error) {
	if collection == "" {
		collection = "none"
	}
	o := outcome(err)
	if o != outcomeError {
		m.mongoDuration.WithLabelValues(operation, collection, outcomeError)
	}
	observe(m.mongoDuration.WithLabelValues(operation, collection, o), d.Seconds(), traceExemplar(ctx))
}

var _ MongoObserver = (*Metrics)(nil)

// WebhookAttempt records one webhook delivery attempt that took d; outcome is delivered, retry
// or dead.
func (m *Metrics) WebhookAttempt(outcome string, d time.Duration) {
	m.webhookTries.WithLabelValues(outcome).Inc()
	m.webhookTime.WithLabelValues(outcome).Observe(d.Seconds())
}

// WebhookQueue records what one poll of this replica's webhook sender found: due deliveries
// due now, the oldest of them lateness past its due time.
func (m *Metrics) WebhookQueue(due int, lateness time.Duration) {
	m.webhookDue.Set(float64(due))
	m.webhookLate.Set(lateness.Seconds())
}

// WebhookFannedOut records the n deliveries one fan-out pass created.
func (m *Metrics) WebhookFannedOut(n int) { m.webhookFanned.Add(float64(n)) }

var _ webhook.Observer = (*Metrics)(nil)

// RedisHook returns a go-redis hook (client.AddHook) that records every command's duration and
// outcome in chat_redis_command_duration_seconds, with the trace id of a sampled span as an
// exemplar. redis.Nil (a missing key) counts as ok.
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m.redisDuration} }

// redisHook times Redis commands and pipelines.
type redisHook struct {
	duration *prometheus.HistogramVec
}

// DialHook leaves dialing alone.
func (redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook times one command, labelled by its lower-case name.
func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		observe(h.duration.WithLabelValues(cmd.Name(), outcome(redisErr(err))), time.Since(start).Seconds(), traceExemplar(ctx))
		return err
	}
}

// ProcessPipelineHook times a pipeline or transaction as one "pipeline" command; it fails when
// any of its commands does.
func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		failed := redisErr(err)
		for _, c := range cmds {
			if failed == nil {
				failed = redisErr(c.Err())
			}
		}
		observe(h.duration.WithLabelValues("pipeline", outcome(failed)), time.Since(start).Seconds(), traceExemplar(ctx))
		return err
	}
}

// redisErr returns err unless it only says that a key is missing.
func redisErr(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// countOutcome increments the series of vec with labels (first..., outcome) and creates its
// error sibling at 0, so that the first error of a tenant, an event type or a check is an
// increase from 0 that rate() and increase() see, not a new series they ignore.
func countOutcome(vec *prometheus.CounterVec, outcome string, first ...string) {
	vec.WithLabelValues(append(first, outcome)...).Inc()
	if outcome != outcomeError {
		vec.WithLabelValues(append(first, outcomeError)...)
	}
}

// traceExemplar returns the exemplar labels of an observation made under ctx: the trace id of
// ctx's span when that span is this service's own and sampled (so the trace exists in the
// tracing back end), nil otherwise: with tracing off, a caller's propagated trace context is
// remote and gives none.
func traceExemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() || sc.IsRemote() {
		return nil
	}
	return prometheus.Labels{ExemplarTraceID: sc.TraceID().String()}
}

// observe records v on o, with the exemplar ex when there is one.
func observe(o prometheus.Observer, v float64, ex prometheus.Labels) {
	if ex != nil {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, ex)
			return
		}
	}
	o.Observe(v)
}

// outcome is the outcome label of err: "ok" when nil, else "error".
func outcome(err error) string {
	if err != nil {
		return outcomeError
	}
	return outcomeOK
}

// statusClass returns "1xx".."5xx" for an HTTP status, "unknown" for anything else.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "unknown"
	}
	return strconv.Itoa(status/100) + "xx"
}

// methodLabel returns the method label: a standard method as is, anything else "other", so a
// client cannot mint label values.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
