// Package mongodb is chat's store on MongoDB: the documents of conversations, messages, settings
// and idempotency records, their indexes, keyset paging, and the translation of driver errors
// into domain errors. It needs no transactions, so it runs on MongoDB and on FerretDB alike.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/supportchat/supportchat/internal/chat"
)

// DefaultTimeout bounds server selection, connecting and each operation when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// The collections of the store.
const (
	conversationsCollection = "conversations"
	entriesCollection       = "entries"
	settingsCollection      = "settings"
	adminsCollection        = "admins"
	idempotencyCollection   = "idempotency"
	outboxCollection        = "outbox"
	// Webhooks: endpoints, deliveries with their attempts, the queue of pending deliveries,
	// and the support transitions not yet taken up by webhooks.
	webhookEndpointsCollection  = "webhook_endpoints"
	webhookDeliveriesCollection = "webhook_deliveries"
	webhookQueueCollection      = "webhook_queue"
	supportChangesCollection    = "support_changes"
	// The records of the changes made to documents older versions wrote (migrations.go).
	migrationsCollection = "migrations"
	// The erasure jobs of customers (erasure.go).
	erasuresCollection = "erasures"
	// The tenants' audit trail (internal/audit).
	auditCollection = "audit"
)

// Options configure Open. Zero values take the defaults.
type Options struct {
	// Timeout bounds server selection, connecting, and each operation whose context has no
	// deadline of its own. Default DefaultTimeout.
	Timeout time.Duration
	// Monitor observes every command (tracing and metrics); may be nil.
	Monitor *event.CommandMonitor
	// Now is the clock deciding when idempotency records expire. Default time.Now.
	Now func() time.Time
	// Logger receives what the store handles itself, such as index options the server lacks.
	Logger *slog.Logger
	// OpenFor is how long the store's operations fail fast, with chat.ErrUnavailable, after one
	// found no server to run on (see breaker). Default DefaultOpenFor.
	OpenFor time.Duration
	// PendingMarks says where the log keeps which entries are pending (see Store.Pending):
	// PendingAuto (the zero value) chooses by server, the tests choose one to run both.
	PendingMarks PendingMarks
}

// PendingMarks is where the store keeps the pending marks of the log's entries.
type PendingMarks int

// The places of pending marks.
const (
	// PendingAuto keeps them in the outbox on FerretDB and on the entries on MongoDB.
	PendingAuto PendingMarks = iota
	// PendingOnEntries keeps them as a field of each entry, set by the insert that commits
	// it: nothing to write beyond the entry, one update to clear it. On FerretDB that update
	// reads and writes the whole log.
	PendingOnEntries
	// PendingInOutbox keeps them as a document per entry in the small outbox collection,
	// inserted before the entry and deleted to clear it.
	PendingInOutbox
)

// DB is a connection pool to one MongoDB database.
type DB struct {
	client *mongo.Client
	db     *mongo.Database
	store  *Store
	log    *slog.Logger
	// needsSweep is set by EnsureIndexes when the server has no TTL indexes.
	needsSweep atomic.Bool
}

// Open returns a DB for database on the server at uri. It does not wait for the server: an
// unreachable server makes the operations fail with chat.ErrUnavailable until it is back.
func Open(_ context.Context, uri, database string, o Options) (*DB, error) {
	if database == "" {
		return nil, errors.New("no database name")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.OpenFor <= 0 {
		o.OpenFor = DefaultOpenFor
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	opts := options.Client().ApplyURI(uri).
		SetTimeout(o.Timeout).
		SetServerSelectionTimeout(o.Timeout).
		SetConnectTimeout(o.Timeout).
		SetWriteConcern(writeconcern.Majority()).
		SetReadPreference(readpref.Primary())
	if o.Monitor != nil {
		opts.SetMonitor(o.Monitor)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		// The error describes the URI, which may hold a password: keep it out.
		return nil, errors.New("invalid URI or client options")
	}
	db := client.Database(database)
	return &DB{
		client: client,
		db:     db,
		log:    o.Logger,
		store: &Store{
			conversations:     db.Collection(conversationsCollection),
			entries:           db.Collection(entriesCollection),
			settings:          db.Collection(settingsCollection),
			admins:            db.Collection(adminsCollection),
			idempotency:       db.Collection(idempotencyCollection),
			outbox:            db.Collection(outboxCollection),
			webhookEndpoints:  db.Collection(webhookEndpointsCollection),
			webhookDeliveries: db.Collection(webhookDeliveriesCollection),
			webhookQueue:      db.Collection(webhookQueueCollection),
			supportChanges:    db.Collection(supportChangesCollection),
			erasures:          db.Collection(erasuresCollection),
			audit:             db.Collection(auditCollection),
			marks:             o.PendingMarks,
			now:               o.Now,
			log:               o.Logger,
			server:            &serverKind{db: db},
			// The breaker measures an outage, not the domain's time: the wall clock.
			breaker: &breaker{openFor: o.OpenFor, now: time.Now},
		},
	}, nil
}

// Store returns the store of chat data in the database.
func (db *DB) Store() *Store { return db.store }

// Ping checks that the primary answers. Returns chat.ErrUnavailable when it does not.
func (db *DB) Ping(ctx context.Context) error {
	return wrap("ping", db.client.Ping(ctx, readpref.Primary()))
}

// Close closes the connections, waiting for operations in progress until ctx ends.
func (db *DB) Close(ctx context.Context) error {
	return wrap("close", db.client.Disconnect(ctx))
}

// wrap turns a driver error of operation op into the error the store returns: an Unavailable
// chat.Error when the database could not be reached in time (the cause is kept for logs only),
// else the driver error with short context, which callers report as internal.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("mongodb %s: %w", op, err)
	if unavailable(err) {
		return &chat.Error{Code: chat.Unavailable, Message: "database unavailable", Err: err}
	}
	return err
}

// unavailable reports whether err says the database is out of reach rather than that the
// operation is wrong.
func unavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, mongo.ErrClientDisconnected) ||
		errors.Is(err, ErrOpen) ||
		errors.As(err, &topology.ServerSelectionError{}) ||
		mongo.IsTimeout(err) ||
		mongo.IsNetworkError(err) ||
		outOfTime(err)
}

// outOfTime reports whether err is FerretDB's answer to an operation that ran out of its time
// limit (maxTimeMS) while its backend was busy: an InternalError (code 1) saying "timeout",
// where MongoDB answers MaxTimeMSExpired. Either way the database is too slow right now, not
// the operation wrong.
func outOfTime(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 1 && strings.Contains(ce.Message, "timeout")
}
