package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load(func(string) string { return "" })
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if c.Addr != ":8080" || c.MongoDatabase != "supportchat" || c.TenantsDir != "./tenants" || c.PresenceTTL != time.Minute || c.MaxBodyBytes != 65536 || !c.MetricsTenantLabel {
		t.Errorf("defaults = %+v", c)
	}
}

func TestLoadReportsEveryBadVariable(t *testing.T) {
	env := map[string]string{
		"CHAT_PRESENCE_TTL":         "soon",
		"CHAT_LOG_LEVEL":            "loud",
		"CHAT_MAX_BODY_BYTES":       "12",
		"CHAT_MONGODB_URI":          "postgres://x",
		"CHAT_REDIS_URL":            "http://x",
		"CHAT_MONGODB_DATABASE":     "a.b",
		"CHAT_METRICS_TENANT_LABEL": "maybe",
	}
	_, err := Load(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("Load() = nil error for bad variables")
	}
	for name := range env {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestStringMasksSecrets(t *testing.T) {
	env := map[string]string{"CHAT_MONGODB_URI": "mongodb://app:s3cret@db:27017/?authSource=admin", "CHAT_REDIS_URL": "redis://:hunter2@cache:6379/0"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "hunter2"} {
		if strings.Contains(c.String(), secret) {
			t.Errorf("String() leaks %q: %s", secret, c.String())
		}
	}
}

// TestREADMEConfigTable keeps the README's variable table equal to Vars.
func TestREADMEConfigTable(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "<!-- config-table:start -->")
	end := strings.Index(readme, "<!-- config-table:end -->")
	if start < 0 || end < start {
		t.Fatal("README.md lacks the config-table markers")
	}
	var want strings.Builder
	want.WriteString("| variable | default | what it sets |\n|---|---|---|\n")
	for _, v := range Vars() {
		fmt.Fprintf(&want, "| `%s` | `%s` | %s |\n", v.Name, v.Default, v.Help)
	}
	got := strings.TrimSpace(readme[start+len("<!-- config-table:start -->") : end])
	if got != strings.TrimSpace(want.String()) {
		t.Errorf("README.md configuration table is out of date; want:\n%s", want.String())
	}
}
