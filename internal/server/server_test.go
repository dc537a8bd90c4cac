package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gin-gonic/gin"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/server/servertest"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestOneTracePerListRequest shows a GET /api/v1/chat/list as one trace: the server span with
// Redis and MongoDB child spans, each carrying the tenant, none carrying the token.
func TestOneTracePerListRequest(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	file := fmt.Sprintf("id: traced-shop\nname: Traced\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", iss.URL())
	if err := os.WriteFile(filepath.Join(dir, "traced-shop.yaml"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": dir,
	}
	exporter := tracetest.NewInMemoryExporter()
	addrs := servertest.Start(t, env, server.Options{Stdout: io.Discard, SpanExporter: exporter}, 30*time.Second)
	addr := addrs.API
	api := testenv.LoadOpenAPI(t, "http://"+addr.String())

	token := iss.Token(t, "cust-1", false)
	req, _ := http.NewRequest("GET", "http://"+addr.String()+"/api/v1/chat/list", nil)
	req.Header.Set("X-Tenant-ID", "traced-shop")
	req.Header.Set("Authorization", "Bearer "+token)
	// The caller's trace continues in the service.
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if resp, body := api.Do(t, http.DefaultClient, req); resp.StatusCode != 200 {
		t.Fatalf("list = %d %s", resp.StatusCode, body)
	}

	// Write once too, so the event and cache families have traffic, then scrape /metrics.
	post, _ := http.NewRequest("POST", "http://"+addr.String()+"/api/v1/chat/start", strings.NewReader(`{"message":"hello"}`))
	post.Header.Set("X-Tenant-ID", "traced-shop")
	post.Header.Set("Authorization", "Bearer "+token)
	post.Header.Set("Content-Type", "application/json")
	if resp, body := api.Do(t, http.DefaultClient, post); resp.StatusCode != 201 {
		t.Fatalf("start = %d %s", resp.StatusCode, body)
	}
	checkMetrics(t, "http://"+addrs.Metrics.String()+"/metrics")

	var server, redis, mongo int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		server, redis, mongo = 0, 0, 0
		spans := exporter.GetSpans()
		parent := map[string]string{}
		serverID := ""
		for _, s := range spans {
			parent[s.SpanContext.SpanID().String()] = s.Parent.SpanID().String()
			if strings.HasSuffix(s.Name, "/api/v1/chat/list") {
				serverID = s.SpanContext.SpanID().String()
			}
		}
		// under reports whether span id descends from the server span.
		under := func(id string) bool {
			for i := 0; i < 20 && id != ""; i++ {
				if id = parent[id]; id == serverID {
					return true
				}
			}
			return false
		}
		for _, s := range spans {
			if s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				continue
			}
			attrs := map[string]string{}
			for _, a := range s.Attributes {
				attrs[string(a.Key)] = a.Value.String()
				if strings.Contains(a.Value.String(), token) || strings.Contains(a.Value.String(), "Bearer") {
					t.Errorf("span %q attribute %s carries the token", s.Name, a.Key)
				}
			}
			if attrs["chat.tenant.id"] != "traced-shop" {
				t.Errorf("span %q has tenant %q", s.Name, attrs["chat.tenant.id"])
			}
			child := under(s.SpanContext.SpanID().String())
			switch {
			case (attrs["db.system.name"] == "mongodb" || attrs["db.system"] == "mongodb") && child:
				mongo++
			case (attrs["db.system"] == "redis" || attrs["db.system.name"] == "redis") && child:
				redis++
			case s.Name == "GET /api/v1/chat/list" || strings.HasSuffix(s.Name, "/api/v1/chat/list"):
				server++
			}
		}
		if server == 1 && redis > 0 && mongo > 0 {
			return
		}
	}
	t.Errorf("trace has %d server span, %d redis and %d mongodb spans under it; want 1, >0, >0", server, redis, mongo)
}

// checkMetrics scrapes url and checks that every metric family operators rely on is there.
// (chat_events_delivered_total and chat_rate_limit_rejections_total appear with live events and
// rate limits; the telemetry tests check them.)
func checkMetrics(t *testing.T, url string) {
	t.Helper()
	status, body := get(t, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", url, status, body)
	}
	for _, family := range []string{
		"chat_http_requests_total", "chat_http_request_duration_seconds_bucket", "chat_tenant_http_requests_total",
		"chat_mongodb_command_duration_seconds_bucket", "chat_redis_command_duration_seconds_bucket",
		"chat_cache_requests_total", "chat_jwks_fetches_total", "chat_sse_streams_open",
		"chat_events_published_total", "chat_tenant_reloads_total", "chat_tenants_loaded",
		"chat_tenant_files_invalid", "chat_build_info", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, "\n"+family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
}

// TestMetricsHaveAListenerOfTheirOwn: /metrics answers on CHAT_METRICS_ADDR and nowhere on
// CHAT_ADDR, so whatever routes the API (an ingress sending / to it for the widget) never exposes
// the metrics; the probes stay on the API's port; shutdown closes both listeners.
func TestMetricsHaveAListenerOfTheirOwn(t *testing.T) {
	cfg := listenConfig(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc, errc := make(chan server.Addrs, 1), make(chan error, 1)
	go func() {
		errc <- server.Run(ctx, cfg, server.Options{Stdout: io.Discard, Signals: make(chan os.Signal), OnListen: func(a server.Addrs) { addrc <- a }})
	}()
	var addrs server.Addrs
	select {
	case addrs = <-addrc:
	case err := <-errc:
		t.Fatalf("Run = %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not listen within 30s")
	}
	api, metrics := "http://"+addrs.API.String(), "http://"+addrs.Metrics.String()

	for _, tt := range []struct {
		url        string
		wantStatus int
	}{
		{metrics + "/metrics", http.StatusOK},
		{api + "/metrics", http.StatusNotFound},
		{api + "/healthz", http.StatusOK},
		{metrics + "/healthz", http.StatusNotFound},
		{metrics + "/api/v1/chat/list", http.StatusNotFound},
	} {
		if status, body := get(t, tt.url); status != tt.wantStatus {
			t.Errorf("GET %s = %d %.200s, want %d", tt.url, status, body, tt.wantStatus)
		}
	}
	if _, body := get(t, metrics+"/metrics"); !strings.Contains(body, "\nchat_build_info") {
		t.Errorf("GET /metrics on CHAT_METRICS_ADDR lacks chat_build_info:\n%.300s", body)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after shutdown = %v, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of shutdown")
	}
	for _, a := range []net.Addr{addrs.API, addrs.Metrics} {
		if c, err := net.Dial("tcp", a.String()); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after shutdown", a)
		}
	}
}

// TestBusyMetricsPortStopsTheStart: a CHAT_METRICS_ADDR another process holds is an error at
// start that names the variable, not a service running without metrics.
func TestBusyMetricsPortStopsTheStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := listenConfig(t, busy.Addr().String())
	err = server.Run(context.Background(), cfg, server.Options{Stdout: io.Discard, Signals: make(chan os.Signal)})
	if err == nil || !strings.Contains(err.Error(), "CHAT_METRICS_ADDR") {
		t.Errorf("Run with CHAT_METRICS_ADDR %s taken = %v, want an error naming CHAT_METRICS_ADDR", busy.Addr(), err)
	}
}

// listenConfig returns the configuration of a service on a free port of 127.0.0.1, its metrics
// on metricsAddr, with a MongoDB database and a Redis of its own and no tenants.
func listenConfig(t *testing.T, metricsAddr string) config.Config {
	t.Helper()
	uri, database := testenv.MustMongo(t)
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_METRICS_ADDR": metricsAddr, "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": testenv.StartRedis(t).URL(), "CHAT_TENANTS_DIR": t.TempDir(), "OTEL_SDK_DISABLED": "true",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// get sends a GET of url and returns the status and body of the answer.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUntracedRequestsKeepTheCallersTraceID: with tracing off the service creates no spans,
// but the access log still names the trace the caller propagated.
func TestUntracedRequestsKeepTheCallersTraceID(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": t.TempDir(), "OTEL_SDK_DISABLED": "true",
	}
	logs := &syncBuffer{}
	addr := runServer(t, env, server.Options{Stdout: logs})
	api := testenv.LoadOpenAPI(t, "http://"+addr.String())
	req, _ := http.NewRequest("GET", "http://"+addr.String()+"/api/v1/chat/list", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if resp, body := api.Do(t, http.DefaultClient, req); resp.StatusCode != http.StatusNotFound {
		t.Errorf("list without a tenant = %d %s, want 404", resp.StatusCode, body)
	}

	// Headers are bounded at 32 KiB, not net/http's 1 MiB. (net/http answers this in plain text
	// before any handler runs, so it is not an answer of the API the document describes.)
	big, _ := http.NewRequest("GET", "http://"+addr.String()+"/healthz", nil)
	big.Header.Set("X-Padding", strings.Repeat("x", 40<<10))
	if resp, err := http.DefaultClient.Do(big); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 KiB of headers: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no access log line with the caller's trace id:\n%s", logs.String())
		}
	}
}

// runServer runs the service with the environment env and options o until the test ends, and
// returns the address it listens on.
func runServer(t *testing.T, env map[string]string, o server.Options) net.Addr {
	t.Helper()
	return servertest.Run(t, env, o, 30*time.Second)
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // as the binaries' main sets it (server.SetProcessGlobals)
	os.Exit(m.Run())
}
