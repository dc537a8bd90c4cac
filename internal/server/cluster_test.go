package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestRunsOnARedisCluster starts the service with CHAT_REDIS_MODE=cluster on a three-node Redis
// Cluster: it is ready, not degraded, and an admin can go online (presence writes a tenant's
// keys and the shared lapse queue, which live on different slots).
func TestRunsOnARedisCluster(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	cluster := testenv.StartRedisCluster(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	file := fmt.Sprintf("id: cluster-shop\nname: Cluster\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", iss.URL())
	if err := os.WriteFile(filepath.Join(dir, "cluster-shop.yaml"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_MODE": "cluster", "CHAT_REDIS_URL": cluster.URL(), "CHAT_TENANTS_DIR": dir,
	}
	base := "http://" + runServer(t, env, server.Options{Stdout: io.Discard}).String()
	client := &http.Client{Timeout: 30 * time.Second}
	api := testenv.LoadOpenAPI(t, base)

	// Readiness pings Redis under a short deadline; on a loaded machine the first may miss.
	var status, body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		status, body = readiness(t, api, client, base)
		if status == "ready" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status != "ready" {
		t.Fatalf("GET /readyz status = %q, want ready; body %s", status, body)
	}

	req, _ := http.NewRequest("PUT", base+"/api/v1/chat/presence", strings.NewReader(`{"status":"online"}`))
	req.Header.Set("X-Tenant-ID", "cluster-shop")
	req.Header.Set("Authorization", "Bearer "+iss.Token(t, "admin-1", true))
	req.Header.Set("Content-Type", "application/json")
	resp, b := api.Do(t, client, req)
	if resp.StatusCode/100 != 2 {
		t.Errorf("PUT /api/v1/chat/presence = %d %s, want 2xx", resp.StatusCode, b)
	}
}

// readiness returns the status field of GET /readyz and the whole body, checked against
// api/openapi.yaml.
func readiness(t *testing.T, api *testenv.OpenAPI, client *http.Client, base string) (status, body string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/readyz", nil)
	_, b := api.Do(t, client, req)
	var r struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(b, &r)
	return r.Status, string(b)
}
