package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/server/servertest"
	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The observer interfaces the service's packages declare, restated here so this package's tests
// do not depend on packages under construction: *Metrics must satisfy each of them.
type (
	requestObserver interface {
		ObserveRequest(ctx context.Context, method, route string, status int, d time.Duration, tenantID string)
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
	// webhook.Observer is asserted in metrics.go.
)

// serviceFamilies are the service's own metric families.
var serviceFamilies = []string{
	"chat_http_requests_total", "chat_http_request_duration_seconds", "chat_tenant_http_requests_total",
	"chat_tenant_http_request_duration_seconds",
	"chat_mongodb_command_duration_seconds", "chat_redis_command_duration_seconds", "chat_cache_requests_total",
	"chat_jwks_fetches_total", "chat_sse_streams_open", "chat_sse_streams_opened_total", "chat_events_published_total",
	"chat_events_delivered_total", "chat_tenant_reloads_total", "chat_tenants_loaded", "chat_tenant_files_invalid",
	"chat_rate_limit_rejections_total", "chat_readiness_checks_total", "chat_build_info",
	"chat_webhook_attempts_total", "chat_webhook_attempt_duration_seconds", "chat_webhook_queue_due",
	"chat_webhook_queue_lateness_seconds", "chat_webhook_fanned_out_total",
}

// tenantFamilies are the families that exist only with CHAT_METRICS_TENANT_LABEL=true.
var tenantFamilies = []string{"chat_tenant_http_requests_total", "chat_tenant_http_request_duration_seconds"}

// runtimeFamilies are some of the Go runtime and process collectors' families the dashboard uses.
var runtimeFamilies = []string{
	"go_goroutines", "go_gc_duration_seconds", "go_memstats_heap_inuse_bytes",
	"process_resident_memory_bytes", "process_cpu_seconds_total",
}

// scrape is what GET /metrics of the service served once every feature that reports a metric
// had been used through the API: parsed by family, as Prometheus text, and as OpenMetrics; and
// the spans the service exported meanwhile.
type scrape struct {
	families    map[string]*dto.MetricFamily
	text        string
	openMetrics string
	spans       tracetest.SpanStubs
}

// scrapes holds one scrape per value of the tenant label option: every test reads the same
// scrape of a service that did everything, rather than starting its own.
var scrapes struct {
	mu   sync.Mutex
	byTL map[bool]*scrape
}

// served returns the scrape of a service with CHAT_METRICS_TENANT_LABEL=tenantLabel, driving
// one (servedMetrics) on first use.
func served(t *testing.T, tenantLabel bool) *scrape {
	t.Helper()
	scrapes.mu.Lock()
	defer scrapes.mu.Unlock()
	if s := scrapes.byTL[tenantLabel]; s != nil {
		return s
	}
	s := servedMetrics(t, tenantLabel)
	if scrapes.byTL == nil {
		scrapes.byTL = map[bool]*scrape{}
	}
	scrapes.byTL[tenantLabel] = s
	return s
}

// The tenants of servedMetrics: one that works, one whose issuer is down, one whose callers
// may make one request a minute.
const (
	shopTenant    = "demo-shop"
	downTenant    = "down-shop"
	limitedTenant = "limited-shop"
)

// The trace contexts servedMetrics sends with two requests of its own (W3C traceparent): a
// sampled one on GET /admin/settings, an unsampled one on GET /chat/:id. No other request
// takes either route.
const (
	sampledTraceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
	unsampledTraceID = "0af7651916cd43dd8448eb211c80319c"
	sampledRoute     = "/api/v1/admin/settings"
	unsampledRoute   = "/api/v1/chat/:id"
)

// servedMetrics runs the whole service (server.Run on 127.0.0.1:0, the embedded FerretDB, a
// private redis-server, local issuers, tracing into memory), uses every feature that reports a
// metric through its API, and scrapes GET /metrics on the metrics listener:
//   - a customer lists twice (a cache miss, then a hit; MongoDB and Redis commands; discovery
//     and JWKS fetched), a caller of the tenant whose issuer is down is answered 503 (a failed
//     fetch), a BREW to an unknown path is answered 404, /readyz is asked once;
//   - an admin's event stream gets the conversation.created of a customer's start (published,
//     delivered);
//   - /readyz is asked while MongoDB is slower than its deadline (a failed ping);
//   - a caller of limited-shop is refused its second request (429);
//   - a tenant file turns invalid (a reload with an error);
//   - Redis is stopped for a message (a failed publish, failed Redis commands) and a readiness
//     check (degraded), and started again, and a new event stream stays open while the metrics
//     are scraped;
//   - an admin reads the settings under a sampled trace context, and a customer asks for a
//     conversation under an unsampled one.
func servedMetrics(t *testing.T, tenantLabel bool) *scrape {
	t.Helper()
	uri, database := testenv.MustMongo(t)
	viaProxy, proxy := testenv.ProxyMongo(t, uri)
	rds := testenv.StartRedis(t)
	dir := t.TempDir()
	tenantFile := func(id, issuer, extra string) {
		file := fmt.Sprintf("id: %s\nname: %s\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n%s", id, id, issuer, extra)
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shopIssuer := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	limitedIssuer := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	tenantFile(shopTenant, shopIssuer.URL(), "")
	tenantFile(limitedTenant, limitedIssuer.URL(), "limits:\n  requests_per_minute: 1\n")
	tenantFile(downTenant, "http://127.0.0.1:9", "") // nothing listens there
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": viaProxy, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": dir,
		"CHAT_METRICS_TENANT_LABEL": strconv.FormatBool(tenantLabel),
	}
	spans := tracetest.NewInMemoryExporter()
	addrs := runService(t, env, "1.2.3", spans)
	base, metricsBase := "http://"+addrs.API.String(), "http://"+addrs.Metrics.String()
	call := func(method, path, tenantID, token string, body any, headers ...string) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if tenantID != "" {
			req.Header.Set("X-Tenant-ID", tenantID)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	want := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Fatalf("%s = %d, want %d", what, got, want)
		}
	}
	customer := shopIssuer.Token(t, "cust-1", false)
	admin := shopIssuer.Token(t, "admin-1", true)

	want("GET /readyz", call("GET", "/readyz", "", "", nil), http.StatusOK)
	want("the first list", call("GET", "/api/v1/chat/list", shopTenant, customer, nil), http.StatusOK)
	want("the second list", call("GET", "/api/v1/chat/list", shopTenant, customer, nil), http.StatusOK)
	// A token naming the down issuer: the service must ask that issuer for its keys.
	downToken := shopIssuer.TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = "http://127.0.0.1:9" })
	want("a list of the tenant whose issuer is down", call("GET", "/api/v1/chat/list", downTenant, downToken, nil), http.StatusServiceUnavailable)
	want("BREW /nope", call("BREW", "/nope", "", "", nil), http.StatusNotFound)
	limited := limitedIssuer.Token(t, "cust-1", false)
	want("limited-shop's first list", call("GET", "/api/v1/chat/list", limitedTenant, limited, nil), http.StatusOK)
	want("limited-shop's second list", call("GET", "/api/v1/chat/list", limitedTenant, limited, nil), http.StatusTooManyRequests)

	stream := openStream(t, base, shopTenant, admin)
	start := map[string]string{"message": "Where is my order?"}
	want("POST /chat/start", call("POST", "/api/v1/chat/start", shopTenant, customer, start), http.StatusCreated)
	stream.waitFor(t, "conversation.created")

	// MongoDB slower than the readiness check's 1 s: its ping fails.
	proxy.SetDelay(3 * time.Second)
	want("GET /readyz with MongoDB slow", call("GET", "/readyz", "", "", nil), http.StatusServiceUnavailable)
	proxy.SetDelay(0)

	tenantFile(shopTenant, shopIssuer.URL(), "chat: [broken\n")
	scrapeUntil(t, metricsBase, "the invalid tenant file", func(text string) bool {
		return strings.Contains(text, "\nchat_tenant_files_invalid 1\n")
	})

	rds.Stop(t)
	stream.waitEnd(t)
	want("POST /chat/start with Redis down", call("POST", "/api/v1/chat/start", shopTenant, customer, map[string]string{"message": "still there?"}), http.StatusCreated)
	want("GET /readyz with Redis down (degraded)", call("GET", "/readyz", "", "", nil), http.StatusOK)
	rds.Start(t)
	var again *sseStream
	scrapeUntil(t, metricsBase, "an event stream open again after Redis came back", func(string) bool {
		if again != nil {
			again.close()
		}
		again = openStream(t, base, shopTenant, admin)
		return again.status == http.StatusOK
	})
	again.waitFor(t, "") // its first field: the stream is open and counted

	want("GET /admin/settings, sampled", call("GET", sampledRoute, shopTenant, admin, nil,
		"traceparent", "00-"+sampledTraceID+"-00f067aa0ba902b7-01"), http.StatusOK)
	want("GET /chat/:id, not sampled", call("GET", "/api/v1/chat/0123456789abcdef01234567", shopTenant, customer, nil,
		"traceparent", "00-"+unsampledTraceID+"-b7ad6b7169203331-00"), http.StatusNotFound)

	s := &scrape{}
	s.text = get(t, metricsBase+"/metrics", "")
	s.openMetrics = get(t, metricsBase+"/metrics", "application/openmetrics-text; version=1.0.0")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(s.text))
	if err != nil {
		t.Fatalf("GET /metrics is not Prometheus text: %v", err)
	}
	s.families = families
	s.spans = spans.GetSpans()
	return s
}

// runService runs the service with the environment env, its spans going to spans, until the
// test ends and returns the addresses it listens on.
func runService(t *testing.T, env map[string]string, version string, spans sdktrace.SpanExporter) server.Addrs {
	t.Helper()
	return servertest.Start(t, env, server.Options{Version: version, Stdout: io.Discard, SpanExporter: spans}, time.Minute)
}

// get returns the body of a GET of url with the Accept header accept (none when "").
func get(t *testing.T, url, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// scrapeUntil polls GET /metrics of the metrics listener at base until cond holds for its text.
func scrapeUntil(t *testing.T, base, what string, cond func(text string) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(get(t, base+"/metrics", "")); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// sseStream is an open GET /api/v1/chat/events; events carries the event type of each event,
// "" for comments and fields such as retry.
type sseStream struct {
	status int
	events chan string
	ended  chan struct{}
	close  context.CancelFunc
}

// openStream opens the event stream of the caller of token.
func openStream(t *testing.T, base, tenantID, token string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/chat/events", nil)
	req.Header.Set("X-Tenant-ID", tenantID)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /chat/events: %v", err)
	}
	s := &sseStream{status: resp.StatusCode, events: make(chan string, 100), ended: make(chan struct{}), close: cancel}
	go func() {
		defer close(s.ended)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		sc := bufio.NewScanner(resp.Body)
		typ, data := "", false
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "" && data:
				s.events <- typ
				typ, data = "", false
			case strings.HasPrefix(line, "event: "):
				typ, data = line[7:], true
			case line != "":
				data = true
			}
		}
	}()
	return s
}

// waitFor reads the stream until an event of type typ ("": anything, a comment too).
func (s *sseStream) waitFor(t *testing.T, typ string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case got := <-s.events:
			if typ == "" || got == typ {
				return
			}
		case <-s.ended:
			t.Fatalf("the event stream ended before %q", typ)
		case <-timeout:
			t.Fatalf("no %q event within 30s", typ)
		}
	}
}

// waitEnd waits until the service ends the stream.
func (s *sseStream) waitEnd(t *testing.T) {
	t.Helper()
	select {
	case <-s.ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the event stream did not end within 30s")
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

// metricWith returns the metric of family name whose labels include want, or nil. A label
// wanted empty matches a metric without it, as in Prometheus.
func metricWith(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := families[name]
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
func histogramCount(families map[string]*dto.MetricFamily, name string, want map[string]string) uint64 {
	return metricWith(families, name, want).GetHistogram().GetSampleCount()
}

// value returns the value of the counter or gauge series of name with labels want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	metric := metricWith(families, name, want)
	if metric.GetGauge() != nil {
		return metric.GetGauge().GetValue()
	}
	return metric.GetCounter().GetValue()
}

func TestMetricsExportEveryFamily(t *testing.T) {
	families := served(t, true).families
	for _, name := range append(serviceFamilies, runtimeFamilies...) {
		if families[name] == nil {
			t.Errorf("GET /metrics has no family %s", name)
		}
	}
}

// TestMetricsCountWhatTheServiceDid checks the series of what servedMetrics made the service
// do: exactly where the test knows how often it happened, at least once where the service may
// also do it on its own (retries, background work).
func TestMetricsCountWhatTheServiceDid(t *testing.T) {
	families := served(t, true).families
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"chat_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/chat/list", "status_class": "2xx"}, 3},
		{"chat_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/chat/list", "status_class": "5xx"}, 1},
		{"chat_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/chat/list", "status_class": "4xx"}, 1},
		{"chat_http_requests_total", map[string]string{"method": "POST", "route": "/api/v1/chat/start", "status_class": "2xx"}, 2},
		{"chat_http_requests_total", map[string]string{"method": "other", "route": "unmatched", "status_class": "4xx"}, 1},
		{"chat_tenant_http_requests_total", map[string]string{"tenant": downTenant, "status_class": "5xx"}, 1},
		{"chat_tenant_http_requests_total", map[string]string{"tenant": limitedTenant, "status_class": "2xx"}, 1},
		{"chat_tenant_http_requests_total", map[string]string{"tenant": limitedTenant, "status_class": "4xx"}, 1},
		{"chat_rate_limit_rejections_total", map[string]string{"tenant": limitedTenant, "limit": "requests"}, 1},
		{"chat_sse_streams_open", nil, 1},
		// Created at 0 with the tenant, the route or the event type, so a first failure counts.
		{"chat_jwks_fetches_total", map[string]string{"tenant": limitedTenant, "outcome": "error"}, 0},
		{"chat_tenant_http_requests_total", map[string]string{"tenant": limitedTenant, "status_class": "5xx"}, 0},
		{"chat_http_requests_total", map[string]string{"method": "GET", "route": "/readyz", "status_class": "5xx"}, 1},
		{"chat_http_requests_total", map[string]string{"method": "GET", "route": "/healthz", "status_class": "5xx"}, 0},
		{"chat_readiness_checks_total", map[string]string{"check": "tenants", "outcome": "error"}, 0},
		{"chat_tenants_loaded", nil, 3},
		{"chat_tenant_files_invalid", nil, 1},
		{"chat_build_info", map[string]string{"version": "1.2.3"}, 1},
	} {
		if got := value(families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"chat_jwks_fetches_total", map[string]string{"tenant": shopTenant, "outcome": "ok"}},
		{"chat_jwks_fetches_total", map[string]string{"tenant": downTenant, "outcome": "error"}},
		{"chat_cache_requests_total", map[string]string{"cache": "list", "result": "miss"}},
		{"chat_cache_requests_total", map[string]string{"cache": "list", "result": "hit"}},
		{"chat_events_published_total", map[string]string{"type": "conversation.created", "outcome": "ok"}},
		{"chat_events_published_total", map[string]string{"type": "conversation.created", "outcome": "error"}},
		{"chat_events_delivered_total", map[string]string{"type": "conversation.created"}},
		{"chat_tenant_reloads_total", map[string]string{"outcome": "ok"}},
		{"chat_tenant_reloads_total", map[string]string{"outcome": "error"}},
		{"chat_sse_streams_opened_total", nil},
		{"chat_readiness_checks_total", map[string]string{"check": "mongodb", "outcome": "ok"}},
		{"chat_readiness_checks_total", map[string]string{"check": "mongodb", "outcome": "error"}},
		{"chat_readiness_checks_total", map[string]string{"check": "redis", "outcome": "ok"}},
		{"chat_readiness_checks_total", map[string]string{"check": "redis", "outcome": "error"}},
		{"chat_readiness_checks_total", map[string]string{"check": "tenants", "outcome": "ok"}},
	} {
		if got := value(families, c.name, c.labels); got < 1 {
			t.Errorf("%s%v = %v, want at least 1", c.name, c.labels, got)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"chat_http_request_duration_seconds", map[string]string{"method": "GET", "route": "/readyz"}},
		{"chat_http_request_duration_seconds", map[string]string{"method": "GET", "route": "/api/v1/chat/events"}},
		{"chat_mongodb_command_duration_seconds", map[string]string{"operation": "find", "collection": "conversations", "outcome": "ok"}},
		{"chat_mongodb_command_duration_seconds", map[string]string{"operation": "ping", "collection": "none", "outcome": "error"}},
		{"chat_redis_command_duration_seconds", map[string]string{"outcome": "ok"}},
		{"chat_redis_command_duration_seconds", map[string]string{"outcome": "error"}},
		{"chat_tenant_http_request_duration_seconds", map[string]string{"tenant": shopTenant, "method": "GET", "route": "/api/v1/chat/list"}},
		{"chat_tenant_http_request_duration_seconds", map[string]string{"tenant": limitedTenant, "method": "GET", "route": "/api/v1/chat/list"}},
	} {
		if got := histogramCount(families, c.name, c.labels); got < 1 {
			t.Errorf("%s%v count = %d, want at least 1", c.name, c.labels, got)
		}
	}
}

func TestTenantLabelOffRegistersNoTenantFamily(t *testing.T) {
	families := served(t, false).families
	for _, name := range tenantFamilies {
		if families[name] != nil {
			t.Errorf("GET /metrics has %s with CHAT_METRICS_TENANT_LABEL=false", name)
		}
	}
	// The JWKS family keeps its tenant label: the dashboard's $tenant variable reads it.
	for _, id := range []string{shopTenant, downTenant, limitedTenant} {
		if metricWith(families, "chat_jwks_fetches_total", map[string]string{"tenant": id, "outcome": "error"}) == nil {
			t.Errorf(`chat_jwks_fetches_total{tenant=%q,outcome="error"} is missing with the tenant label off`, id)
		}
	}
	if got := value(families, "chat_http_requests_total", map[string]string{"method": "GET", "route": "/api/v1/chat/list", "status_class": "2xx"}); got != 3 {
		t.Errorf("chat_http_requests_total of the list = %v with the tenant label off, want 3", got)
	}
	// Refusals keep their limit label; the tenant label is empty, which Prometheus drops.
	if got := value(families, "chat_rate_limit_rejections_total", map[string]string{"tenant": "", "limit": "requests"}); got != 1 {
		t.Errorf(`chat_rate_limit_rejections_total{limit="requests"} = %v, want 1`, got)
	}
}

func TestMetricsHandlerServesParsableText(t *testing.T) {
	s := served(t, true)
	if !strings.HasSuffix(s.openMetrics, "# EOF\n") || !strings.Contains(s.openMetrics, "chat_http_requests_total{") {
		t.Errorf("GET /metrics asking for OpenMetrics is not OpenMetrics:\n%.300s", s.openMetrics)
	}
	want := `chat_http_requests_total{method="GET",route="/api/v1/chat/list",status_class="2xx"}`
	for format, body := range map[string]string{"Prometheus text": s.text, "OpenMetrics": s.openMetrics} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics as %s lacks %s", format, want)
		}
	}
}

// TestTenantLatencyHistogram: with the tenant label on, each request of a tenant is timed in
// chat_tenant_http_request_duration_seconds by tenant, method and route, exactly as often as the
// global histogram times that tenant's requests; with it off the family does not exist (above).
func TestTenantLatencyHistogram(t *testing.T) {
	families := served(t, true).families
	for _, c := range []struct {
		tenant, method, route string
		want                  uint64
	}{
		{shopTenant, "GET", "/api/v1/chat/list", 2},
		{limitedTenant, "GET", "/api/v1/chat/list", 2},
		{downTenant, "GET", "/api/v1/chat/list", 1},
		{shopTenant, "POST", "/api/v1/chat/start", 2},
		{shopTenant, "GET", sampledRoute, 1},
	} {
		labels := map[string]string{"tenant": c.tenant, "method": c.method, "route": c.route}
		if got := histogramCount(families, "chat_tenant_http_request_duration_seconds", labels); got != c.want {
			t.Errorf("chat_tenant_http_request_duration_seconds%v count = %d, want %d", labels, got, c.want)
		}
	}
	// Requests that resolve no tenant are not in it.
	for _, route := range []string{"/readyz", telemetry.RouteUnmatched} {
		if m := metricWith(families, "chat_tenant_http_request_duration_seconds", map[string]string{"route": route}); m != nil {
			t.Errorf("chat_tenant_http_request_duration_seconds has a series of %s, which resolves no tenant: %v", route, m.GetLabel())
		}
	}
}

// exemplarLine is one sample line of an OpenMetrics exposition that carries an exemplar.
type exemplarLine struct {
	series  string            // the sample's metric name, e.g. chat_http_request_duration_seconds_bucket
	labels  map[string]string // the sample's labels
	exLabel map[string]string // the exemplar's labels
	exValue float64
}

var (
	exemplarRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} \S+(?: \S+)? # \{([^}]*)\} (\S+)(?: \S+)?$`)
	labelRE    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"`)
)

// exemplars returns the sample lines of an OpenMetrics exposition that carry an exemplar.
func exemplars(t *testing.T, openMetrics string) []exemplarLine {
	t.Helper()
	parseLabels := func(s string) map[string]string {
		m := map[string]string{}
		for _, kv := range labelRE.FindAllStringSubmatch(s, -1) {
			m[kv[1]] = kv[2]
		}
		return m
	}
	var out []exemplarLine
	for _, line := range strings.Split(openMetrics, "\n") {
		if !strings.Contains(line, " # {") {
			continue
		}
		m := exemplarRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("unparsable exemplar line %q", line)
			continue
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Errorf("exemplar value of %q: %v", line, err)
		}
		out = append(out, exemplarLine{series: m[1], labels: parseLabels(m[2]), exLabel: parseLabels(m[3]), exValue: v})
	}
	return out
}

// TestSampledRequestIsAnExemplar: GET /metrics asked for OpenMetrics shows the trace id of a
// request whose span was sampled as an exemplar of its latency buckets (global and per tenant),
// and that trace's server span was exported; an unsampled request leaves no exemplar, and the
// Prometheus text format carries none.
func TestSampledRequestIsAnExemplar(t *testing.T) {
	s := served(t, true)
	found := map[string]bool{}
	for _, e := range exemplars(t, s.openMetrics) {
		id := e.exLabel[telemetry.ExemplarTraceID]
		if len(e.exLabel) != 1 || len(id) != 32 {
			t.Errorf("%s%v exemplar labels %v, want only a 32-digit %s", e.series, e.labels, e.exLabel, telemetry.ExemplarTraceID)
		}
		if id == unsampledTraceID || e.labels["route"] == unsampledRoute {
			t.Errorf("%s%v has exemplar %v from an unsampled request", e.series, e.labels, e.exLabel)
		}
		if id == sampledTraceID && e.labels["route"] == sampledRoute {
			found[e.series] = true
			if e.exValue <= 0 || e.exValue > 60 {
				t.Errorf("%s%v exemplar value %v, want the request's duration in seconds", e.series, e.labels, e.exValue)
			}
			if e.series == "chat_tenant_http_request_duration_seconds_bucket" && e.labels["tenant"] != shopTenant {
				t.Errorf("%s exemplar of tenant %q, want %q", e.series, e.labels["tenant"], shopTenant)
			}
		}
	}
	for _, series := range []string{"chat_http_request_duration_seconds_bucket", "chat_tenant_http_request_duration_seconds_bucket"} {
		if !found[series] {
			t.Errorf("no %s{route=%q} bucket has exemplar trace_id=%q in the OpenMetrics scrape", series, sampledRoute, sampledTraceID)
		}
	}
	// Commands the traced requests ran carry trace ids too.
	backend := 0
	for _, e := range exemplars(t, s.openMetrics) {
		if strings.HasPrefix(e.series, "chat_mongodb_command_duration_seconds") || strings.HasPrefix(e.series, "chat_redis_command_duration_seconds") {
			backend++
		}
	}
	if backend == 0 {
		t.Error("no MongoDB or Redis latency bucket has an exemplar, though every request without a parent was sampled")
	}

	var server bool
	for _, span := range s.spans {
		if span.SpanContext.TraceID().String() == sampledTraceID && span.SpanKind == trace.SpanKindServer {
			server = true
		}
		if span.SpanContext.TraceID().String() == unsampledTraceID {
			t.Errorf("span %q of the unsampled trace was exported", span.Name)
		}
	}
	if !server {
		t.Errorf("no server span of trace %s was exported: the exemplar would lead nowhere", sampledTraceID)
	}
	if strings.Contains(s.text, " # {") {
		t.Error("GET /metrics as Prometheus text carries exemplars, which that format cannot")
	}
}

func TestTenantsChangedCreatesAndDeletesTenantSeries(t *testing.T) {
	for _, tenantLabel := range []bool{true, false} {
		t.Run(fmt.Sprintf("tenant label %v", tenantLabel), func(t *testing.T) {
			m := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: tenantLabel})
			m.TenantsChanged([]string{"a-shop", "b-shop"}, nil)
			m.ObserveRequest(context.Background(), "GET", "/api/v1/chat/list", 200, time.Millisecond, "b-shop")
			m.RateLimited("b-shop", "requests")
			families := MustGather(t, m)
			for _, id := range []string{"a-shop", "b-shop"} {
				for _, o := range []string{"ok", "error"} {
					if metricWith(families, "chat_jwks_fetches_total", map[string]string{"tenant": id, "outcome": o}) == nil {
						t.Errorf(`chat_jwks_fetches_total{tenant=%q,outcome=%q} not created with the tenant`, id, o)
					}
				}
				if got := metricWith(families, "chat_tenant_http_requests_total", map[string]string{"tenant": id, "status_class": "5xx"}) != nil; got != tenantLabel {
					t.Errorf(`chat_tenant_http_requests_total{tenant=%q,status_class="5xx"} exists = %v, want %v`, id, got, tenantLabel)
				}
			}

			m.TenantsChanged(nil, []string{"b-shop"})
			families = MustGather(t, m)
			for _, name := range []string{"chat_jwks_fetches_total", "chat_tenant_http_requests_total", "chat_tenant_http_request_duration_seconds", "chat_rate_limit_rejections_total"} {
				if got := metricWith(families, name, map[string]string{"tenant": "b-shop"}); got != nil {
					t.Errorf("%s keeps series of the removed tenant b-shop: %v", name, got.GetLabel())
				}
			}
			if metricWith(families, "chat_jwks_fetches_total", map[string]string{"tenant": "a-shop"}) == nil {
				t.Error("removing b-shop deleted a-shop's series")
			}
		})
	}
}

// TestWebhookMetrics: the webhook sender's observations land in their families; every outcome
// of the attempts counter exists at 0 from the start, so the first dead delivery is an increase
// that the dead-delivery alert's increase() sees; the queue gauges hold the last poll.
func TestWebhookMetrics(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{})
	families := MustGather(t, m)
	for _, o := range []string{"delivered", "retry", "dead"} {
		if metricWith(families, "chat_webhook_attempts_total", map[string]string{"outcome": o}) == nil {
			t.Errorf(`chat_webhook_attempts_total{outcome=%q} does not exist before the first attempt`, o)
		}
	}
	for _, name := range []string{"chat_webhook_queue_due", "chat_webhook_queue_lateness_seconds", "chat_webhook_fanned_out_total"} {
		if families[name] == nil {
			t.Errorf("GET /metrics has no family %s before the first poll", name)
		}
	}

	m.WebhookFannedOut(3)
	m.WebhookFannedOut(0)
	m.WebhookAttempt("delivered", 40*time.Millisecond)
	m.WebhookAttempt("retry", 10*time.Second) // a receiver that timed out
	m.WebhookAttempt("retry", time.Second)
	m.WebhookAttempt("dead", 5*time.Millisecond)
	m.WebhookQueue(7, 90*time.Second)
	m.WebhookQueue(2, 1500*time.Millisecond) // the last poll wins
	families = MustGather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"chat_webhook_fanned_out_total", nil, 3},
		{"chat_webhook_attempts_total", map[string]string{"outcome": "delivered"}, 1},
		{"chat_webhook_attempts_total", map[string]string{"outcome": "retry"}, 2},
		{"chat_webhook_attempts_total", map[string]string{"outcome": "dead"}, 1},
		{"chat_webhook_queue_due", nil, 2},
		{"chat_webhook_queue_lateness_seconds", nil, 1.5},
	} {
		if got := value(families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	retry := metricWith(families, "chat_webhook_attempt_duration_seconds", map[string]string{"outcome": "retry"}).GetHistogram()
	if retry.GetSampleCount() != 2 || retry.GetSampleSum() != 11 {
		t.Errorf("chat_webhook_attempt_duration_seconds{outcome=retry} count %d sum %v, want 2 and 11", retry.GetSampleCount(), retry.GetSampleSum())
	}
	// A timed-out attempt (CHAT_WEBHOOK_TIMEOUT, 10 s by default, at most 30 s) falls in a bucket.
	for _, b := range retry.GetBucket() {
		if b.GetUpperBound() == 10 && b.GetCumulativeCount() != 2 {
			t.Errorf("bucket le=10 holds %d retries, want both", b.GetCumulativeCount())
		}
	}
	if last := retry.GetBucket()[len(retry.GetBucket())-1].GetUpperBound(); last < 30 {
		t.Errorf("the last bucket is le=%v, want at least the 30 s bound of CHAT_WEBHOOK_TIMEOUT", last)
	}
}
