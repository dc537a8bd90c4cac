package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/internal/localdeps"
)

// ferretLogLines is how many lines of FerretDB's log reach stderr: on PostgreSQL it logs every
// duplicate-key error, and concurrent writes to one conversation provoke them by design (the
// entries' unique keys are the commit point; the losing append is a duplicate key).
const ferretLogLines = 5

// backend is a FerretDB child process on one of its storage backends.
type backend struct {
	// name is "sqlite" or "postgresql".
	name string
	// uri is FerretDB's MongoDB URI.
	uri string
	// where says where the data is, for the report.
	where   string
	closers []func()
}

// skipError says a backend cannot be had on this machine (no PostgreSQL answers), so it is
// skipped rather than failing the run.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

// startBackend starts FerretDB on backend name: on SQLite files under tmp, or on a new
// database of the PostgreSQL server at pgURL, dropped by stop.
func startBackend(ctx context.Context, stderr io.Writer, tmp, name, pgURL string) (*backend, error) {
	logs := newLineLog(stderr, "ferretdb-"+name+": ", ferretLogLines)
	b := &backend{name: name, closers: []func(){logs.close}}
	fb := localdeps.FerretDBOptions{Log: logs, LogLevel: slog.LevelError}
	switch name {
	case "sqlite":
		fb.SQLiteDir = filepath.Join(tmp, "ferretdb-sqlite")
		b.where = "SQLite files in " + fb.SQLiteDir
		b.closers = append(b.closers, func() { _ = os.RemoveAll(fb.SQLiteDir) })
	case "postgresql":
		dbURL, drop, err := createPostgresDatabase(ctx, stderr, pgURL)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, drop)
		fb.PostgreSQLURL = dbURL
		b.where = "PostgreSQL database " + stack.RedactURL(dbURL)
	default:
		return nil, fmt.Errorf("unknown backend %q", name)
	}
	f, err := localdeps.StartFerretDBChild(fb)
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("ferretdb: %w", err)
	}
	b.closers = append(b.closers, f.Close)
	b.uri = f.URI()
	fmt.Fprintf(stderr, "FerretDB on %s at %s\n", b.where, b.uri)
	return b, nil
}

// stop stops FerretDB and removes its data.
func (b *backend) stop() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// dropDatabase drops a MongoDB database on FerretDB, so a run's data does not outlive it.
func (b *backend) dropDatabase(ctx context.Context, database string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(b.uri))
	if err != nil {
		return fmt.Errorf("drop database %s: %w", database, err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	if err := client.Database(database).Drop(ctx); err != nil {
		return fmt.Errorf("drop database %s: %w", database, err)
	}
	return nil
}

// createPostgresDatabase creates a fresh database on the PostgreSQL server of base and returns
// its URL and how to drop it. It returns a skipError when no PostgreSQL answers there.
func createPostgresDatabase(ctx context.Context, stderr io.Writer, base string) (string, func(), error) {
	dbURL, drop, err := localdeps.CreatePostgreSQLDatabase(ctx, base, "sendload")
	if errors.Is(err, localdeps.ErrNoPostgreSQL) {
		return "", nil, &skipError{reason: err.Error() + " (-postgresql-url)"}
	}
	if err != nil {
		return "", nil, fmt.Errorf("-postgresql-url: %w", err)
	}
	return dbURL, func() {
		if err := drop(); err != nil {
			fmt.Fprintln(stderr, err)
		}
	}, nil
}
