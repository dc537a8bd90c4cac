package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/testenv"
)

// TestServesTheWidgetButNoDemoPages checks what production chatd serves to browsers: the
// storefronts' widget module, cacheable, and none of chatd-dev's pages (the demo storefront,
// the agent inbox, their assets, the token endpoint).
func TestServesTheWidgetButNoDemoPages(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	dir := t.TempDir()
	// The issuer is never contacted: no request here carries a token.
	if err := os.WriteFile(filepath.Join(dir, "shop-one.yaml"), []byte(tenantYAML("shop-one", "http://127.0.0.1:9")), 0o644); err != nil {
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
	var logs syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- runChatd(ctx, []string{"serve"}, func(k string) string { return env[k] }, &logs, io.Discard)
	}()
	defer func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("chatd stopped with %v, want a clean shutdown", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("chatd did not stop within 30s")
		}
	}()
	addr, _ := listeningAddr(t, &logs, errc)
	base := "http://" + addr

	do := func(method, path string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := do("GET", "/widget/v1/support-chat.js", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("GET /widget/v1/support-chat.js = %d %q, want 200 text/javascript", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "customElements.define('support-chat'") {
		t.Error("the widget module does not define <support-chat>")
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("widget headers %v: want an ETag, long-lived Cache-Control and CORS for every origin", resp.Header)
	}
	if resp, _ := do("GET", "/widget/v1/support-chat.js", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidating with the ETag = %d, want 304", resp.StatusCode)
	}

	for _, path := range []string{"/", "/inbox/", "/demo/shop.js", "/inbox/inbox.js"} {
		if resp, body := do("GET", path, nil); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "<support-chat") {
			t.Errorf("GET %s = %d, want 404: chatd serves no demo pages", path, resp.StatusCode)
		}
	}
	if resp, _ := do("POST", "/demo/token", map[string]string{"Content-Type": "application/json"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /demo/token = %d, want 404: chatd mints no tokens", resp.StatusCode)
	}
}
