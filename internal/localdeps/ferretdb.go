package localdeps

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// FerretDBOptions configure a FerretDB.
type FerretDBOptions struct {
	// SQLiteDir holds the files of the SQLite backend, used unless PostgreSQLURL is set; it is
	// created if missing.
	SQLiteDir string
	// PostgreSQLURL names the PostgreSQL database (which must exist) of the PostgreSQL backend.
	PostgreSQLURL string
	// Log receives FerretDB's log, as text, without its dumps of the answers it sends (see
	// quietHandler). Nil: nothing is logged.
	Log io.Writer
	// LogLevel is the least level of what reaches Log.
	LogLevel slog.Level
}

// FerretDB is a running FerretDB serving the MongoDB wire protocol on a free port of 127.0.0.1.
type FerretDB struct {
	uri  string
	stop func()
}

// URI returns the MongoDB URI FerretDB serves.
func (f *FerretDB) URI() string { return f.uri }

// Close stops FerretDB and waits until it has.
func (f *FerretDB) Close() { f.stop() }

// StartFerretDB runs FerretDB configured by o in this process until Close.
func StartFerretDB(o FerretDBOptions) (*FerretDB, error) {
	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   slog.New(slog.DiscardHandler),
	}
	if o.Log != nil {
		config.Logger = slog.New(quietHandler{slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: o.LogLevel})})
	}
	if o.PostgreSQLURL != "" {
		config.Handler, config.PostgreSQLURL = "postgresql", o.PostgreSQLURL
	} else {
		if err := os.MkdirAll(o.SQLiteDir, 0o755); err != nil {
			return nil, err
		}
		config.Handler, config.SQLiteURL = "sqlite", "file:"+o.SQLiteDir+"/"
	}
	f, err := ferretdb.New(config)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	return &FerretDB{uri: f.MongoDBURI(), stop: func() { cancel(); <-done }}, nil
}

// quietHandler drops FerretDB's dumps of the answers it sends ("Response header: ...",
// "Response message: ..."). It dumps every answer that is not ok as a warning: answers the
// service expects and handles (the TTL index FerretDB lacks, the driver's endSessions at
// shutdown, the duplicate keys by which racing writes and retries find each other) would
// otherwise fill a newcomer's terminal. Everything else FerretDB says still shows.
type quietHandler struct{ slog.Handler }

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Response header:") || strings.HasPrefix(r.Message, "Response message:") {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{q.Handler.WithAttrs(attrs)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.Handler.WithGroup(name)}
}
