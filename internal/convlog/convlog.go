// Package convlog is the conversation log: it commits every write to a conversation as entries
// appended to the conversation's log, keeps the views that lists read as caches of the log,
// and publishes the events of every committed entry at least once. Of its database it needs
// only unique keys and single-document writes: no transactions, no atomic updates
// (docs/CONSISTENCY.md says why that is enough).
package convlog

import (
	"context"
	"log/slog"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// Entries is the log of every conversation in the database. Every method is scoped by tenant
// id; an id of another tenant is simply not found.
type Entries interface {
	// Append stores entries in order, as they are (the log appends them Pending). It stops at the first entry whose (tenant,
	// conversation, Seq) or whose id within the conversation is taken, and returns how many it
	// stored before it with an error matching chat.ErrConflict. Entries are never changed once
	// stored, but for Published.
	Append(ctx context.Context, entries []chat.Entry) (int, error)
	// Entry returns the entry of a conversation with id. Returns chat.ErrNotFound when there is
	// none.
	Entry(ctx context.Context, tenantID, convID, id string) (*chat.Entry, error)
	// EntriesAfter returns the entries of a conversation with Seq above seq, in order (none
	// when seq is its last). A conversation's entries are numbered without gaps.
	EntriesAfter(ctx context.Context, tenantID, convID string, seq int64) ([]chat.Entry, error)
	// Followed reports, for each view, whether its conversation's log has an entry after the
	// view's Seq.
	Followed(ctx context.Context, views []*chat.Conversation) ([]bool, error)
	// Messages returns up to limit messages of a conversation with Seq below before (0: from
	// the newest), newest first.
	Messages(ctx context.Context, tenantID, convID string, before int64, limit int) ([]chat.Message, error)
	// Pending returns up to limit pending entries of any tenant, those stored first first.
	Pending(ctx context.Context, limit int) ([]chat.Entry, error)
	// Published clears Pending on entries: their events are out.
	Published(ctx context.Context, entries []chat.Entry) error
	// Hooked returns up to limit entries not yet taken up by webhooks, those stored first
	// first, and their marks. Every entry Append stores pending is marked so, by the same
	// insert.
	Hooked(ctx context.Context, limit int) ([]chat.Entry, []string, error)
	// Unhook clears the webhook marks of Hooked.
	Unhook(ctx context.Context, marks []string) error
}

// Views are the projections of the logs that lists read: one per conversation, its header,
// its state after some entry and its newest messages.
type Views interface {
	// View returns the view of conversation id. Returns chat.ErrNotFound when there is none.
	View(ctx context.Context, tenantID, id string) (*chat.Conversation, error)
	// Project stores c as the view of its conversation, unless the stored view is at c.Seq or
	// beyond already.
	Project(ctx context.Context, c *chat.Conversation) error
	// AtomicReplace reports whether the server applies Project's condition atomically
	// (MongoDB), or reads, then writes back without looking again, so that a slow writer's
	// older view may land on a newer one (FerretDB v1). Unknown counts as not atomic.
	AtomicReplace(ctx context.Context) bool
}

// Store is the database of the log: its entries and its views.
type Store interface {
	Entries
	Views
}

// Publisher delivers events to live subscribers (the Redis event bus). It drops an event whose
// ID it has published already.
type Publisher interface {
	Publish(ctx context.Context, e chat.Event) error
}

// Invalidator is told of every change that alters what cached lists show (the Redis list
// cache implements it). It lives in Redis, which may be down: errors are logged.
type Invalidator interface {
	// ConversationChanged invalidates the cached lists of the customer and of the tenant's admins.
	ConversationChanged(ctx context.Context, tenantID, customerID string) error
}

// Lease gives the relay's passes to one replica at a time (redisconn.Lease): on FerretDB with
// SQLite the query for pending entries decodes every entry, so replicas should not all make it
// every second. Correctness does not rest on it: passes that overlap publish twice what they
// publish, and the bus drops the repeats.
type Lease interface {
	// Take reports whether this replica may do the turn named name, and holds it for ttl:
	// its holder keeps it by asking again within ttl; true when it cannot tell.
	Take(ctx context.Context, name string, ttl time.Duration) bool
}

// Observer counts what the relay does; the telemetry metrics implement it.
type Observer interface {
	// EntriesRelayed counts the pending entries the relay took up, and how many of them it
	// published.
	EntriesRelayed(taken, published int)
}

// Bounds of the protocol.
const (
	// maxWriteDuration bounds one write, from its first append to its last projection.
	maxWriteDuration = 30 * time.Second
	// maxProjectRounds bounds how often one write brings a view up to a log that keeps
	// growing, on a server whose conditional replace is not atomic; the relay finishes.
	maxProjectRounds = 4
	// DefaultRelayGrace is how long the relay sees an entry pending before it takes it up: a
	// writer is normally done within milliseconds. It is measured on the relay's own running
	// time, not against the entry's time, so neither a replica's clock that is off nor a test's
	// clock that stands still changes it.
	DefaultRelayGrace = 2 * time.Second
	// DefaultRelayInterval is how often the relay looks for pending entries.
	DefaultRelayInterval = time.Second
	// relayBatch bounds how many pending entries one pass of the relay takes up.
	relayBatch = 500
)

// Deps are what a Log is built from.
type Deps struct {
	Store  Store
	Events Publisher
	// Caches is told of changed lists; it may be nil.
	Caches Invalidator
	// Now is the clock.
	Now    func() time.Time
	Logger *slog.Logger
	// Observer counts the relay's work; it may be nil.
	Observer Observer
	// Lease shares the relay's passes among replicas; nil: every replica makes every pass.
	Lease Lease
	// RelayGrace and RelayInterval tune the relay; zero takes the defaults.
	RelayGrace    time.Duration
	RelayInterval time.Duration
}

// Log is the conversation log. It implements chat.Log.
type Log struct {
	// seen holds when the relay first saw each entry pending, by its key; only Relay uses it.
	seen map[string]time.Time

	locks    *keyedLocks
	store    Store
	events   Publisher
	caches   Invalidator
	now      func() time.Time
	logger   *slog.Logger
	obs      Observer
	lease    Lease
	grace    time.Duration
	interval time.Duration
}

var _ chat.Log = (*Log)(nil)

// New returns the Log of d.
func New(d Deps) *Log {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.RelayGrace <= 0 {
		d.RelayGrace = DefaultRelayGrace
	}
	if d.RelayInterval <= 0 {
		d.RelayInterval = DefaultRelayInterval
	}
	return &Log{seen: make(map[string]time.Time), locks: newKeyedLocks(), store: d.Store, events: d.Events, caches: d.Caches, now: d.Now, logger: d.Logger, obs: d.Observer, lease: d.Lease,
		grace: d.RelayGrace, interval: d.RelayInterval}
}

// clock returns the current time at the millisecond precision MongoDB keeps.
func (l *Log) clock() time.Time {
	return l.now().UTC().Truncate(time.Millisecond)
}
