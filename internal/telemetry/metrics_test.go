package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/telemetry"
)

// The observer interfaces the service's packages declare, restated here so this package's tests
// do not depend on packages under construction: *Metrics must satisfy each of them.
type (
	requestObserver interface {
		ObserveRequest(method, route string, status int, d time.Duration, tenantID string)
	}
	jwksObserver interface {
		JWKSFetch(tenantID, outcome string)
	}
	eventObserver interface {
		EventPublished(eventType string, err error)
		EventDelivered(eventType string)
	}
	cacheObserver interface {
		CacheRequest(cache string, hit bool)
	}
	sseObserver interface {
		SSEStreamOpened()
		SSEStreamClosed()
	}
	tenantReloadObserver interface {
		TenantReload(ok bool, loaded, invalid int)
	}
	rateLimitObserver interface {
		RateLimited(tenantID, limit string)
	}
)

var (
	_ requestObserver         = (*telemetry.Metrics)(nil)
	_ jwksObserver            = (*telemetry.Metrics)(nil)
	_ eventObserver           = (*telemetry.Metrics)(nil)
	_ cacheObserver           = (*telemetry.Metrics)(nil)
	_ sseObserver             = (*telemetry.Metrics)(nil)
	_ tenantReloadObserver    = (*telemetry.Metrics)(nil)
	_ rateLimitObserver       = (*telemetry.Metrics)(nil)
	_ telemetry.MongoObserver = (*telemetry.Metrics)(nil)
)

// serviceFamilies are the service's own metric families.
var serviceFamilies = []string{
	"chat_http_requests_total", "chat_http_request_duration_seconds", "chat_tenant_http_requests_total",
	"chat_mongodb_command_duration_seconds", "chat_redis_command_duration_seconds", "chat_cache_requests_total",
	"chat_jwks_fetches_total", "chat_sse_streams_open", "chat_events_published_total", "chat_events_delivered_total",
	"chat_tenant_reloads_total", "chat_tenants_loaded", "chat_tenant_files_invalid", "chat_rate_limit_rejections_total",
	"chat_build_info",
}

// runtimeFamilies are some of the Go runtime and process collectors' families the dashboard uses.
var runtimeFamilies = []string{
	"go_goroutines", "go_gc_duration_seconds", "go_memstats_heap_inuse_bytes",
	"process_resident_memory_bytes", "process_cpu_seconds_total",
}

// MustExercise calls every observer method of m at least once, Redis through a real client on
// a miniredis server.
func MustExercise(tb testing.TB, m *telemetry.Metrics) {
	tb.Helper()
	m.ObserveRequest("GET", "/api/v1/chat/list", 200, 12*time.Millisecond, "demo-shop")
	m.ObserveRequest("POST", "/api/v1/chat/start", 503, 2*time.Second, "demo-shop")
	m.ObserveRequest("GET", "/readyz", 200, time.Millisecond, "")
	m.ObserveRequest("BREW", "", 404, time.Millisecond, "")
	m.JWKSFetch("demo-shop", "ok")
	m.JWKSFetch("other-shop", "error")
	m.EventPublished("message.created", nil)
	m.EventPublished("presence.changed", errors.New("redis down"))
	m.EventDelivered("message.created")
	m.CacheRequest("conversations", true)
	m.CacheRequest("conversations", false)
	m.SSEStreamOpened()
	m.SSEStreamOpened()
	m.SSEStreamClosed()
	m.TenantReload(false, 2, 1)
	m.RateLimited("demo-shop", "writes")
	m.MongoCommand("find", "conversations", 4*time.Millisecond, nil)
	m.MongoCommand("ping", "", time.Millisecond, errors.New("boom"))

	srv := miniredis.RunT(tb)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	tb.Cleanup(func() { rdb.Close() })
	rdb.AddHook(m.RedisHook())
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		tb.Fatal(err)
	}
	if err := rdb.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		tb.Fatalf("GET missing = %v, want redis.Nil", err)
	}
	if err := rdb.LPush(ctx, "k", "x").Err(); err == nil { // WRONGTYPE: a command error
		tb.Fatal("LPUSH on a string succeeded")
	}
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "n")
		p.Expire(ctx, "n", time.Minute)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

// MustGather gathers m's registry by family name.
func MustGather(tb testing.TB, m *telemetry.Metrics) map[string]*dto.MetricFamily {
	tb.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		tb.Fatalf("Gather = %v", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// metricWith returns the metric of family name whose labels include want, or nil.
func metricWith(tb testing.TB, m *telemetry.Metrics, name string, want map[string]string) *dto.Metric {
	tb.Helper()
	mf := MustGather(tb, m)[name]
	if mf == nil {
		return nil
	}
next:
	for _, metric := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range metric.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return metric
	}
	return nil
}

// histogramCount returns the sample count of the histogram series of name with labels want.
func histogramCount(tb testing.TB, m *telemetry.Metrics, name string, want map[string]string) uint64 {
	tb.Helper()
	return metricWith(tb, m, name, want).GetHistogram().GetSampleCount()
}

// counterValue returns the value of the counter or gauge series of name with labels want.
func counterValue(tb testing.TB, m *telemetry.Metrics, name string, want map[string]string) float64 {
	tb.Helper()
	metric := metricWith(tb, m, name, want)
	if metric.GetGauge() != nil {
		return metric.GetGauge().GetValue()
	}
	return metric.GetCounter().GetValue()
}

func TestMetricsExportEveryFamily(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: true, Version: "1.2.3"})
	MustExercise(t, m)
	families := MustGather(t, m)
	for _, name := range append(serviceFamilies, runtimeFamilies...) {
		if families[name] == nil {
			t.Errorf("registry has no family %s", name)
		}
	}
}

func TestMetricsRecordWhatObserversReport(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: true, Version: "1.2.3"})
	MustExercise(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"chat_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/chat/list", "status_class": "2xx"}, 1},
		{"chat_http_requests_total", map[string]string{"method": "POST", "route": "/api/v1/chat/start", "status_class": "5xx"}, 1},
		{"chat_http_requests_total", map[string]string{"method": "other", "route": "unmatched", "status_class": "4xx"}, 1},
		{"chat_tenant_http_requests_total", map[string]string{"tenant": "demo-shop", "status_class": "2xx"}, 1},
		{"chat_tenant_http_requests_total", map[string]string{"tenant": "demo-shop", "status_class": "5xx"}, 1},
		{"chat_jwks_fetches_total", map[string]string{"tenant": "other-shop", "outcome": "error"}, 1},
		{"chat_events_published_total", map[string]string{"type": "presence.changed", "outcome": "error"}, 1},
		{"chat_events_delivered_total", map[string]string{"type": "message.created"}, 1},
		{"chat_cache_requests_total", map[string]string{"cache": "conversations", "result": "hit"}, 1},
		{"chat_cache_requests_total", map[string]string{"cache": "conversations", "result": "miss"}, 1},
		{"chat_sse_streams_open", nil, 1},
		{"chat_tenant_reloads_total", map[string]string{"outcome": "error"}, 1},
		{"chat_tenant_reloads_total", map[string]string{"outcome": "ok"}, 0},
		{"chat_tenants_loaded", nil, 2},
		{"chat_tenant_files_invalid", nil, 1},
		{"chat_rate_limit_rejections_total", map[string]string{"tenant": "demo-shop", "limit": "writes"}, 1},
		{"chat_build_info", map[string]string{"version": "1.2.3"}, 1},
	} {
		if got := counterValue(t, m, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   uint64
	}{
		{"chat_http_request_duration_seconds", map[string]string{"method": "GET", "route": "/readyz"}, 1},
		{"chat_mongodb_command_duration_seconds", map[string]string{"operation": "find", "collection": "conversations", "outcome": "ok"}, 1},
		{"chat_mongodb_command_duration_seconds", map[string]string{"operation": "ping", "collection": "none", "outcome": "error"}, 1},
		{"chat_redis_command_duration_seconds", map[string]string{"command": "set", "outcome": "ok"}, 1},
		{"chat_redis_command_duration_seconds", map[string]string{"command": "get", "outcome": "ok"}, 1},
		{"chat_redis_command_duration_seconds", map[string]string{"command": "lpush", "outcome": "error"}, 1},
		{"chat_redis_command_duration_seconds", map[string]string{"command": "pipeline", "outcome": "ok"}, 1},
	} {
		if got := histogramCount(t, m, c.name, c.labels); got != c.want {
			t.Errorf("%s%v count = %d, want %d", c.name, c.labels, got, c.want)
		}
	}
}

func TestTenantLabelOffRegistersNoTenantFamily(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: false})
	MustExercise(t, m)
	families := MustGather(t, m)
	if families["chat_tenant_http_requests_total"] != nil {
		t.Error("chat_tenant_http_requests_total is registered with TenantLabel false")
	}
	if families["chat_http_requests_total"] == nil {
		t.Error("chat_http_requests_total is missing with TenantLabel false")
	}
	// Rejections keep their limit label; the tenant label is empty, which Prometheus drops.
	if got := counterValue(t, m, "chat_rate_limit_rejections_total", map[string]string{"tenant": "", "limit": "writes"}); got != 1 {
		t.Errorf(`chat_rate_limit_rejections_total{tenant="",limit="writes"} = %v, want 1`, got)
	}
}

func TestMetricsHandlerServesParsableText(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: true, Version: "test"})
	MustExercise(t, m)
	for _, accept := range []string{"", "application/openmetrics-text; version=1.0.0"} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /metrics (Accept %q) = %d", accept, rec.Code)
		}
		body := rec.Body.String()
		if accept == "" {
			parser := expfmt.NewTextParser(model.LegacyValidation)
			families, err := parser.TextToMetricFamilies(strings.NewReader(body))
			if err != nil {
				t.Fatalf("GET /metrics is not Prometheus text: %v", err)
			}
			for _, name := range serviceFamilies {
				if families[name] == nil {
					t.Errorf("GET /metrics has no family %s", name)
				}
			}
		} else if !strings.HasSuffix(body, "# EOF\n") || !strings.Contains(body, "chat_http_requests_total{") {
			t.Errorf("GET /metrics with Accept %q is not OpenMetrics:\n%.300s", accept, body)
		}
		if want := `chat_http_requests_total{method="GET",route="/api/v1/chat/list",status_class="2xx"}`; !strings.Contains(body, want) {
			t.Errorf("GET /metrics (Accept %q) lacks %s", accept, want)
		}
	}
}
