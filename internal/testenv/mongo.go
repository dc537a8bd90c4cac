package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/localdeps"
)

// MongoURIEnv names the variable that points the tests at a MongoDB server instead of the
// embedded FerretDB.
const MongoURIEnv = "CHAT_TEST_MONGODB_URI"

// PostgreSQLURLEnv names the variable giving the PostgreSQL server FerretDB's PostgreSQL
// backend runs on in the tests; localdeps.DefaultPostgreSQLURL when unset.
const PostgreSQLURLEnv = "CHAT_TEST_POSTGRESQL_URL"

// postgresDatabase is the PostgreSQL database FerretDB keeps the tests' MongoDB databases in,
// created on first use.
const postgresDatabase = "chat_test"

// ferretPrefix starts the names of the temporary directories FerretDB keeps its SQLite files in.
const ferretPrefix = "testenv-ferretdb-"

// databasePrefix starts the names of the tests' databases: test_<pid>_..., so that those of a
// test binary that was killed are dropped by the next (localdeps.RemoveStaleDatabases).
const databasePrefix = "test"

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
// localdeps.DefaultPostgreSQLURL), and the MongoDB of CHAT_TEST_MONGODB_URI when it is set. Run
// each as a subtest named by the server; the PostgreSQL one skips, saying why, where no
// PostgreSQL answers.
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
	database = fmt.Sprintf("%s_%d_%d_%s", databasePrefix, os.Getpid(), databases.Add(1), hex.EncodeToString(suffix[:]))
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

// startSQLiteFerretDB runs FerretDB with its SQLite backend in this process, in a temporary
// directory, and returns its URI.
func startSQLiteFerretDB() (string, error) {
	dir, err := localdeps.TempDir(ferretPrefix)
	if err != nil {
		return "", err
	}
	f, err := localdeps.StartFerretDB(localdeps.FerretDBOptions{SQLiteDir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return f.URI(), nil
}

// startPostgreSQLFerretDB runs FerretDB with its PostgreSQL backend in this process, on the
// chat_test database of the PostgreSQL server, and returns its URI. It returns an
// unavailableError when no PostgreSQL answers.
func startPostgreSQLFerretDB() (string, error) {
	base := os.Getenv(PostgreSQLURLEnv)
	if base == "" {
		base = localdeps.DefaultPostgreSQLURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pgURL, err := localdeps.EnsurePostgreSQLDatabase(ctx, base, postgresDatabase)
	if errors.Is(err, localdeps.ErrNoPostgreSQL) {
		return "", &unavailableError{reason: fmt.Sprintf("%v (set %s to one)", err, PostgreSQLURLEnv)}
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", PostgreSQLURLEnv, err)
	}
	f, err := localdeps.StartFerretDB(localdeps.FerretDBOptions{PostgreSQLURL: pgURL})
	if err != nil {
		return "", err
	}
	localdeps.RemoveStaleDatabases(ctx, f.URI(), databasePrefix)
	return f.URI(), nil
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
