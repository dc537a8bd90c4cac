// Package stack runs Support Chat for the benchmarks under bench/: the real service
// (server.Run over HTTP on 127.0.0.1) on an embedded FerretDB with SQLite files in a temporary
// directory, a private redis-server, and a local OIDC issuer minting RS256 tokens. Unlike
// internal/testenv it needs no testing.TB, so a plain `go run` program can use it.
//
// FerretDB runs in a child process (localdeps.StartFerretDBChild): every main and TestMain that
// starts a Stack calls localdeps.ServeFerretDBChildIfAsked first. Keeping the database out of
// the process under test keeps its allocations out of -benchmem figures and its garbage out of
// the service's GC, as a real MongoDB would.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/localdeps"
	"github.com/supportchat/supportchat/internal/server"
)

// TenantID is the benchmark tenant; its admins hold AdminRole in the "roles" claim.
const (
	TenantID  = "bench-shop"
	AdminRole = "support_admin"
)

// tenantFile is the benchmark tenant: no business hours, so support is online as soon as an
// admin is, and otherwise offline with the away prompt.
const tenantFile = `id: %s
name: Bench Shop
oidc:
  issuer: %s
  audience: support-chat
  admin_claim: roles
  admin_values: [%s]
  name_claim: name
chat:
  away_prompt: "Our team is away right now. We usually reply within a few hours."
`

// Options configure Start.
type Options struct {
	// MongoURI, when set, is used instead of a FerretDB child (BENCH_MONGODB_URI in the
	// programs), with a new database that Close drops unless Database names one.
	MongoURI string
	// PostgreSQLURL, when set and MongoURI is not, runs FerretDB with its PostgreSQL backend
	// on a new database of the PostgreSQL server it names, which Close drops; FerretDB with
	// SQLite files in a temporary directory otherwise.
	PostgreSQLURL string
	// Database is the MongoDB database name. Default "bench".
	Database string
	// MongoTimeout is the service's CHAT_MONGODB_TIMEOUT, the bound of one MongoDB operation.
	// Default: the service's default (5s).
	MongoTimeout time.Duration
	// LogLevel is the service's CHAT_LOG_LEVEL. Default "info", as in production: every
	// request is logged (into Log, which keeps only warnings and errors).
	LogLevel string
	// Log receives the service's warning and error lines. Default os.Stderr.
	Log io.Writer
	// AccessLog, when set, receives every line the service logs, as production's stdout
	// would; without it the lines other than warnings and errors are dropped unwritten.
	AccessLog io.Writer
	// Limits turns the rate limits on with quotas no benchmark reaches, so every request pays
	// for its checks in Redis as in production but none is refused. Default: limits off.
	Limits bool
	// Tuning shortens the service's timings (server.Options.Tuning); zero values take the
	// production defaults.
	Tuning server.Tuning
}

// Stack is a running service with its servers.
type Stack struct {
	// URL is the service's base URL, http://127.0.0.1:port.
	URL string
	// Issuer mints the tenant's tokens.
	Issuer *devissuer.Issuer
	// MongoURI and Database locate the service's record, for seeding.
	MongoURI, Database string
	// PostgreSQLURL is FerretDB's PostgreSQL database with Options.PostgreSQLURL, else "".
	PostgreSQLURL string

	mu      sync.Mutex
	closers []func()
}

// Start starts FerretDB (unless o.MongoURI is set), redis-server, the issuer and the service,
// and returns once the service answers /readyz. Close stops everything.
func Start(ctx context.Context, o Options) (*Stack, error) {
	s := &Stack{MongoURI: o.MongoURI, Database: o.Database}
	if err := s.start(ctx, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start does the work of Start, registering with onClose whatever it started.
func (s *Stack) start(ctx context.Context, o Options) error {
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if s.Database == "" {
		s.Database = "bench"
		if s.MongoURI != "" {
			s.Database = fmt.Sprintf("bench_%d_%d", os.Getpid(), time.Now().UnixNano())
			s.onClose(func() { dropDatabase(s.MongoURI, s.Database) }) //nolint:contextcheck // runs at Close, after every request
		}
	}
	dir, err := localdeps.TempDir("supportchat-bench-")
	if err != nil {
		return err
	}
	s.onClose(func() { _ = os.RemoveAll(dir) })

	if s.MongoURI == "" {
		fo := localdeps.FerretDBOptions{SQLiteDir: filepath.Join(dir, "ferretdb"), Log: o.Log, LogLevel: slog.LevelError}
		if o.PostgreSQLURL != "" {
			dbURL, drop, err := localdeps.CreatePostgreSQLDatabase(ctx, o.PostgreSQLURL, "bench")
			if err != nil {
				return err
			}
			s.onClose(func() {
				if err := drop(); err != nil {
					fmt.Fprintln(o.Log, "bench:", err)
				}
			})
			fo.PostgreSQLURL, s.PostgreSQLURL = dbURL, dbURL
		}
		ferret, err := localdeps.StartFerretDBChild(fo)
		if err != nil {
			return fmt.Errorf("ferretdb: %w", err)
		}
		s.onClose(ferret.Close)
		s.MongoURI = ferret.URI()
	}
	redis, err := localdeps.StartRedis()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	s.onClose(redis.Stop)

	s.Issuer, err = devissuer.New(devissuer.Options{Audience: "support-chat", AdminClaim: "roles", AdminValue: AdminRole, NameClaim: "name", TokenTTL: 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	s.onClose(func() { _ = s.Issuer.Close() })

	tenants := filepath.Join(dir, "tenants")
	if err := os.MkdirAll(tenants, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tenants, TenantID+".yaml"), fmt.Appendf(nil, tenantFile, TenantID, s.Issuer.URL(), AdminRole), 0o644); err != nil {
		return err
	}

	vars := map[string]string{
		"CHAT_ADDR":             "127.0.0.1:0",
		"CHAT_METRICS_ADDR":     "127.0.0.1:0",
		"CHAT_MONGODB_URI":      s.MongoURI,
		"CHAT_MONGODB_DATABASE": s.Database,
		"CHAT_REDIS_URL":        redis.URL(),
		"CHAT_TENANTS_DIR":      tenants,
		"CHAT_LOG_LEVEL":        o.LogLevel,
	}
	if o.MongoTimeout > 0 {
		vars["CHAT_MONGODB_TIMEOUT"] = o.MongoTimeout.String()
	}
	if o.Limits {
		vars["CHAT_LIMITS_REQUESTS_PER_MINUTE"] = "10000000"
		vars["CHAT_LIMITS_WRITES_PER_MINUTE"] = "10000000"
		vars["CHAT_LIMITS_EVENT_STREAMS"] = "1000"
		vars["CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND"] = "10000000"
		vars["CHAT_LIMITS_TENANT_EVENT_STREAMS"] = "10000000"
	}
	env := Env(vars)
	cfg, err := config.Load(env)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logs := &warnings{w: o.Log, all: o.AccessLog}
	s.onClose(logs.close)
	listening := make(chan net.Addr, 1)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		done <- server.Run(runCtx, cfg, server.Options{
			Version:  "bench",
			Getenv:   env,
			Stdout:   logs,
			OnListen: func(a server.Addrs) { listening <- a.API },
			Signals:  make(chan os.Signal), // no SIGHUP handler of its own
			Tuning:   o.Tuning,
		})
	}()
	s.onClose(func() {
		stop()
		if err := <-done; err != nil {
			fmt.Fprintln(o.Log, "bench: service:", err)
		}
	})
	select {
	case addr := <-listening:
		s.URL = "http://" + addr.String()
	case err := <-done:
		done <- err // for the closer
		return fmt.Errorf("service: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("service did not listen within 30s")
	}
	return s.waitReady(ctx)
}

// Env returns the service's environment: vars, the rate limits of PRODUCT.md turned off (0),
// tracing off; anything else unset, so the service takes its defaults and nothing from the
// environment of the benchmark reaches it.
func Env(vars map[string]string) func(string) string {
	all := map[string]string{
		"CHAT_LIMITS_REQUESTS_PER_MINUTE":        "0",
		"CHAT_LIMITS_WRITES_PER_MINUTE":          "0",
		"CHAT_LIMITS_EVENT_STREAMS":              "0",
		"CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND": "0",
		"CHAT_LIMITS_TENANT_EVENT_STREAMS":       "0",
		"CHAT_MAX_EVENT_STREAMS":                 "0",
		"OTEL_SDK_DISABLED":                      "true",
	}
	for k, v := range vars {
		all[k] = v
	}
	return func(name string) string { return all[name] }
}

// waitReady polls /readyz until it answers 200.
func (s *Stack) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("service not ready within 30s: %s", last)
}

// dropDatabase drops database on the server at uri, which a benchmark made.
func dropDatabase(uri, database string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return
	}
	defer func() { _ = client.Disconnect(ctx) }()
	_ = client.Database(database).Drop(ctx)
}

// onClose adds f to what Close runs, newest first.
func (s *Stack) onClose(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, f)
}

// Close stops the service, then the servers, and removes the temporary directory.
func (s *Stack) Close() {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// maxWarnings is how many of the service's warning lines reach the log; the rest are counted.
const maxWarnings = 10

// warnings passes the first maxWarnings JSON log lines of level WARN or ERROR of the service to
// w, counts the others, and drops the rest (the access log: one line per request, encoded as in
// production).
type warnings struct {
	mu         sync.Mutex
	w          io.Writer
	all        io.Writer // every line, when set
	n          int
	suppressed int
}

func (l *warnings) Write(p []byte) (int, error) {
	if l.all != nil {
		if _, err := l.all.Write(p); err != nil {
			return 0, err
		}
	}
	// The service writes its lines in batches: look at each one.
	for line := range bytes.Lines(p) {
		if !bytes.Contains(line, []byte(`"level":"WARN"`)) && !bytes.Contains(line, []byte(`"level":"ERROR"`)) {
			continue
		}
		l.mu.Lock()
		if l.n++; l.n > maxWarnings {
			l.suppressed++
		} else {
			_, _ = l.w.Write(line)
		}
		l.mu.Unlock()
	}
	return len(p), nil
}

// close reports how many lines were not passed on.
func (l *warnings) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed > 0 {
		fmt.Fprintf(l.w, "bench: %d more warning lines of the service not shown\n", l.suppressed)
	}
}
