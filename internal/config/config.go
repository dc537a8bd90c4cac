// Package config reads the service's configuration from the environment.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is everything chatd reads from its environment. The OTEL_* variables are read by the
// OpenTelemetry SDK itself.
type Config struct {
	// Addr is the listen address of the API and the health probes (CHAT_ADDR).
	Addr string
	// MetricsAddr is the listen address of /metrics, a listener of its own so that whatever
	// routes the API never exposes the metrics (CHAT_METRICS_ADDR). It must not be Addr.
	MetricsAddr string
	// MongoURI and MongoDatabase locate the record (CHAT_MONGODB_URI, CHAT_MONGODB_DATABASE).
	MongoURI      string
	MongoDatabase string
	// RedisURL locates the cache and presence/event bus (CHAT_REDIS_URL).
	RedisURL string
	// RedisMode is "single" for one Redis server or "cluster" for a Redis Cluster, whose RedisURL
	// is go-redis's cluster URL, redis://node1:6379?addr=node2:6379&addr=node3:6379 (CHAT_REDIS_MODE).
	RedisMode string
	// TenantsDir holds the tenant files (CHAT_TENANTS_DIR).
	TenantsDir string
	// LogLevel is debug, info, warn or error (CHAT_LOG_LEVEL).
	LogLevel slog.Level
	// PresenceTTL is how long an admin stays online without a heartbeat (CHAT_PRESENCE_TTL).
	PresenceTTL time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered (CHAT_IDEMPOTENCY_TTL).
	IdempotencyTTL time.Duration
	// AuditRetention is how long entries of the audit trail are kept (CHAT_AUDIT_RETENTION).
	AuditRetention time.Duration
	// OIDCTimeout bounds one discovery or JWKS fetch of a tenant's issuer (CHAT_OIDC_TIMEOUT).
	OIDCTimeout time.Duration
	// IssuerAllowedNetworks are the networks beyond the public internet that fetches from the
	// tenants' issuers may reach, such as an in-cluster identity provider
	// (CHAT_ISSUER_ALLOWED_NETWORKS); an issuer configured on loopback may always be fetched
	// from loopback.
	IssuerAllowedNetworks []netip.Prefix
	// WebhookAllowedNetworks are the networks beyond the public internet that webhook
	// deliveries may reach, such as a receiver inside the cluster
	// (CHAT_WEBHOOK_ALLOWED_NETWORKS); an endpoint's URL may be http only into them.
	WebhookAllowedNetworks []netip.Prefix
	// WebhookTimeout bounds one webhook delivery attempt, from connecting to reading the
	// response (CHAT_WEBHOOK_TIMEOUT), so a slow receiver holds a worker only that long.
	WebhookTimeout time.Duration
	// MongoTimeout bounds one database operation (CHAT_MONGODB_TIMEOUT).
	MongoTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted; larger ones get 413 (CHAT_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// MaxEventStreams bounds the event streams one replica serves at once; more get 503
	// (CHAT_MAX_EVENT_STREAMS). 0 turns the bound off.
	MaxEventStreams int
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM (CHAT_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// CacheLocalBytes bounds the in-process layer of the list cache in bytes; 0 turns that
	// layer off, so every cached list is read from Redis (CHAT_CACHE_LOCAL_BYTES).
	CacheLocalBytes int64
	// MetricsTenantLabel adds the tenant id as a label to per-tenant metrics
	// (CHAT_METRICS_TENANT_LABEL). Tenants come from configuration, so the label's values are
	// bounded; turn it off for deployments with very many tenants.
	MetricsTenantLabel bool
	// Limits are the default limits of every tenant (CHAT_LIMITS_*); a tenant file may
	// override each, and 0 turns one off.
	Limits Limits
}

// Limits are the default limits of PRODUCT.md; 0 turns a limit off.
type Limits struct {
	// RequestsPerMinute bounds all API calls of one caller (CHAT_LIMITS_REQUESTS_PER_MINUTE).
	RequestsPerMinute int
	// WritesPerMinute bounds the writes of one caller: start, send, read, patch, presence and
	// settings (CHAT_LIMITS_WRITES_PER_MINUTE).
	WritesPerMinute int
	// EventStreams bounds the open event streams of one caller (CHAT_LIMITS_EVENT_STREAMS).
	EventStreams int
	// TenantRequestsPerSecond bounds all API calls of one tenant, all callers together
	// (CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND).
	TenantRequestsPerSecond int
	// TenantEventStreams bounds the open event streams of one tenant's customers together,
	// across replicas (CHAT_LIMITS_TENANT_EVENT_STREAMS).
	TenantEventStreams int
}

// maxLimit bounds a configured limit, as the tenant files' limits are bounded.
const maxLimit = 10_000_000

// Var describes one environment variable: its name, its default and what it sets.
type Var struct {
	Name    string
	Default string
	Help    string
	Secret  bool
}

// Vars returns every variable Load reads, in the order docs/OPERATIONS.md documents them.
func Vars() []Var {
	return []Var{
		{"CHAT_ADDR", ":8080", "listen address of the API, /healthz and /readyz", false},
		{"CHAT_METRICS_ADDR", ":9090", "listen address of /metrics (Prometheus) alone, never routed with the API; must differ from CHAT_ADDR", false},
		{"CHAT_MONGODB_URI", "mongodb://localhost:27017", "MongoDB connection string (may hold credentials)", true},
		{"CHAT_MONGODB_DATABASE", "supportchat", "MongoDB database name", false},
		{"CHAT_REDIS_URL", "redis://localhost:6379/0", "Redis URL for presence, cache and events (may hold credentials); for a cluster, redis://node1:6379?addr=node2:6379&addr=node3:6379", true},
		{"CHAT_REDIS_MODE", "single", "single (one Redis server) or cluster (a Redis Cluster at CHAT_REDIS_URL)", false},
		{"CHAT_TENANTS_DIR", "./tenants", "folder of tenant files, re-read on change and on SIGHUP", false},
		{"CHAT_LOG_LEVEL", "info", "debug, info, warn or error", false},
		{"CHAT_PRESENCE_TTL", "60s", "how long an admin stays online or away without a heartbeat", false},
		{"CHAT_IDEMPOTENCY_TTL", "24h", "how long an Idempotency-Key is remembered", false},
		{"CHAT_AUDIT_RETENTION", "9600h", "how long entries of the audit trail (exports, erasures, retention runs, settings changes) are kept, then deleted: 400 days", false},
		{"CHAT_OIDC_TIMEOUT", "5s", "bound for one discovery or JWKS fetch of a tenant's issuer", false},
		{"CHAT_ISSUER_ALLOWED_NETWORKS", "", "comma-separated CIDRs of private networks the issuers' fetches may reach (an in-cluster IdP); only public addresses otherwise", false},
		{"CHAT_WEBHOOK_ALLOWED_NETWORKS", "", "comma-separated CIDRs of private networks webhook deliveries may reach (a receiver in the cluster), where an endpoint may also be http; only public addresses otherwise", false},
		{"CHAT_WEBHOOK_TIMEOUT", "10s", "bound for one webhook delivery attempt, from 1s to 30s", false},
		{"CHAT_MONGODB_TIMEOUT", "5s", "bound for one MongoDB operation", false},
		{"CHAT_MAX_BODY_BYTES", "65536", "largest request body; larger ones answer 413", false},
		{"CHAT_MAX_EVENT_STREAMS", "5000", "event streams one replica serves at once (about 18 KiB each); more answer 503; 0 = off", false},
		{"CHAT_SHUTDOWN_TIMEOUT", "20s", "bound for finishing in-flight requests after SIGTERM", false},
		{"CHAT_CACHE_LOCAL_BYTES", "33554432", "bytes of rendered lists each replica keeps in process (32 MiB, a quarter of the chart's memory request); 0 = off, every cached list is read from Redis", false},
		{"CHAT_METRICS_TENANT_LABEL", "true", "label per-tenant metrics with the tenant id", false},
		{"CHAT_LIMITS_REQUESTS_PER_MINUTE", "600", "API calls per minute of one caller; 0 turns the limit off", false},
		{"CHAT_LIMITS_WRITES_PER_MINUTE", "60", "writes (start, send, read, patch, presence, settings) per minute of one caller; 0 = off", false},
		{"CHAT_LIMITS_EVENT_STREAMS", "5", "open event streams of one caller; 0 = off", false},
		{"CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND", "1000", "API calls per second of one tenant, all callers together; 0 = off", false},
		{"CHAT_LIMITS_TENANT_EVENT_STREAMS", "2000", "open event streams of one tenant's customers together, across replicas (admins count only against their own limit); 0 = off", false},
	}
}

// Load reads the configuration through getenv, using the defaults of Vars for unset variables.
// It returns every invalid variable at once.
func Load(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range Vars() {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	var errs []error
	duration := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration such as 30s, got %q", name, get(name)))
		}
		return d
	}
	c := Config{
		Addr:            get("CHAT_ADDR"),
		MetricsAddr:     get("CHAT_METRICS_ADDR"),
		MongoURI:        get("CHAT_MONGODB_URI"),
		MongoDatabase:   get("CHAT_MONGODB_DATABASE"),
		RedisURL:        get("CHAT_REDIS_URL"),
		RedisMode:       get("CHAT_REDIS_MODE"),
		TenantsDir:      get("CHAT_TENANTS_DIR"),
		PresenceTTL:     duration("CHAT_PRESENCE_TTL"),
		IdempotencyTTL:  duration("CHAT_IDEMPOTENCY_TTL"),
		AuditRetention:  duration("CHAT_AUDIT_RETENTION"),
		OIDCTimeout:     duration("CHAT_OIDC_TIMEOUT"),
		MongoTimeout:    duration("CHAT_MONGODB_TIMEOUT"),
		ShutdownTimeout: duration("CHAT_SHUTDOWN_TIMEOUT"),
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("CHAT_LOG_LEVEL"))); err != nil {
		errs = append(errs, fmt.Errorf("CHAT_LOG_LEVEL: want debug, info, warn or error, got %q", get("CHAT_LOG_LEVEL")))
	}
	n, err := strconv.ParseInt(get("CHAT_MAX_BODY_BYTES"), 10, 64)
	if err != nil || n < 1024 {
		errs = append(errs, fmt.Errorf("CHAT_MAX_BODY_BYTES: want a byte count of at least 1024, got %q", get("CHAT_MAX_BODY_BYTES")))
	}
	c.MaxBodyBytes = n
	if c.CacheLocalBytes, err = strconv.ParseInt(get("CHAT_CACHE_LOCAL_BYTES"), 10, 64); err != nil || c.CacheLocalBytes < 0 {
		errs = append(errs, fmt.Errorf("CHAT_CACHE_LOCAL_BYTES: want a byte count, 0 for off, got %q", get("CHAT_CACHE_LOCAL_BYTES")))
	}
	if c.MetricsTenantLabel, err = strconv.ParseBool(get("CHAT_METRICS_TENANT_LABEL")); err != nil {
		errs = append(errs, fmt.Errorf("CHAT_METRICS_TENANT_LABEL: want true or false, got %q", get("CHAT_METRICS_TENANT_LABEL")))
	}
	limit := func(name string) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n < 0 || n > maxLimit {
			errs = append(errs, fmt.Errorf("%s: want a whole number from 0 (off) to %d, got %q", name, maxLimit, get(name)))
		}
		return n
	}
	c.Limits = Limits{
		RequestsPerMinute:       limit("CHAT_LIMITS_REQUESTS_PER_MINUTE"),
		WritesPerMinute:         limit("CHAT_LIMITS_WRITES_PER_MINUTE"),
		EventStreams:            limit("CHAT_LIMITS_EVENT_STREAMS"),
		TenantRequestsPerSecond: limit("CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND"),
		TenantEventStreams:      limit("CHAT_LIMITS_TENANT_EVENT_STREAMS"),
	}
	c.MaxEventStreams = limit("CHAT_MAX_EVENT_STREAMS")
	networks := func(name string) []netip.Prefix {
		var ps []netip.Prefix
		for _, cidr := range strings.Split(get(name), ",") {
			if cidr = strings.TrimSpace(cidr); cidr == "" {
				continue
			}
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want CIDRs such as 10.0.0.0/8, got %q", name, cidr))
				continue
			}
			ps = append(ps, p.Masked())
		}
		return ps
	}
	c.IssuerAllowedNetworks = networks("CHAT_ISSUER_ALLOWED_NETWORKS")
	c.WebhookAllowedNetworks = networks("CHAT_WEBHOOK_ALLOWED_NETWORKS")
	if c.WebhookTimeout = duration("CHAT_WEBHOOK_TIMEOUT"); c.WebhookTimeout > 0 && (c.WebhookTimeout < time.Second || c.WebhookTimeout > 30*time.Second) {
		errs = append(errs, fmt.Errorf("CHAT_WEBHOOK_TIMEOUT: want a duration from 1s to 30s, got %q", get("CHAT_WEBHOOK_TIMEOUT")))
	}
	errs = append(errs, listenAddrs(c.Addr, c.MetricsAddr)...)
	if u, err := url.Parse(c.MongoURI); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		errs = append(errs, errors.New("CHAT_MONGODB_URI: want a mongodb:// or mongodb+srv:// URI"))
	}
	switch c.RedisMode {
	case "single":
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			errs = append(errs, errors.New("CHAT_REDIS_URL: want a redis://, rediss:// or unix:// URL"))
		}
	case "cluster":
		if _, err := redis.ParseClusterURL(c.RedisURL); err != nil {
			errs = append(errs, errors.New("CHAT_REDIS_URL: want a cluster URL such as redis://node1:6379?addr=node2:6379&addr=node3:6379 with CHAT_REDIS_MODE=cluster"))
		}
	default:
		errs = append(errs, fmt.Errorf("CHAT_REDIS_MODE: want single or cluster, got %q", c.RedisMode))
	}
	if c.MongoDatabase == "" || strings.ContainsAny(c.MongoDatabase, "/\\. \"$") {
		errs = append(errs, fmt.Errorf("CHAT_MONGODB_DATABASE: %q is not a valid database name", c.MongoDatabase))
	}
	return c, errors.Join(errs...)
}

// listenAddrs checks CHAT_ADDR and CHAT_METRICS_ADDR: each a host:port, and not the same
// listener, which would either fail to bind or serve the metrics with the API. Port 0 (any
// free port) never collides; an empty or unspecified host (0.0.0.0, ::) binds every address,
// so it collides with any host on the same port.
func listenAddrs(api, metrics string) []error {
	apiHost, apiPort, apiErr := net.SplitHostPort(api)
	metricsHost, metricsPort, metricsErr := net.SplitHostPort(metrics)
	var errs []error
	if apiErr != nil {
		errs = append(errs, fmt.Errorf("CHAT_ADDR: want host:port such as :8080, got %q", api))
	}
	if metricsErr != nil {
		errs = append(errs, fmt.Errorf("CHAT_METRICS_ADDR: want host:port such as :9090, got %q", metrics))
	}
	if errs != nil || apiPort != metricsPort || apiPort == "0" {
		return errs
	}
	every := func(host string) bool {
		ip, err := netip.ParseAddr(host)
		return host == "" || err == nil && ip.IsUnspecified()
	}
	if apiHost == metricsHost || every(apiHost) || every(metricsHost) {
		errs = append(errs, fmt.Errorf("CHAT_METRICS_ADDR: %q is the listener of CHAT_ADDR %q; metrics need a port of their own, such as :9090", metrics, api))
	}
	return errs
}

// String returns the configuration for a start-up log line, with credentials masked.
func (c Config) String() string {
	return fmt.Sprintf("addr=%s metrics_addr=%s mongodb=%s database=%s redis=%s redis_mode=%s tenants=%s log_level=%s presence_ttl=%s idempotency_ttl=%s audit_retention=%s oidc_timeout=%s issuer_allowed_networks=%v webhook_allowed_networks=%v webhook_timeout=%s mongodb_timeout=%s max_body_bytes=%d cache_local_bytes=%d shutdown_timeout=%s metrics_tenant_label=%t max_event_streams=%d limits_requests_per_minute=%d limits_writes_per_minute=%d limits_event_streams=%d limits_tenant_requests_per_second=%d limits_tenant_event_streams=%d",
		c.Addr, c.MetricsAddr, logURL(c.MongoURI), c.MongoDatabase, logURL(c.RedisURL), c.RedisMode, c.TenantsDir, c.LogLevel, c.PresenceTTL,
		c.IdempotencyTTL, c.AuditRetention, c.OIDCTimeout, c.IssuerAllowedNetworks, c.WebhookAllowedNetworks, c.WebhookTimeout, c.MongoTimeout, c.MaxBodyBytes, c.CacheLocalBytes, c.ShutdownTimeout, c.MetricsTenantLabel, c.MaxEventStreams,
		c.Limits.RequestsPerMinute, c.Limits.WritesPerMinute, c.Limits.EventStreams, c.Limits.TenantRequestsPerSecond, c.Limits.TenantEventStreams)
}

// logURL returns what a log may say of a connection URL: its scheme, hosts and path (the
// database), never its user info or its query, which may hold credentials (a password,
// authMechanismProperties such as AWS session tokens, TLS key passwords). The addr=host:port
// nodes of a Redis Cluster URL are kept as hosts; an unparsable value is hidden whole.
func logURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(unparsable)"
	}
	hosts := []string{u.Host}
	for _, a := range u.Query()["addr"] {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && !strings.ContainsAny(a, "@/?#") {
			hosts = append(hosts, a)
		}
	}
	return u.Scheme + "://" + strings.Join(hosts, ",") + u.EscapedPath()
}
