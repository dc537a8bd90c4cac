package chat

import (
	"context"
	"log/slog"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// Log is the conversation log (internal/convlog): it commits the writes of conversations and
// reads them back as they stand in the log. Every method is scoped by tenant id; an id of
// another tenant is simply not found.
type Log interface {
	// Commit makes changes, in order, to conversation base (a view, exact at its Seq, perhaps
	// behind the log) and returns what the write committed, once the conversation's view shows
	// it and its events are published (or left to the log's relay). Changes with nothing to do
	// are left out; a write with nothing to do commits nothing. Once the first change is
	// committed the write succeeds, even when a later one cannot be. Returns KeyReused when an
	// entry with a change's id records another change, Unavailable when the database fails or
	// the conversation stays too busy until ctx ends (nothing committed), or when the write was
	// committed but its view could not be brought up to date (a retry of the write with its
	// Idempotency-Key then finds it committed).
	Commit(ctx context.Context, base *Conversation, changes []Change) (*Committed, error)
	// Write makes one write to conversation id: under the replica's lock of the conversation
	// it reads the view (see View), asks plan for the changes the write makes to it, and
	// commits them (see Commit). It returns the view plan saw and what was committed, nil when
	// plan made no changes. Returns ErrNotFound when there is no such conversation,
	// Unavailable when ctx ends while it waits for the lock, and plan's and Commit's errors.
	Write(ctx context.Context, tenantID, id string, plan func(*Conversation) ([]Change, error)) (*Conversation, *Committed, error)
	// View returns the stored view of conversation id, exact at its Seq but perhaps behind the
	// log; a conversation without a view is rebuilt from its log. Returns ErrNotFound when
	// there is no such conversation.
	View(ctx context.Context, tenantID, id string) (*Conversation, error)
	// Conversation returns conversation id as its log stands: its view brought up to the log.
	// Returns ErrNotFound when there is none.
	Conversation(ctx context.Context, tenantID, id string) (*Conversation, error)
	// Refresh brings views read from the store up to their logs, in place of the stale ones.
	Refresh(ctx context.Context, views []*Conversation) ([]*Conversation, error)
}

// Store answers the queries the use cases make of the record directly: lists of views and the
// history in the log. Every method is scoped by tenant id.
type Store interface {
	// Entry returns the entry of a conversation with id. Returns ErrNotFound when there is none.
	Entry(ctx context.Context, tenantID, convID, id string) (*Entry, error)
	// Messages returns up to limit messages of the conversation with Seq below before (0: from
	// the newest), newest first.
	Messages(ctx context.Context, tenantID, convID string, before int64, limit int) ([]Message, error)
	// ListConversations returns up to limit views matching f, newest UpdatedAt first (ties:
	// greater id first), strictly after the position after when it is not nil. Views may be
	// behind their logs (see Log.Refresh).
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
	// RecordAdmin remembers admin p of the tenant as seen at at; a later record moves the time
	// on, an earlier one does not move it back.
	RecordAdmin(ctx context.Context, tenantID string, p Participant, at time.Time) error
	// KnownAdmin reports whether the tenant has an admin with id seen at seenSince or later.
	KnownAdmin(ctx context.Context, tenantID, id string, seenSince time.Time) (bool, error)
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

// SupportClock remembers, per tenant, the support state its customers were last told of, so
// that each change is announced once however many replicas see it, and the moment the state
// may next change by itself (business hours, a status that lapses). It lives in Redis
// (presence.Store), which may be down: errors are logged.
type SupportClock interface {
	// LockSupport begins a computation of the tenant's support, one at a time across replicas:
	// it returns a lock ("" when it gave up waiting) and the computation's number, which
	// orders the states whatever the replicas' clocks say. AnnounceSupport releases the lock,
	// UnlockSupport when no announcement follows.
	LockSupport(ctx context.Context, tenantID string) (lock string, seq int64, err error)
	UnlockSupport(ctx context.Context, tenantID, lock string)
	// AnnounceSupport releases lock and records state, of computation seq, as the tenant's
	// announced support state unless a later computation's is recorded, and schedules the
	// tenant to be computed again at until at the latest (zero: only when something changes it).
	AnnounceSupport(ctx context.Context, tenantID, lock string, seq int64, state string, until time.Time) (Announcement, error)
	// ScheduleSupport makes the tenant due at unix ms due at the latest.
	ScheduleSupport(ctx context.Context, tenantID string, due float64) error
	// UnscheduleSupport forgets the schedules of removed tenants.
	UnscheduleSupport(ctx context.Context, ids []string) error
	// ClaimDueSupport returns up to limit tenants due to be computed at now, each to exactly
	// one caller across all replicas.
	ClaimDueSupport(ctx context.Context, now time.Time, limit int) ([]string, error)
	// UnscheduledSupport returns the tenants of ids with nothing scheduled.
	UnscheduledSupport(ctx context.Context, ids []string) ([]string, error)
}

// SupportLog records the support transitions durably, the source webhooks deliver
// support.changed from (the MongoDB store).
type SupportLog interface {
	// RecordSupportChange records that the tenant's support became sup at at, in the
	// support clock's computation seq; recording one change twice stores it once.
	RecordSupportChange(ctx context.Context, tenantID string, seq int64, at time.Time, sup Support) error
}

// Announcement is what AnnounceSupport found.
type Announcement int

// The outcomes of AnnounceSupport.
const (
	// AnnouncedStale: a later computation's state is recorded; this one is not.
	AnnouncedStale Announcement = iota
	// AnnouncedSame: the state is the one recorded.
	AnnouncedSame
	// AnnouncedFirst: no state was recorded (a new tenant, or Redis lost it).
	AnnouncedFirst
	// AnnouncedChange: the state replaced another one; customers must hear of it.
	AnnouncedChange
)

// Lapse is an admin whose online status expired without a heartbeat.
type Lapse struct {
	TenantID string
	AdminID  string
}

// Publisher delivers the events that have no entry of a conversation's log behind them
// (support.changed) to live subscribers. Publishing is best effort: a publisher that fails
// tells the tenant's streams to resync (see events.Bus); the log publishes its own events.
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

// Invalidator is told of every change of the support block that cached lists show (the Redis
// list cache implements it; the log tells it of conversation changes). It lives in Redis,
// which may be down: errors are logged.
type Invalidator interface {
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
	Log      Log
	Store    Store
	Settings SettingsStore
	Admins   AdminStore
	Presence Presence
	Events   Publisher
	Tenants  Tenants
	// SupportClock announces each change of a tenant's support once.
	SupportClock SupportClock
	// SupportLog records each announced change for webhooks; it may be nil.
	SupportLog SupportLog
	// Invalidator is told of changes to the cached support block; it may be nil.
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
// call from its context (tenant.NewContext, WithCaller).
type Service struct {
	log         Log
	store       Store
	settings    SettingsStore
	admins      AdminStore
	presence    Presence
	events      Publisher
	announcer   SupportClock
	supportLog  SupportLog
	caches      Invalidator
	tenants     Tenants
	now         func() time.Time
	newID       func() string
	presenceTTL time.Duration
	logger      *slog.Logger

	overrides   *ttlCache[Overrides]
	replyStats  *ttlCache[*int64]
	notedAdmins *recentSet
}

// Admin bookkeeping: how often a replica records an admin it sees, and how many it remembers.
const (
	adminNoteInterval = time.Hour
	// adminAssignableFor is how long after their last request an admin may still be assigned:
	// one who lost the role, or left, stops being offered once their tokens stop coming.
	adminAssignableFor = 30 * 24 * time.Hour
	maxNotedAdmins     = 10000
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
		log:         d.Log,
		store:       d.Store,
		settings:    d.Settings,
		admins:      d.Admins,
		presence:    d.Presence,
		events:      d.Events,
		announcer:   d.SupportClock,
		supportLog:  d.SupportLog,
		caches:      d.Invalidator,
		tenants:     d.Tenants,
		now:         d.Now,
		newID:       d.NewID,
		presenceTTL: d.PresenceTTL,
		logger:      d.Logger,
		overrides:   newTTLCache[Overrides]("settings", d.SettingsTTL, d.Now, d.Caches),
		replyStats:  newTTLCache[*int64]("reply_stats", d.StatsTTL, d.Now, d.Caches).bounded(replyStatsWait),
		notedAdmins: newRecentSet(adminNoteInterval, maxNotedAdmins),
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

// publish sends e, an event without an entry of a log behind it, to live subscribers; the
// publisher logs and answers for a failure.
func (s *Service) publish(ctx context.Context, e Event) {
	if s.events != nil {
		_ = s.events.Publish(ctx, e)
	}
}

// supportChanged tells the caches that the tenant's support block changed.
func (s *Service) supportChanged(ctx context.Context, tenantID string) {
	if s.caches == nil {
		return
	}
	if err := s.caches.SupportChanged(context.WithoutCancel(ctx), tenantID); err != nil {
		s.logger.WarnContext(ctx, "cached support block not invalidated; it expires on its own", "tenant", tenantID, "error", err)
	}
}
