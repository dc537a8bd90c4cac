package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/datarights"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/limits"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The two tenants of every test: their files differ in the admin claim, hours and settings.
const (
	shop    = "demo-shop"
	outdoor = "acme-outdoor"
)

// start is where every stack's clock stands at first: a Wednesday at 12:00 in Berlin (inside
// business hours).
var start = time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)

// stack is the whole service in process against a real FerretDB and a real redis-server, with
// one local OIDC issuer per tenant. Every response it gets is validated against api/openapi.yaml.
type stack struct {
	t       testing.TB
	srv     *httptest.Server
	handler http.Handler
	clock   *testenv.Clock
	issuers map[string]*testenv.Issuer
	store   *mongodb.Store
	// raw is the stack's database, for tests that look at documents themselves.
	raw *mongo.Database
	// proxy stands between the stack and MongoDB when stackOptions.proxied is set.
	proxy   *testenv.Proxy
	redis   redisServer
	rdb     redis.UniversalClient
	hub     *events.Hub
	log     *convlog.Log
	svc     *chat.Service
	api     *testenv.OpenAPI
	metrics *telemetry.Metrics
	limiter *limits.Limiter
	eraser  *datarights.Eraser
	// retention is the stack's retention sweeper, which tests run with Sweep.
	retention *datarights.Sweeper
	// group, tenantsDir, mongoURI, database and redisMode are what a replica of the stack shares
	// with it; tenants are its own replica's.
	group     *stackGroup
	redisMode string
	tenants   *tenant.Registry
	// tenantsDir holds the tenant files of tenants.
	tenantsDir string
	mongoURI   string
	database   string
}

// stackOptions vary the stack; the zero value is the usual one.
type stackOptions struct {
	// store wraps the log's store, listStore the store of lists and history, idempotency the
	// idempotency store (fault injection).
	store       func(convlog.Store) convlog.Store
	listStore   func(chat.Store) chat.Store
	idempotency func(idempotency.Store) idempotency.Store
	// erasure wraps the records the eraser deletes from.
	erasure func(datarights.Records) datarights.Records
	// proxied puts a testenv.Proxy between the stack and MongoDB (stack.proxy), which a test
	// can cut and restore.
	proxied bool
	// relayGrace is how long the log's relay leaves an entry pending to its writer (default
	// convlog.DefaultRelayGrace).
	relayGrace time.Duration
	// productionCaches keeps the service's default cache lifetimes (benchmarks); tests see
	// every settings change at once.
	productionCaches bool
	// server is the MongoDB wire server to run on; the zero value is testenv.MustMongo's.
	server *testenv.MongoServer
	// replicaOf makes the stack a second replica of another: its own service, connections and
	// HTTP server over the same database, Redis, issuers, tenants and clock.
	replicaOf *stack
	// cluster runs the stack on a three-node Redis Cluster instead of one redis-server.
	cluster bool
	// redisProxied puts a testenv.Proxy between the stack and its redis-server: stopping it
	// cuts the network and starting it restores it, the data kept (not with cluster).
	redisProxied bool
	// monitor observes the MongoDB commands of the stack's store.
	monitor *event.CommandMonitor
	// heartbeat is how often idle event streams send a comment (default 15s).
	heartbeat time.Duration
	// streamRecheck is how often open event streams verify their token again (default 10s),
	// and streamMaxAge how long they live at most (default the verifier's key set max age).
	streamRecheck, streamMaxAge time.Duration
	// eventBuffer is how far an event stream may lag before it is dropped (the hub's default).
	eventBuffer int
	// limits are the configured limits (CHAT_LIMITS_*); the zero value turns them all off, so
	// only the tests about limits meet them.
	limits limits.Config
	// tenantYAML is appended to a tenant's file, by tenant id (a limits: section).
	tenantYAML map[string]string
	// boundTenants adds the tenants bound-a and bound-b, which trust one issuer and are told
	// apart by oidc.required_claims (security_test.go, writeBoundTenants).
	boundTenants bool
}

// cutRedis is a redis-server behind a proxy: Stop cuts the network, Start restores it.
type cutRedis struct{ proxy *testenv.Proxy }

func (r *cutRedis) URL() string         { return "redis://" + r.proxy.Addr() + "/0" }
func (r *cutRedis) Stop(testing.TB)     { r.proxy.Cut() }
func (r *cutRedis) Start(tb testing.TB) { r.proxy.Restore() }

// redisServer is a private redis-server or Redis Cluster of a test.
type redisServer interface {
	URL() string
	Stop(tb testing.TB)
	Start(tb testing.TB)
}

// tenantFile is a tenant file with the issuer filled in.
const tenantFile = `id: %s
name: %s
oidc:
  issuer: %s
  audience: support-chat
  admin_claim: %s
  admin_values: [%s]
  name_claim: name
chat:
  away_prompt: "%s is away right now. We usually reply within a few hours."
  unassign_on_away: %t
%s`

// berlinHours are demo-shop's business hours.
const berlinHours = `  business_hours:
    timezone: Europe/Berlin
    weekly: {mon: ["09:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"], thu: ["09:00-18:00"], fri: ["09:00-17:00"]}
`

func newStack(t testing.TB, opts ...stackOptions) *stack {
	t.Helper()
	var o stackOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	s := &stack{t: t, clock: testenv.NewClock(start), issuers: map[string]*testenv.Issuer{}}
	if r := o.replicaOf; r != nil {
		s.clock, s.issuers, s.group, s.tenantsDir, s.redis, s.redisMode = r.clock, r.issuers, r.group, r.tenantsDir, r.redis, r.redisMode
		s.mongoURI, s.database = r.mongoURI, r.database
	} else {
		s.tenantsDir = t.TempDir()
		s.group = &stackGroup{want: writeTenants(t, s.tenantsDir, s.issuers, o.tenantYAML, o.boundTenants)}
		if o.cluster {
			s.redis, s.redisMode = testenv.StartRedisCluster(t), "cluster"
		} else {
			s.redis = testenv.StartRedis(t)
		}
		if o.redisProxied {
			u, err := url.Parse(s.redis.URL())
			if err != nil {
				t.Fatal(err)
			}
			s.redis = &cutRedis{proxy: testenv.StartProxy(t, u.Host)}
		}
		if o.server != nil {
			s.mongoURI, s.database = o.server.MustDatabase(t)
		} else {
			s.mongoURI, s.database = testenv.MustMongo(t)
		}
	}
	// Wide bounds: under -race on a loaded machine the embedded FerretDB is slow.
	uri := s.mongoURI
	if o.proxied {
		uri, s.proxy = testenv.ProxyMongo(t, s.mongoURI)
	}
	raw, err := mongo.Connect(options.Client().ApplyURI(s.mongoURI))
	if err != nil {
		t.Fatalf("mongo.Connect: %v", err)
	}
	t.Cleanup(func() { _ = raw.Disconnect(context.Background()) })
	s.raw = raw.Database(s.database)

	cfg := s.config(uri, o.limits)
	cacheTTL := time.Nanosecond // tests see every settings change at once
	if o.productionCaches {
		cacheTTL = 0 // the defaults
	}
	logger := debugLogger()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The service as production assembles it (server.New), with the test's clock, ids and
	// store wrappers, and no background loops but the log's relay: a test drives the support
	// clock, presence sweeps and reloads itself.
	app, err := server.New(ctx, cfg, server.Options{
		Version:      "test",
		Getenv:       func(k string) string { return map[string]string{"OTEL_SDK_DISABLED": "true"}[k] },
		Logger:       logger,
		Now:          s.clock.Now,
		NewID:        randomID,
		MongoMonitor: o.monitor,
		Wrap:         server.StoreWrappers{Log: o.store, Lists: o.listStore, Idempotency: o.idempotency, Erasure: o.erasure},
		Webhooks:     server.WebhookTuning{Off: true},
		Tuning: server.Tuning{
			CacheTTL:      cacheTTL,
			RelayGrace:    o.relayGrace,
			Heartbeat:     o.heartbeat,
			StreamRecheck: o.streamRecheck,
			StreamMaxAge:  o.streamMaxAge,
			EventBlock:    time.Second,
			EventBuffer:   o.eventBuffer,
			// A healthy Redis that a loaded machine slows down must not trip the breaker
			// (which would make presence read offline and drop events): a wide timeout.
			// Tests that stop Redis see refused connections at once, and poll for its return.
			RedisTimeout:   10 * time.Second,
			RequestTimeout: time.Minute,
			// Tests make an erasure's steps with eraser.Tick, moving the clock past its
			// settling; a job's lease, in Redis, lapses in real time.
			ErasureLease: 2 * time.Second,
		},
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(app.Close)
	if err := app.DB.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes: %v", err)
	}
	if got := app.Tenants.Status().Loaded; got != s.group.want {
		t.Fatalf("tenants: loaded %d, want %d", got, s.group.want)
	}
	s.group.tenants = append(s.group.tenants, app.Tenants)
	s.tenants, s.store, s.rdb, s.hub, s.log, s.svc = app.Tenants, app.Store, app.Redis, app.Hub, app.Log, app.Chat
	s.metrics, s.limiter, s.handler, s.eraser, s.retention = app.Metrics, app.Limiter, app.Handler, app.Eraser, app.Retention
	relayCtx, stopRelay := context.WithCancel(context.WithValue(context.Background(), relayKey{}, true))
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); s.log.Run(relayCtx) }()
	t.Cleanup(func() { stopRelay(); <-relayDone })
	s.srv = httptest.NewServer(s.handler)
	t.Cleanup(s.srv.Close)
	s.api = testenv.LoadOpenAPI(t, s.srv.URL)
	return s
}

// config returns the configuration of the stack on the MongoDB at uri, with the limits lim
// (zero: all off) and every other value chatd's default but for wider timeouts, issuers and
// webhook receivers allowed on loopback (as chatd-dev allows them), and a presence TTL of a
// minute.
func (s *stack) config(uri string, lim limits.Config) config.Config {
	s.t.Helper()
	env := map[string]string{
		"CHAT_MONGODB_URI":              uri,
		"CHAT_MONGODB_DATABASE":         s.database,
		"CHAT_MONGODB_TIMEOUT":          "30s",
		"CHAT_REDIS_URL":                s.redis.URL(),
		"CHAT_REDIS_MODE":               s.redisMode,
		"CHAT_TENANTS_DIR":              s.tenantsDir,
		"CHAT_PRESENCE_TTL":             "1m",
		"CHAT_OIDC_TIMEOUT":             "10s", // fetching a local issuer's keys may take seconds under -race
		"CHAT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
		"CHAT_LOG_LEVEL":                "debug",
	}
	if env["CHAT_REDIS_MODE"] == "" {
		env["CHAT_REDIS_MODE"] = "single"
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		s.t.Fatalf("config: %v", err)
	}
	cfg.Limits = config.Limits{
		RequestsPerMinute:       lim.RequestsPerMinute,
		WritesPerMinute:         lim.WritesPerMinute,
		EventStreams:            lim.EventStreams,
		TenantRequestsPerSecond: lim.TenantRequestsPerSecond,
		TenantEventStreams:      lim.TenantEventStreams,
	}
	cfg.MaxEventStreams = lim.ReplicaEventStreams
	return cfg
}

// stackGroup is what a stack shares with its replicas: the number of tenant files, and every
// replica's registry of them.
type stackGroup struct {
	want    int
	tenants []*tenant.Registry
}

// reloadTenants reloads the tenant files on every replica of s's group, as each replica's file
// watcher does, and returns s's result.
func (s *stack) reloadTenants() tenant.ReloadResult {
	var res tenant.ReloadResult
	for _, r := range s.group.tenants {
		if got := r.Reload(); r == s.tenants {
			res = got
		}
	}
	return res
}

// relayKey marks the context of the stack's relay, so that fault injection can tell the relay
// from requests.
type relayKey struct{}

// isRelay reports whether ctx is the stack's relay's.
func isRelay(ctx context.Context) bool { return ctx.Value(relayKey{}) != nil }

// pending returns how many entries of the log are pending, as the relay finds them.
func (s *stack) pending(tb testing.TB) int {
	tb.Helper()
	p, err := s.store.Pending(context.Background(), 10000)
	if err != nil {
		tb.Fatal(err)
	}
	return len(p)
}

// entries returns the collection of the log's entries.
func (s *stack) entries(tb testing.TB) *mongo.Collection {
	tb.Helper()
	return s.raw.Collection("entries")
}

// writeTenants writes the tests' tenant files into dir, with a local issuer per tenant put in
// issuers; extra is appended to the files by tenant id, and bound adds the tenants of
// writeBoundTenants. It returns how many tenants it wrote.
func writeTenants(t testing.TB, dir string, issuers map[string]*testenv.Issuer, extra map[string]string, bound bool) int {
	t.Helper()
	issuers[shop] = testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	issuers[outdoor] = testenv.NewIssuer(t, "support-chat", "realm_access.roles", "chat-agent")
	writeFile(t, filepath.Join(dir, shop+".yaml"), fmt.Sprintf(tenantFile, shop, "Demo Shop", issuers[shop].URL(), "roles", "support_admin", "Demo Shop", false, berlinHours)+"hosts: [support.demo-shop.example]\nweb:\n  allowed_origins: [https://www.demo-shop.example]\n"+extra[shop])
	writeFile(t, filepath.Join(dir, outdoor+".yaml"), fmt.Sprintf(tenantFile, outdoor, "Acme Outdoor", issuers[outdoor].URL(), "realm_access.roles", "chat-agent", "Acme Outdoor", true, "")+extra[outdoor])
	// A tenant whose issuer is down: nothing listens on its port.
	writeFile(t, filepath.Join(dir, "down-shop.yaml"), fmt.Sprintf(tenantFile, "down-shop", "Down Shop", "http://127.0.0.1:9", "roles", "support_admin", "Down Shop", false, ""))
	want := 3
	if bound {
		want += writeBoundTenants(t, dir, issuers)
	}
	return want
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// user is someone calling the API of one tenant.
type user struct {
	s      *stack
	tenant string
	id     string
	token  string
}

// customer returns a customer of tenant.
func (s *stack) customer(tenantID, id string) user {
	s.t.Helper()
	return user{s: s, tenant: tenantID, id: id, token: s.issuers[tenantID].Token(s.t, id, false)}
}

// admin returns an admin of tenant.
func (s *stack) admin(tenantID, id string) user {
	s.t.Helper()
	return user{s: s, tenant: tenantID, id: id, token: s.issuers[tenantID].Token(s.t, id, true)}
}

// response is an API answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// problem is a problem+json answer.
type problem struct {
	Type      string `json:"type"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field string `json:"field"`
	} `json:"errors"`
}

// Problem decodes a problem answer and checks its status.
func (r response) Problem(t *testing.T, status int) problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	r.JSON(t, &p)
	if p.RequestID == "" || p.RequestID != r.Header.Get("X-Request-ID") {
		t.Errorf("problem request_id = %q, X-Request-ID %q", p.RequestID, r.Header.Get("X-Request-ID"))
	}
	return p
}

// Slug returns the last part of a problem's type.
func (p problem) Slug() string { return p.Type[strings.LastIndex(p.Type, "/")+1:] }

// Field returns the first field a problem names.
func (p problem) Field() string {
	if len(p.Errors) == 0 {
		return ""
	}
	return p.Errors[0].Field
}

// do sends a request as u; body may be nil, a string (sent raw) or a value sent as JSON.
func (u user) do(method, path string, body any, headers ...string) response {
	u.s.t.Helper()
	h := map[string]string{"X-Tenant-ID": u.tenant}
	if u.token != "" {
		h["Authorization"] = "Bearer " + u.token
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return u.s.request(method, path, body, h)
}

// request sends a request with exactly the headers h and validates the response against the
// OpenAPI document; a request that gets no response fails the test.
// scrape returns what the replica's metrics serve; the server serves them on a listener of
// their own, never on this router.
func (s *stack) scrape() string {
	s.t.Helper()
	rec := httptest.NewRecorder()
	s.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		s.t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func (s *stack) request(method, path string, body any, h map[string]string) response {
	s.t.Helper()
	r, err := s.send(s.srv.Client(), method, path, body, h)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send sends a request with client and exactly the headers h, and validates the response
// against the OpenAPI document. Unlike request it may run on any goroutine: it reports a
// request that gets no response as an error.
func (s *stack) send(client *http.Client, method, path string, body any, h map[string]string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	s.validate(req, resp, raw)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// validate checks a response against api/openapi.yaml: an undocumented route, status, header
// or field fails the test, and so does an unknown route or method that does not answer the
// document's generic 404 or 405 problem.
func (s *stack) validate(req *http.Request, resp *http.Response, body []byte) {
	s.t.Helper()
	if err := s.api.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		s.t.Errorf("%v\nbody: %s", err, body)
	}
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // as chatd's main sets it
	openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
	os.Exit(m.Run())
}

// conversationJSON is the part of a conversation the tests look at.
type conversationJSON struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Subject      string `json:"subject"`
	Participants []struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"participants"`
	Context  map[string]*string `json:"context"`
	Assignee *string            `json:"assignee"`
	Messages []messageJSON      `json:"messages"`
	Unread   int64              `json:"unread_count"`
	Updated  string             `json:"updated_at"`
}

type messageJSON struct {
	ID     string `json:"id"`
	Body   string `json:"body"`
	Sender struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"sender"`
	CreatedAt string `json:"created_at"`
}

type supportJSON struct {
	Status               string  `json:"status"`
	Available            bool    `json:"available"`
	Reason               *string `json:"reason"`
	Prompt               *string `json:"prompt"`
	NextAvailableAt      *string `json:"next_available_at"`
	ExpectedReplySeconds *int64  `json:"expected_reply_seconds"`
}

type listJSON struct {
	Conversations []conversationJSON `json:"conversations"`
	NextCursor    *string            `json:"next_cursor"`
	Support       supportJSON        `json:"support"`
}

// list returns u's list for the query q ("" or "?limit=5...").
func (u user) list(q string) listJSON {
	u.s.t.Helper()
	r := u.do("GET", "/api/v1/chat/list"+q, nil)
	if r.Status != http.StatusOK {
		u.s.t.Fatalf("GET /chat/list%s = %d %s", q, r.Status, r.Body)
	}
	var l listJSON
	r.JSON(u.s.t, &l)
	return l
}

// start starts a conversation as customer u and returns it.
func (u user) start(message string) conversationJSON {
	u.s.t.Helper()
	r := u.do("POST", "/api/v1/chat/start", map[string]any{"message": message})
	if r.Status != http.StatusCreated {
		u.s.t.Fatalf("POST /chat/start = %d %s", r.Status, r.Body)
	}
	var c conversationJSON
	r.JSON(u.s.t, &c)
	return c
}

// send sends a message as u and returns it.
func (u user) send(convID, body string) messageJSON {
	u.s.t.Helper()
	r := u.do("POST", "/api/v1/chat/"+convID+"/messages", map[string]any{"body": body})
	if r.Status != http.StatusCreated {
		u.s.t.Fatalf("POST /chat/%s/messages = %d %s", convID, r.Status, r.Body)
	}
	var m messageJSON
	r.JSON(u.s.t, &m)
	return m
}

// setPresence sets admin u online or away.
func (u user) setPresence(status string) {
	u.s.t.Helper()
	if r := u.do("PUT", "/api/v1/chat/presence", map[string]string{"status": status}); r.Status != http.StatusOK {
		u.s.t.Fatalf("PUT /chat/presence %s = %d %s", status, r.Status, r.Body)
	}
}

// history returns the messages of a conversation as u sees them (one page of up to 100).
func (u user) history(convID string) []messageJSON {
	u.s.t.Helper()
	r := u.do("GET", "/api/v1/chat/"+convID+"/messages?limit=100", nil)
	if r.Status != http.StatusOK {
		u.s.t.Fatalf("GET /chat/%s/messages = %d %s", convID, r.Status, r.Body)
	}
	var h struct {
		Messages []messageJSON `json:"messages"`
	}
	r.JSON(u.s.t, &h)
	return h.Messages
}

// debugLogger returns the logger of the service under test: none, unless CHAT_TEST_LOG is set,
// which shows its warnings and errors on stderr (go test -v) when a test needs explaining.
func debugLogger() *slog.Logger {
	if os.Getenv("CHAT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
