package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/testenv"
)

// syncBuffer is an io.Writer safe for the server goroutine and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listeningAddr waits for the "listening" log line and returns the addresses of the API and of
// the metrics.
func listeningAddr(t *testing.T, logs *syncBuffer, errc <-chan error) (api, metrics string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			t.Fatalf("run returned early: %v\nlogs:\n%s", err, logs)
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct {
				Msg         string `json:"msg"`
				Addr        string `json:"addr"`
				MetricsAddr string `json:"metrics_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				return line.Addr, line.MetricsAddr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("chatd did not listen within 30s; logs:\n%s", logs)
	return "", ""
}

func tenantYAML(id, issuer string) string {
	return fmt.Sprintf("id: %s\nname: %s\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", id, id, issuer)
}

// get sends a GET to url and checks the answer against api/openapi.yaml.
func get(t *testing.T, api *testenv.OpenAPI, url, tenantID, token string) (int, string) {
	t.Helper()
	return send(t, api, "GET", url, tenantID, token)
}

// send sends a request without a body to url and checks the answer against api/openapi.yaml.
func send(t *testing.T, api *testenv.OpenAPI, method, url, tenantID, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if tenantID != "" {
		req.Header.Set("X-Tenant-ID", tenantID)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, body := api.Do(t, http.DefaultClient, req)
	return resp.StatusCode, string(body)
}

// TestServe runs chatd serve on :0 against real MongoDB wire protocol and Redis, and checks
// the probes, an authenticated list, a tenant hot reload, a SIGHUP reload of a change the
// watcher cannot see, and the graceful stop.
func TestServe(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop-one.yaml"), []byte(tenantYAML("shop-one", iss.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	// shop-three.yaml is a symlink to a file elsewhere (as on a mounted volume), for now a
	// directory, which the folder's reader skips: when that file changes, the folder's watcher
	// hears nothing, and only SIGHUP reloads it.
	elsewhere := filepath.Join(t.TempDir(), "shop-three.yaml")
	if err := os.Mkdir(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "shop-three.yaml")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHAT_ADDR":             "127.0.0.1:0",
		"CHAT_METRICS_ADDR":     "127.0.0.1:0",
		"CHAT_MONGODB_URI":      uri,
		"CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL":        rds.URL(),
		"CHAT_TENANTS_DIR":      dir,
		"OTEL_SDK_DISABLED":     "true",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- runChatd(ctx, []string{"serve"}, func(k string) string { return env[k] }, &logs, io.Discard)
	}()
	apiAddr, metricsAddr := listeningAddr(t, &logs, errc)
	base, metrics := "http://"+apiAddr, "http://"+metricsAddr
	api := testenv.LoadOpenAPI(t, base)

	if code, body := get(t, api, base+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, api, base+"/readyz", "", ""); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, body := get(t, api, base+"/api/v1/chat/list", "shop-one", iss.Token(t, "cust-1", false)); code != 200 || !strings.Contains(body, `"support"`) {
		t.Errorf("list = %d %s", code, body)
	}

	// Unknown paths and methods answer the document's generic problems (api.Do checks them
	// against components.responses NotFound and MethodNotAllowed).
	conv := base + "/api/v1/chat/6745c2aa0123456789abcdef"
	for _, r := range []struct {
		method, url string
		status      int
	}{
		{"GET", base + "/nope", http.StatusNotFound},
		{"GET", base + "/metrics", http.StatusNotFound}, // served on CHAT_METRICS_ADDR only
		{"GET", base + "/api/v1/nope", http.StatusNotFound},
		{"GET", base + "/api/v1/chat/list/extra", http.StatusNotFound},
		{"POST", conv + "/nope", http.StatusNotFound},
		{"DELETE", base + "/api/v1/chat/list", http.StatusMethodNotAllowed},
		{"DELETE", conv, http.StatusMethodNotAllowed},
		{"PUT", base + "/healthz", http.StatusMethodNotAllowed},
	} {
		if code, body := send(t, api, r.method, r.url, "shop-one", iss.Token(t, "cust-1", false)); code != r.status {
			t.Errorf("%s %s = %d %s, want %d", r.method, strings.TrimPrefix(r.url, base), code, body, r.status)
		}
	}

	// A new tenant file is picked up without a restart. (It has an issuer of its own: two
	// tenants trusting one issuer and audience need oidc.required_claims to tell them apart.)
	iss2 := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	if err := os.WriteFile(filepath.Join(dir, "shop-two.yaml"), []byte(tenantYAML("shop-two", iss2.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new tenant", func() bool {
		code, _ := get(t, api, base+"/api/v1/chat/list", "shop-two", iss2.Token(t, "cust-1", false))
		return code == 200
	})
	// A file that turns invalid keeps its tenant's last good version and shows in the metrics.
	if err := os.WriteFile(filepath.Join(dir, "shop-one.yaml"), []byte("id: shop-one\nname: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalid file in the metrics", func() bool {
		resp, err := http.Get(metrics + "/metrics")
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(body), "chat_tenant_files_invalid 1")
	})
	if code, body := get(t, api, base+"/api/v1/chat/list", "shop-one", iss.Token(t, "cust-1", false)); code != 200 {
		t.Errorf("list of a tenant whose file broke = %d %s, want its last good version", code, body)
	}

	// SIGHUP reloads what the watcher cannot see: shop-three's file appears behind its symlink.
	// The reload is chatd's answer to the signal (its log line says so), not the watcher's.
	iss3 := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	if err := os.Remove(elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(elsewhere, []byte(tenantYAML("shop-three", iss3.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "tenants reloaded on SIGHUP") {
		t.Fatal("a SIGHUP reload was logged before any SIGHUP")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "shop-three to be loaded on SIGHUP", func() bool {
		req, _ := http.NewRequest("GET", base+"/api/v1/chat/list", nil)
		req.Header.Set("X-Tenant-ID", "shop-three")
		req.Header.Set("Authorization", "Bearer "+iss3.Token(t, "cust-1", false))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.Contains(logs.String(), `"msg":"tenants reloaded on SIGHUP"`)
	})
	// With Redis down the list still answers (TestRedisLinesAreLogLines checks, in a process
	// of its own, where the Redis client's complaints go).
	rds.Stop(t)
	if code, body := get(t, api, base+"/api/v1/chat/list", "shop-one", iss.Token(t, "cust-1", false)); code != 200 {
		t.Errorf("list with Redis down = %d %s", code, body)
	}
	for _, secret := range []string{"Bearer ", "eyJ"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run after cancel = %v, want nil (clean shutdown)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chatd did not stop within 30s")
	}
	for i, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line %d is not JSON: %q", i+1, line)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestTenantsValidate(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := runChatd(context.Background(), []string{"tenants", "validate", "../../tenants"}, os.Getenv, &stdout, &stderr); err != nil {
		t.Fatalf("validate ../../tenants = %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "valid") || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("summary = %q, want one line", stdout.String())
	}

	// A broken copy fails with file:line.
	dir := t.TempDir()
	good, err := os.ReadFile("../../tenants/demo-shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), "audience:", "audiense:", 1)
	if err := os.WriteFile(filepath.Join(dir, "demo-shop.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	err = runChatd(context.Background(), []string{"tenants", "validate", dir}, os.Getenv, &stdout, &stderr)
	if exitCode(err, io.Discard) != 1 {
		t.Errorf("exit code = %d, want 1", exitCode(err, io.Discard))
	}
	line := 0
	for i, l := range strings.Split(string(good), "\n") {
		if strings.Contains(l, "audience:") {
			line = i + 1
			break
		}
	}
	want := fmt.Sprintf("demo-shop.yaml:%d:", line)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("errors = %q, want one at %s", stderr.String(), want)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"serv"}, {"tenants", "validate"}} {
		if code := exitCode(runChatd(context.Background(), args, os.Getenv, io.Discard, io.Discard), io.Discard); code != 2 {
			t.Errorf("chatd %v exits %d, want 2", args, code)
		}
	}
}

// TestDependencies keeps the architecture's import rules: the production binary links no
// embedded servers or development issuers, the domain imports no web framework or driver, and
// the conversation log only the domain: chat declares the log it uses, convlog implements it.
func TestDependencies(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"github.com/supportchat/supportchat/cmd/chatd", []string{"github.com/FerretDB/", "github.com/alicebob/miniredis", "/internal/devissuer", "/internal/testenv", "/internal/localdeps"}},
		{"github.com/supportchat/supportchat/internal/chat", []string{"github.com/gin-gonic/", "go.mongodb.org/", "github.com/redis/", "/internal/httpapi", "/internal/mongodb", "/internal/convlog"}},
		{"github.com/supportchat/supportchat/internal/convlog", []string{"github.com/gin-gonic/", "go.mongodb.org/", "github.com/redis/", "/internal/httpapi", "/internal/mongodb", "/internal/events"}},
		{"github.com/supportchat/supportchat/internal/tenant", []string{"github.com/gin-gonic/", "go.mongodb.org/", "github.com/redis/"}},
	}
	for _, r := range rules {
		for _, d := range deps(r.pkg) {
			for _, f := range r.forbidden {
				if strings.Contains(d, f) {
					t.Errorf("%s depends on %s", r.pkg, d)
				}
			}
		}
	}
}
