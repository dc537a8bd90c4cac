package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
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
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoURIEnv names the variable that points the tests at a MongoDB server instead of the
// embedded FerretDB.
const MongoURIEnv = "CHAT_TEST_MONGODB_URI"

// ferretPrefix starts the names of the temporary directories FerretDB keeps its SQLite files in.
const ferretPrefix = "testenv-ferretdb-"

// ferret is the one embedded FerretDB of the test binary, started on first use. It is the only
// global of the package: every test of a binary shares the server, each in its own database.
var ferret struct {
	once sync.Once
	uri  string
	err  error
}

// databases counts the databases handed out by this test binary.
var databases atomic.Int64

// MustMongo returns the URI of a MongoDB wire-protocol server and the name of a fresh database
// on it that no other test uses; the database is dropped when the test ends. The server is the
// one named by CHAT_TEST_MONGODB_URI, or else an embedded FerretDB on SQLite files in a temporary
// directory, started once per test binary.
func MustMongo(tb testing.TB) (uri, database string) {
	tb.Helper()
	uri = os.Getenv(MongoURIEnv)
	if uri == "" {
		ferret.once.Do(func() { ferret.uri, ferret.err = startFerretDB() })
		if ferret.err != nil {
			tb.Fatalf("testenv: start FerretDB: %v", ferret.err)
		}
		uri = ferret.uri
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	database = fmt.Sprintf("test_%d_%d_%s", os.Getpid(), databases.Add(1), hex.EncodeToString(suffix[:]))
	tb.Cleanup(func() { dropDatabase(tb, uri, database) })
	return uri, database
}

// startFerretDB runs FerretDB in this process until it exits and returns its URI.
func startFerretDB() (string, error) {
	removeStaleFerretDirs()
	dir, err := os.MkdirTemp("", ferretPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	// FerretDB serves until the test binary exits; the next binary removes its files.
	go func() { _ = f.Run(context.Background()) }()
	return f.MongoDBURI(), nil
}

// removeStaleFerretDirs deletes the FerretDB directories of test binaries that are gone.
func removeStaleFerretDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), ferretPrefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), ferretPrefix)
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
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
