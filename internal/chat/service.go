package chat

import (
	"context"
	"log/slog"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// ConversationStore keeps the log of every conversation and the views lists read. Every method
// is scoped by tenant id; an id of another tenant is simply not found. It needs no transactions
// and no atomic updates: the unique (tenant, conversation, seq) key of entries is the one
// arbiter of concurrent writes (docs/CONSISTENCY.md).
type ConversationStore interface {
	// Append stores entries in order. It stops at the first entry whose (tenant, conversation,
	// Seq) or whose id within the conversation is taken and returns how many it stored before
	// it, with an ErrConflict error. Entries are never changed once stored.
	Append(ctx context.Context, entries []Entry) (int, error)
	// Entry returns the entry of a conversation with id. Returns ErrNotFound when there is none.
	Entry(ctx context.Context, tenantID, convID, id string) (*Entry, error)
	// EntriesAfter returns the entries of a conversation with Seq above seq, in order (none
	// when seq is its last). A conversation's entries are numbered without gaps.
	EntriesAfter(ctx context.Context, tenantID, convID string, seq int64) ([]Entry, error)
	// Mark stores m; FinishMark sets mark id of the tenant Done; Unmark deletes the marks ids.
	Mark(ctx context.Context, m WriteMark) error
	FinishMark(ctx context.Context, tenantID, id string) error
	Unmark(ctx context.Context, tenantID string, ids []string) error
	// Marks returns up to limit marks of the tenant that are not Done; only those of
	// customerID's conversations when it is not "".
	Marks(ctx context.Context, tenantID, customerID string, limit int) ([]WriteMark, error)
	// ConversationMarks returns every mark of a conversation, Done or not.
	ConversationMarks(ctx context.Context, tenantID, convID string) ([]WriteMark, error)
	// Messages returns up to limit messages of the conversation with Seq below before (0: from
	// the newest), newest first.
	Messages(ctx context.Context, tenantID, convID string, before int64, limit int) ([]Message, error)

	// Project stores c as the view of its conversation, unless the stored view is at c.Seq or
	// beyond already.
	Project(ctx context.Context, c *Conversation) error
	// Conversation returns the view of conversation id. Returns ErrNotFound when there is none
	// (including when id is malformed).
	Conversation(ctx context.Context, tenantID, id string) (*Conversation, error)
	// ListConversations returns up to limit views matching f, newest UpdatedAt first (ties:
	// greater id first), strictly after the position after when it is not nil.
	ListConversations(ctx context.Context, tenantID string, f ListFilter, after *Position, limit int) ([]*Conversation, error)
	// AssignedOpen returns up to limit open conversations of the tenant assigned to adminID.
	AssignedOpen(ctx context.Context, tenantID, adminID string, limit int) ([]*Conversation, error)
	// FirstReplySeconds returns the first-reply times, in seconds, of up to limit conversations
	// first answered at or after since, newest first.
	FirstReplySeconds(ctx context.Context, tenantID string, since time.Time, limit int) ([]int64, error)
}

// AdminStore remembers the admins of each tenant the service has seen, so a conversation can be
// assigned only to one of them.
type AdminStore interface {
	// RecordAdmin remembers admin p of the tenant; recording one again changes nothing.
	RecordAdmin(ctx context.Context, tenantID string, p Participant, at time.Time) error
	// KnownAdmin reports whether the tenant has an admin with id.
	KnownAdmin(ctx context.Context, tenantID, id string) (bool, error)
}

// SettingsStore keeps the chat settings tenant admins set through the API.
type SettingsStore interface {
	// Overrides returns the tenant's overrides; the zero Overrides when it has none.
	Overrides(ctx context.Context, tenantID string) (Overrides, error)
	// PutOverrides replaces the tenant's overrides with o.
	PutOverrides(ctx context.Context, tenantID string, o Overrides) error
}

// Presence keeps which admins are online or away. It lives in Redis, which may be down: callers
// treat its errors as "nobody online".
type Presence interface {
	// SetAdminStatus records that adminID is online or away until ttl passes without another
	// call; it returns when that status expires.
	SetAdminStatus(ctx context.Context, tenantID, adminID string, s AdminStatus, ttl time.Duration) (time.Time, error)
	// TeamPresence returns how many admins of the tenant are online and away now.
	TeamPresence(ctx context.Context, tenantID string) (TeamPresence, error)
	// MarkSupportOnline records that the tenant's support was online at t.
	MarkSupportOnline(ctx context.Context, tenantID string, t time.Time) error
	// ClaimLapsed returns up to limit admins whose online status expired before now, each lapse
	// to exactly one caller across all replicas.
	ClaimLapsed(ctx context.Context, now time.Time, limit int) ([]Lapse, error)
}

// Lapse is an admin whose online status expired without a heartbeat.
type Lapse struct {
	TenantID string
	AdminID  string
}

// Publisher delivers events to live subscribers. Publishing is best effort: the record is in
// MongoDB, and a lost event only delays what a client sees until it lists again.
type Publisher interface {
	Publish(ctx context.Context, e Event)
}

// Invalidator is told of every change that alters what cached lists or the cached support
// block show (the Redis list cache implements it). A write tells it before its first entry and
// again once its view is stored; it lives in Redis, which may be down: errors are logged.
type Invalidator interface {
	// ConversationChanged invalidates the cached lists of the customer and of the tenant's admins.
	ConversationChanged(ctx context.Context, tenantID, customerID string) error
	// SupportChanged invalidates the tenant's cached support block.
	SupportChanged(ctx context.Context, tenantID string) error
}

// Tenants finds tenant definitions by id.
type Tenants interface {
	// Get returns the tenant id. Returns tenant.ErrNotFound when there is none.
	Get(id string) (*tenant.Tenant, error)
}

// Deps are what a Service is built from.
type Deps struct {
	Conversations ConversationStore
	Settings      SettingsStore
	Admins        AdminStore
	Presence      Presence
	Events        Publisher
	Tenants       Tenants
	// Invalidator is told of changes to cached views; it may be nil.
	Invalidator Invalidator
	// Now is the clock; NewID returns a new unique id (24 hex digits).
	Now   func() time.Time
	NewID func() string
	// PresenceTTL is how long an admin stays online or away without a heartbeat.
	PresenceTTL time.Duration
	// SettingsTTL is how long a replica caches a tenant's settings overrides; StatsTTL how long
	// it caches the expected reply time.
	SettingsTTL time.Duration
	StatsTTL    time.Duration
	Logger      *slog.Logger
	// Caches counts cache hits and misses; it may be nil.
	Caches CacheObserver
}

// Service implements the use cases of Support Chat. It takes the tenant and the caller of each
// call from its context (tenant.NewContext, NewContext).
type Service struct {
	store       ConversationStore
	settings    SettingsStore
	admins      AdminStore
	presence    Presence
	events      Publisher
	caches      Invalidator
	tenants     Tenants
	now         func() time.Time
	newID       func() string
	presenceTTL time.Duration
	log         *slog.Logger

	overrides   *ttlCache[Overrides]
	replyStats  *ttlCache[*int64]
	notedAdmins *recentSet
	locks       *keyedLocks
}

// Admin bookkeeping: how often a replica records an admin it sees, and how many it remembers.
const (
	adminNoteInterval = time.Hour
	maxNotedAdmins    = 10000
)

// NewService returns a Service using d.
func NewService(d Deps) *Service {
	if d.PresenceTTL <= 0 {
		d.PresenceTTL = 60 * time.Second
	}
	if d.SettingsTTL <= 0 {
		d.SettingsTTL = time.Second
	}
	if d.StatsTTL <= 0 {
		d.StatsTTL = time.Minute
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store:       d.Conversations,
		settings:    d.Settings,
		admins:      d.Admins,
		presence:    d.Presence,
		events:      d.Events,
		caches:      d.Invalidator,
		tenants:     d.Tenants,
		now:         d.Now,
		newID:       d.NewID,
		presenceTTL: d.PresenceTTL,
		log:         d.Logger,
		overrides:   newTTLCache[Overrides]("settings", d.SettingsTTL, d.Now, d.Caches),
		replyStats:  newTTLCache[*int64]("reply_stats", d.StatsTTL, d.Now, d.Caches).bounded(replyStatsWait),
		notedAdmins: newRecentSet(adminNoteInterval, maxNotedAdmins),
		locks:       newKeyedLocks(),
	}
}

// clock returns the current time at the millisecond precision MongoDB keeps.
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(time.Millisecond)
}

// scope returns the tenant and caller of ctx.
func scope(ctx context.Context) (*tenant.Tenant, Caller, error) {
	t, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, Caller{}, Errorf(NotFound, "unknown tenant")
	}
	c, err := CallerFromContext(ctx)
	if err != nil {
		return nil, Caller{}, err
	}
	return t, c, nil
}

// publish sends e to live subscribers.
func (s *Service) publish(ctx context.Context, e Event) {
	if s.events != nil {
		s.events.Publish(ctx, e)
	}
}
