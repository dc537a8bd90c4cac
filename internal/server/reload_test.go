package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestSIGHUPReloadsWhatTheWatcherCannotSee changes a tenant file in a way the folder's watcher
// gets no event for (the file is a symlink to a file elsewhere, as on a mounted volume, and the
// file it points to changes), checks that the service has not seen it, then sends SIGHUP (on
// Options.Signals): the tenant is reloaded.
func TestSIGHUPReloadsWhatTheWatcherCannotSee(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	tenantFile := func(id string, iss *testenv.Issuer) []byte {
		return fmt.Appendf(nil, "id: %s\nname: %s\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", id, id, iss.URL())
	}
	dir, elsewhere := t.TempDir(), t.TempDir()
	first := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	if err := os.WriteFile(filepath.Join(dir, "first-shop.yaml"), tenantFile("first-shop", first), 0o644); err != nil {
		t.Fatal(err)
	}
	// late-shop.yaml points at a directory for now, which the folder's reader skips.
	target := filepath.Join(elsewhere, "late-shop.yaml")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "late-shop.yaml")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": dir, "OTEL_SDK_DISABLED": "true",
	}
	logs := &syncBuffer{}
	sighup := make(chan os.Signal, 1)
	base := "http://" + runServer(t, env, server.Options{Stdout: logs, Signals: sighup}).String()
	late := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	token := late.Token(t, "cust-1", false)
	list := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/api/v1/chat/list", nil)
		req.Header.Set("X-Tenant-ID", "late-shop")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := list(); code != http.StatusNotFound {
		t.Fatalf("list of late-shop before its file exists = %d, want 404", code)
	}

	// The file appears where the symlink points: no event in the folder.
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, tenantFile("late-shop", late), 0o644); err != nil {
		t.Fatal(err)
	}
	// The watcher reloads 200 ms after an event; five times that later, nothing was reloaded
	// (its safety-net resync comes only every minute).
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if code := list(); code != http.StatusNotFound {
			t.Fatalf("list of late-shop before SIGHUP = %d, want 404: the watcher saw the change, so this test no longer shows what SIGHUP does", code)
		}
	}

	sighup <- syscall.SIGHUP
	for deadline := time.Now().Add(30 * time.Second); list() != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("late-shop not loaded 30s after SIGHUP; logs:\n%s", logs)
		}
	}
	// Log lines are written in batches, a moment after they are logged.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), `"msg":"tenants reloaded on SIGHUP"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line of the reload on SIGHUP; logs:\n%s", logs)
		}
	}
}
