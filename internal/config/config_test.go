package config

import (
	"fmt"
	"net/netip"
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
	if c.Addr != ":8080" || c.MetricsAddr != ":9090" || c.MongoDatabase != "supportchat" || c.TenantsDir != "./tenants" || c.PresenceTTL != time.Minute || c.MaxBodyBytes != 65536 || c.CacheLocalBytes != 32<<20 || !c.MetricsTenantLabel || c.RedisMode != "single" || c.WebhookTimeout != 10*time.Second {
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
		"CHAT_CACHE_LOCAL_BYTES":    "-1",
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

func TestLogURLKeepsOnlySchemeHostsAndDatabase(t *testing.T) {
	for raw, want := range map[string]string{
		"mongodb://app:s3cret@db1:27017,db2:27017/chat?authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:tok3n": "mongodb://db1:27017,db2:27017/chat",
		"mongodb+srv://u:p@cluster0.example.net/?tlsCertificateKeyFilePassword=k3y":                                      "mongodb+srv://cluster0.example.net/",
		"redis://:hunter2@node1:6379?addr=node2:6379&addr=node3:6379&password=x":                                         "redis://node1:6379,node2:6379,node3:6379",
		"rediss://default:pw@cache:6380/2":                                                                               "rediss://cache:6380/2",
		"::not a url":                                                                                                    "(unparsable)",
	} {
		if got := logURL(raw); got != want {
			t.Errorf("logURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestStringMasksSecrets(t *testing.T) {
	env := map[string]string{"CHAT_MONGODB_URI": "mongodb://app:s3cret@db:27017/?authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:tok3n", "CHAT_REDIS_URL": "redis://:hunter2@cache:6379/0"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "hunter2", "tok3n", "app"} {
		if strings.Contains(c.String(), secret) {
			t.Errorf("String() leaks %q: %s", secret, c.String())
		}
	}
}

func TestLoadRedisMode(t *testing.T) {
	const clusterURL = "redis://:hunter2@node1:6379?addr=node2:6379&addr=node3:6379"
	tests := []struct {
		name    string
		mode    string
		url     string
		wantErr string // the variable the error must name; empty for none
	}{
		{"a single server by default", "", "redis://cache:6379/0", ""},
		{"a single server", "single", "redis://cache:6379/0", ""},
		{"a cluster", "cluster", clusterURL, ""},
		{"a cluster of one seed node", "cluster", "rediss://node1:6379", ""},
		{"a cluster at a URL that is not Redis", "cluster", "http://node1:6379", "CHAT_REDIS_URL"},
		{"a cluster URL with an unknown option", "cluster", "redis://node1:6379?nodes=node2:6379", "CHAT_REDIS_URL"},
		{"an unknown mode", "sentinel", "redis://cache:6379/0", "CHAT_REDIS_MODE"},
		{"a mode in capitals", "CLUSTER", clusterURL, "CHAT_REDIS_MODE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"CHAT_REDIS_MODE": tt.mode, "CHAT_REDIS_URL": tt.url}
			c, err := Load(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Load(mode %q, url %q) error = %v, want one naming %s", tt.mode, tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(mode %q, url %q) error = %v, want nil", tt.mode, tt.url, err)
			}
			want := tt.mode
			if want == "" {
				want = "single"
			}
			if c.RedisMode != want {
				t.Errorf("RedisMode = %q, want %q", c.RedisMode, want)
			}
			if s := c.String(); !strings.Contains(s, "redis_mode="+want) || strings.Contains(s, "hunter2") {
				t.Errorf("String() = %s, want redis_mode=%s and no password", s, want)
			}
		})
	}
}

// TestConfigTable keeps docs/OPERATIONS.md's variable table equal to Vars.
func TestConfigTable(t *testing.T) {
	raw, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "<!-- config-table:start -->")
	end := strings.Index(readme, "<!-- config-table:end -->")
	if start < 0 || end < start {
		t.Fatal("docs/OPERATIONS.md lacks the config-table markers")
	}
	var want strings.Builder
	want.WriteString("| variable | default | what it sets |\n|---|---|---|\n")
	for _, v := range Vars() {
		def := "`" + v.Default + "`"
		if v.Default == "" {
			def = "(none)"
		}
		fmt.Fprintf(&want, "| `%s` | %s | %s |\n", v.Name, def, v.Help)
	}
	got := strings.TrimSpace(readme[start+len("<!-- config-table:start -->") : end])
	if got != strings.TrimSpace(want.String()) {
		t.Errorf("docs/OPERATIONS.md configuration table is out of date; want:\n%s", want.String())
	}
}

func TestLoadLimits(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Limits
		wantErr []string // the variables the error must name; none for no error
	}{
		{"the defaults of PRODUCT.md", nil, Limits{RequestsPerMinute: 600, WritesPerMinute: 60, EventStreams: 5, TenantRequestsPerSecond: 1000, TenantEventStreams: 2000}, nil},
		{"0 turns every limit off", map[string]string{
			"CHAT_LIMITS_REQUESTS_PER_MINUTE": "0", "CHAT_LIMITS_WRITES_PER_MINUTE": "0",
			"CHAT_LIMITS_EVENT_STREAMS": "0", "CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND": "0",
			"CHAT_LIMITS_TENANT_EVENT_STREAMS": "0",
		}, Limits{}, nil},
		{"other values", map[string]string{"CHAT_LIMITS_REQUESTS_PER_MINUTE": "1200", "CHAT_LIMITS_EVENT_STREAMS": " 2 "},
			Limits{RequestsPerMinute: 1200, WritesPerMinute: 60, EventStreams: 2, TenantRequestsPerSecond: 1000, TenantEventStreams: 2000}, nil},
		{"negative, fractional, words and too large are refused", map[string]string{
			"CHAT_LIMITS_REQUESTS_PER_MINUTE": "-1", "CHAT_LIMITS_WRITES_PER_MINUTE": "1.5",
			"CHAT_LIMITS_EVENT_STREAMS": "many", "CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND": "10000001",
			"CHAT_LIMITS_TENANT_EVENT_STREAMS": "-2", "CHAT_MAX_EVENT_STREAMS": "lots",
		}, Limits{}, []string{"CHAT_LIMITS_REQUESTS_PER_MINUTE", "CHAT_LIMITS_WRITES_PER_MINUTE", "CHAT_LIMITS_EVENT_STREAMS", "CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND", "CHAT_LIMITS_TENANT_EVENT_STREAMS", "CHAT_MAX_EVENT_STREAMS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				for _, name := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), name) {
						t.Errorf("Load(%v) error = %v, want one naming %s", tt.env, err, name)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%v) error = %v, want nil", tt.env, err)
			}
			if c.Limits != tt.want {
				t.Errorf("Limits = %+v, want %+v", c.Limits, tt.want)
			}
			if want := fmt.Sprintf("limits_requests_per_minute=%d ", tt.want.RequestsPerMinute); !strings.Contains(c.String(), want) {
				t.Errorf("String() = %s, want it to hold %q", c.String(), want)
			}
		})
	}
}

func TestLoadAllowedNetworks(t *testing.T) {
	for _, tt := range []struct {
		name string
		get  func(Config) []netip.Prefix
		log  string // the key of String()
	}{
		{"CHAT_ISSUER_ALLOWED_NETWORKS", func(c Config) []netip.Prefix { return c.IssuerAllowedNetworks }, "issuer_allowed_networks"},
		{"CHAT_WEBHOOK_ALLOWED_NETWORKS", func(c Config) []netip.Prefix { return c.WebhookAllowedNetworks }, "webhook_allowed_networks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(mapEnv(map[string]string{tt.name: " 10.1.2.3/8, fd00::/8 ,"}))
			if got := tt.get(c); err != nil || len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "fd00::/8" {
				t.Errorf("Load = %v, %v; want 10.0.0.0/8 and fd00::/8", got, err)
			}
			if want := tt.log + "=[10.0.0.0/8 fd00::/8] "; !strings.Contains(c.String(), want) {
				t.Errorf("String() = %s, want it to hold %q", c.String(), want)
			}
			if _, err := Load(mapEnv(map[string]string{tt.name: "10.0.0.0"})); err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("a bare address: %v, want an error naming %s", err, tt.name)
			}
			if c, err := Load(mapEnv(nil)); err != nil || len(tt.get(c)) != 0 {
				t.Errorf("default: %v, %v; want none", tt.get(c), err)
			}
		})
	}
}

func TestLoadWebhookTimeout(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  time.Duration // 0 when Load must fail
	}{
		{"about 10 seconds by default", "", 10 * time.Second},
		{"the shortest bound", "1s", time.Second},
		{"the longest bound", "30s", 30 * time.Second},
		{"in between", "2500ms", 2500 * time.Millisecond},
		{"too short to reach a receiver", "999ms", 0},
		{"long enough to hold a worker too long", "31s", 0},
		{"zero", "0s", 0},
		{"not a duration", "ten", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(mapEnv(map[string]string{"CHAT_WEBHOOK_TIMEOUT": tt.value}))
			if tt.want == 0 {
				if err == nil || !strings.Contains(err.Error(), "CHAT_WEBHOOK_TIMEOUT") {
					t.Errorf("Load(CHAT_WEBHOOK_TIMEOUT=%q) error = %v, want one naming CHAT_WEBHOOK_TIMEOUT", tt.value, err)
				}
				return
			}
			if err != nil || c.WebhookTimeout != tt.want {
				t.Errorf("Load(CHAT_WEBHOOK_TIMEOUT=%q) = %s, %v; want %s, nil", tt.value, c.WebhookTimeout, err, tt.want)
			}
			if want := "webhook_timeout=" + tt.want.String() + " "; !strings.Contains(c.String(), want) {
				t.Errorf("String() = %s, want it to hold %q", c.String(), want)
			}
		})
	}
}

func TestLoadMetricsAddr(t *testing.T) {
	tests := []struct {
		name    string
		api     string // CHAT_ADDR; empty for the default
		metrics string // CHAT_METRICS_ADDR; empty for the default
		want    string // MetricsAddr; empty when Load must fail
	}{
		{"a port of its own by default", "", "", ":9090"},
		{"loopback only", "", "127.0.0.1:9091", "127.0.0.1:9091"},
		{"the same port on another address", "10.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"any free port for both", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"},
		{"the API's listener", "", ":8080", ""},
		{"the API's listener, spelled out", "127.0.0.1:9090", "127.0.0.1:9090", ""},
		{"every address on the API's port", "127.0.0.1:8080", "0.0.0.0:8080", ""},
		{"the API's port on every IPv6 address", "[::]:9090", "", ""},
		{"no port", "", "localhost", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"CHAT_ADDR": tt.api, "CHAT_METRICS_ADDR": tt.metrics}
			c, err := Load(mapEnv(env))
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "CHAT_METRICS_ADDR") {
					t.Errorf("Load(%v) error = %v, want one naming CHAT_METRICS_ADDR", env, err)
				}
				return
			}
			if err != nil || c.MetricsAddr != tt.want {
				t.Errorf("Load(%v) = %q, %v; want %q, nil", env, c.MetricsAddr, err, tt.want)
			}
			if !strings.Contains(c.String(), "metrics_addr="+tt.want+" ") {
				t.Errorf("String() = %s, want metrics_addr=%s", c.String(), tt.want)
			}
		})
	}
	if _, err := Load(mapEnv(map[string]string{"CHAT_ADDR": "8080"})); err == nil || !strings.Contains(err.Error(), "CHAT_ADDR") {
		t.Errorf("CHAT_ADDR 8080: %v, want an error naming CHAT_ADDR", err)
	}
}

// mapEnv returns a getenv reading env.
func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestLoadCacheLocalBytes(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  int64
	}{{"0", 0}, {"1048576", 1 << 20}} {
		c, err := Load(mapEnv(map[string]string{"CHAT_CACHE_LOCAL_BYTES": tt.value}))
		if err != nil || c.CacheLocalBytes != tt.want {
			t.Errorf("CHAT_CACHE_LOCAL_BYTES=%s: %d, %v; want %d", tt.value, c.CacheLocalBytes, err, tt.want)
		}
	}
}

func TestLoadAuditRetention(t *testing.T) {
	c, err := Load(func(string) string { return "" })
	if err != nil || c.AuditRetention != 400*24*time.Hour {
		t.Errorf("default CHAT_AUDIT_RETENTION = %v (%v), want 400 days", c.AuditRetention, err)
	}
	c, err = Load(func(k string) string { return map[string]string{"CHAT_AUDIT_RETENTION": "720h"}[k] })
	if err != nil || c.AuditRetention != 30*24*time.Hour {
		t.Errorf("CHAT_AUDIT_RETENTION=720h: %v (%v)", c.AuditRetention, err)
	}
	for _, bad := range []string{"400d", "0s", "-1h", "forever"} {
		_, err := Load(func(k string) string { return map[string]string{"CHAT_AUDIT_RETENTION": bad}[k] })
		if err == nil || !strings.Contains(err.Error(), "CHAT_AUDIT_RETENTION") {
			t.Errorf("CHAT_AUDIT_RETENTION=%s: error %v, want one naming it", bad, err)
		}
	}
}
