package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoURIEnv names the variable that points the tests at a MongoDB server instead of the
// embedded FerretDB.
const MongoURIEnv = "CHAT_TEST_MONGODB_URI"

// PostgreSQLURLEnv names the variable giving the PostgreSQL server FerretDB's PostgreSQL
// backend runs on in the tests; DefaultPostgreSQLURL when unset.
const PostgreSQLURLEnv = "CHAT_TEST_POSTGRESQL_URL"

// DefaultPostgreSQLURL is the PostgreSQL of the development and CI machines: loopback, trust
// authentication.
const DefaultPostgreSQLURL = "postgres://postgres@127.0.0.1:5432/postgres"

// postgresDatabase is the PostgreSQL database FerretDB keeps the tests' MongoDB databases in,
// created on first use.
const postgresDatabase = "chat_test"

// ferretPrefix starts the names of the temporary directories FerretDB keeps its SQLite files in.
const ferretPrefix = "testenv-ferretdb-"

// The servers a test binary may use. Each starts on first use and serves until the binary
// exits; every test gets a database of its own on it. They are the only globals of the package.
var (
	sqliteFerret   lazyServer
	postgresFerret lazyServer
)

// lazyServer is a server started once, on first use.
type lazyServer struct {
	once sync.Once
	uri  string
	err  error
}

func (l *lazyServer) get(start func() (string, error)) (string, error) {
	l.once.Do(func() { l.uri, l.err = start() })
	return l.uri, l.err
}

// databases counts the databases handed out by this test binary.
var databases atomic.Int64

// MongoServer is a MongoDB wire-protocol server the tests run against.
type MongoServer struct {
	// Name says which server it is: "mongodb", "ferretdb-sqlite" or "ferretdb-postgresql".
	Name string
	uri  func() (string, error)
}

// The servers MongoServers knows.
var (
	mongoServer  = MongoServer{Name: "mongodb", uri: func() (string, error) { return os.Getenv(MongoURIEnv), nil }}
	sqliteServer = MongoServer{Name: "ferretdb-sqlite", uri: func() (string, error) {
		return sqliteFerret.get(startSQLiteFerretDB)
	}}
	postgresServer = MongoServer{Name: "ferretdb-postgresql", uri: func() (string, error) {
		return postgresFerret.get(startPostgreSQLFerretDB)
	}}
)

// MustMongo returns the URI of a MongoDB wire-protocol server and the name of a fresh database
// on it that no other test uses; the database is dropped when the test ends. The server is the
// one named by CHAT_TEST_MONGODB_URI, or else an embedded FerretDB on SQLite files in a temporary
// directory, started once per test binary.
func MustMongo(tb testing.TB) (uri, database string) {
	tb.Helper()
	if os.Getenv(MongoURIEnv) != "" {
		return mongoServer.MustDatabase(tb)
	}
	return sqliteServer.MustDatabase(tb)
}

// MongoServers returns every server the tests of the write path's consistency run on: the
// embedded FerretDB on SQLite, FerretDB on the PostgreSQL of CHAT_TEST_POSTGRESQL_URL (default
// DefaultPostgreSQLURL), and the MongoDB of CHAT_TEST_MONGODB_URI when it is set. Run each as a
// subtest named by the server; the PostgreSQL one skips, saying why, where no PostgreSQL answers.
func MongoServers() []MongoServer {
	servers := []MongoServer{sqliteServer, postgresServer}
	if os.Getenv(MongoURIEnv) != "" {
		servers = append(servers, mongoServer)
	}
	return servers
}

// MustDatabase returns the server's URI and the name of a fresh database on it, dropped when
// the test ends. It skips the test when the server cannot be had here (no PostgreSQL) and fails
// it when the server does not start.
func (m MongoServer) MustDatabase(tb testing.TB) (uri, database string) {
	tb.Helper()
	uri, err := m.uri()
	var unavailable *unavailableError
	switch {
	case errors.As(err, &unavailable):
		skipLoudly(tb, m.Name+" skipped: "+unavailable.reason)
	case err != nil:
		tb.Fatalf("testenv: start %s: %v", m.Name, err)
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	database = fmt.Sprintf("test_%d_%d_%s", os.Getpid(), databases.Add(1), hex.EncodeToString(suffix[:]))
	tb.Cleanup(func() { dropDatabase(tb, uri, database) })
	return uri, database
}

// unavailableError says a server cannot be had on this machine (rather than that it failed).
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason }

// skipped remembers which skip reasons were printed, so each appears once per test binary.
var skipped sync.Map

// skipLoudly skips the test with reason, and prints the reason once on stderr as well: a plain
// `go test` shows no skip messages, and a variant that silently does not run proves nothing.
func skipLoudly(tb testing.TB, reason string) {
	tb.Helper()
	if _, seen := skipped.LoadOrStore(reason, true); !seen {
		fmt.Fprintln(os.Stderr, "testenv:", reason)
	}
	tb.Skip(reason)
}

// startSQLiteFerretDB runs FerretDB with its SQLite backend in this process and returns its URI.
func startSQLiteFerretDB() (string, error) {
	removeStaleFerretDirs()
	dir, err := os.MkdirTemp("", ferretPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	uri, err := runFerretDB(&ferretdb.Config{Handler: "sqlite", SQLiteURL: "file:" + dir + "/"})
	if err != nil {
		_ = os.RemoveAll(dir)
	}
	return uri, err
}

// startPostgreSQLFerretDB runs FerretDB with its PostgreSQL backend in this process, on the
// chat_test database of the PostgreSQL server, and returns its URI. It returns an
// unavailableError when no PostgreSQL answers.
func startPostgreSQLFerretDB() (string, error) {
	base := os.Getenv(PostgreSQLURLEnv)
	if base == "" {
		base = DefaultPostgreSQLURL
	}
	pgURL, err := ensurePostgresDatabase(base)
	if err != nil {
		return "", err
	}
	uri, err := runFerretDB(&ferretdb.Config{Handler: "postgresql", PostgreSQLURL: pgURL})
	if err != nil {
		return "", err
	}
	removeStaleDatabases(uri)
	return uri, nil
}

// ensurePostgresDatabase creates the tests' database on the PostgreSQL server of base unless it
// exists, and returns the URL of that database.
func ensurePostgresDatabase(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%s: %w", PostgreSQLURLEnv, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	unavailable := &unavailableError{reason: fmt.Sprintf("no PostgreSQL answers at %s (set %s to one)", addr, PostgreSQLURLEnv)}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", unavailable
	}
	_ = c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable.reason = fmt.Sprintf("PostgreSQL at %s refused the connection: %v", addr, err)
		return "", unavailable
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", postgresDatabase).Scan(&exists); err != nil {
		return "", fmt.Errorf("postgresql: %w", err)
	}
	if !exists {
		// Two test binaries may race to create it; the loser's error is harmless.
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+postgresDatabase); err != nil && !strings.Contains(err.Error(), "already exists") {
			return "", fmt.Errorf("postgresql: create database %s: %w", postgresDatabase, err)
		}
	}
	u.Path = "/" + postgresDatabase
	return u.String(), nil
}

// runFerretDB starts FerretDB with config on a free loopback port until the test binary exits,
// and returns its URI.
func runFerretDB(config *ferretdb.Config) (string, error) {
	config.Listener = ferretdb.ListenerConfig{TCP: "127.0.0.1:0"}
	config.Logger = slog.New(slog.DiscardHandler)
	f, err := ferretdb.New(config)
	if err != nil {
		return "", err
	}
	go func() { _ = f.Run(context.Background()) }()
	return f.MongoDBURI(), nil
}

// removeStaleFerretDirs deletes the FerretDB directories of test binaries that are gone.
func removeStaleFerretDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), ferretPrefix+"*"))
	for _, dir := range dirs {
		if pid, ok := ownerPID(strings.TrimPrefix(filepath.Base(dir), ferretPrefix)); ok && !processAlive(pid) {
			_ = os.RemoveAll(dir)
		}
	}
}

// removeStaleDatabases drops the test databases on the server at uri whose test binaries are
// gone (killed before their cleanup ran), so a long-lived PostgreSQL does not fill up.
func removeStaleDatabases(uri string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		return
	}
	defer func() { _ = client.Disconnect(ctx) }()
	names, err := client.ListDatabaseNames(ctx, map[string]any{})
	if err != nil {
		return
	}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, "test_")
		if pid, own := ownerPID(rest); ok && own && !processAlive(pid) {
			_ = client.Database(name).Drop(ctx)
		}
	}
}

// ownerPID returns the process id that starts s ("<pid>-..." or "<pid>_..."), the test binary
// that made a directory or database, unless it is this process.
func ownerPID(s string) (int, bool) {
	end := strings.IndexAny(s, "-_")
	if end < 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(s[:end])
	if err != nil || pid == os.Getpid() {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process with pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// dropDatabase deletes a test's database, so a shared server does not fill up.
func dropDatabase(tb testing.TB, uri, database string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		tb.Logf("testenv: drop database %s: %v", database, err)
		return
	}
	defer func() { _ = client.Disconnect(ctx) }()
	if err := client.Database(database).Drop(ctx); err != nil {
		tb.Logf("testenv: drop database %s: %v", database, err)
	}
}
