// Package chat is the domain of Support Chat: conversations, messages, support status and the
// use cases the API offers, with the interfaces it needs from storage, presence and events.
package chat

import (
	"context"
	"strconv"
	"time"
)

// Role says who sent a message or takes part in a conversation.
type Role string

// The roles. System messages are written by the service itself (the away prompt).
const (
	RoleCustomer Role = "customer"
	RoleAdmin    Role = "admin"
	RoleSystem   Role = "system"
)

// Caller is the authenticated user of a request: a customer or an admin of the request's tenant.
type Caller struct {
	ID   string
	Role Role
	Name string
	// Expires is when the caller's credentials expire (zero: unknown); event streams end then.
	Expires time.Time
}

// IsAdmin reports whether c is one of the tenant's support admins.
func (c Caller) IsAdmin() bool { return c.Role == RoleAdmin }

// participant returns c as the author of a change.
func (c Caller) participant() Participant { return Participant{ID: c.ID, Role: c.Role, Name: c.Name} }

type callerKey struct{}

// WithCaller returns a context carrying the caller c (see CallerFromContext).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the caller of the request. Returns an Unauthenticated error when ctx
// carries none.
func CallerFromContext(ctx context.Context) (Caller, error) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	if !ok || c.ID == "" {
		return Caller{}, Errorf(Unauthenticated, "no authenticated caller")
	}
	return c, nil
}

// Status is the state of a conversation in the admins' workflow.
type Status string

// The conversation statuses.
const (
	StatusOpen     Status = "open"
	StatusResolved Status = "resolved"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s == StatusOpen || s == StatusResolved }

// Participant is someone who took part in a conversation.
type Participant struct {
	ID   string
	Role Role
	Name string
}

// ShopContext is what the storefront knows about the subject of a conversation (an order, a
// product, a page), shown to admins.
type ShopContext struct {
	OrderID   string
	ProductID string
	PageURL   string
}

// Message is one message of a conversation.
type Message struct {
	ID             string
	ConversationID string
	// Seq is the sequence number of the message's entry in the conversation's log (see Entry):
	// it orders the history, with gaps where other writes (read marks, updates) sit.
	Seq       int64
	Sender    Participant
	Body      string
	CreatedAt time.Time
	// CustomerN and AdminN count the customer's and the admins' messages up to and including
	// this one; read marks are kept in these units so unread counts need no query.
	CustomerN int64
	AdminN    int64
}

// MaxLatest is how many of the newest messages a conversation embeds for lists.
const MaxLatest = 20

// Header is what a conversation is about. It is set when the conversation starts and never
// changes.
type Header struct {
	ID       string
	TenantID string
	Subject  string
	Customer Participant
	Context  *ShopContext
	// CreatedAt is when the conversation started.
	CreatedAt time.Time
}

// State is what the writes of a conversation change. Every entry of the conversation's log
// carries the state after it, so the newest entry alone says where the conversation stands.
type State struct {
	// Seq is the sequence number of the log entry this is the state after.
	Seq      int64
	Status   Status
	Assignee string // the admin id the conversation is assigned to, or ""
	// Admins are the admins who wrote, in order of their first message.
	Admins []Participant
	// UpdatedAt is the time of the latest message or admin change; it only ever grows, which
	// keeps keyset paging of lists stable.
	UpdatedAt time.Time
	// CustomerCount and AdminCount count the messages of each side (system messages are in neither).
	CustomerCount int64
	AdminCount    int64
	// CustomerRead is the AdminN of the last message the customer has read; TeamRead the CustomerN
	// of the last message any admin has read (the team shares one read mark).
	CustomerRead int64
	TeamRead     int64
	// FirstReplyAt is when an admin first answered; FirstReplySeconds how long after the
	// conversation started that was.
	FirstReplyAt      *time.Time
	FirstReplySeconds int64
	// AwayNoticeAt is when the away prompt was last posted into the conversation.
	AwayNoticeAt *time.Time
}

// Conversation is a support conversation between one customer and the tenant's admins, as lists
// show it: its header, its state after some entry of its log (see docs/CONSISTENCY.md for how
// this view follows the log), and its newest messages.
type Conversation struct {
	Header
	State
	// Latest holds up to MaxLatest newest messages up to State.Seq, oldest first.
	Latest []Message
	// Erased is set on a conversation whose log ends with its seal (EntryErased): it is being
	// erased, and reads and writes treat it as not found.
	Erased bool
}

// Participants returns who took part in the conversation: the customer first, then every admin
// who wrote, in order of their first message.
func (c *Conversation) Participants() []Participant {
	return append([]Participant{c.Customer}, c.Admins...)
}

// UnreadFor returns how many messages of the other side c has not read.
func (c *Conversation) UnreadFor(caller Caller) int64 {
	if caller.IsAdmin() {
		return c.CustomerCount - c.TeamRead
	}
	return c.AdminCount - c.CustomerRead
}

// TeamUnread reports whether the conversation has customer messages no admin has read.
func (c *Conversation) TeamUnread() bool { return c.CustomerCount > c.TeamRead }

// VisibleTo reports whether caller may see the conversation at all.
func (c *Conversation) VisibleTo(caller Caller) bool {
	return caller.IsAdmin() || c.Customer.ID == caller.ID
}

// SupportState is whether a tenant's support team can answer now.
type SupportState string

// The support states of PRODUCT.md.
const (
	SupportOnline  SupportState = "online"
	SupportAway    SupportState = "away"
	SupportOffline SupportState = "offline"
)

// Reasons why support is not online.
const (
	ReasonNoAdminOnline        = "no_admin_online"
	ReasonAdminsAway           = "admins_away"
	ReasonOutsideBusinessHours = "outside_business_hours"
)

// Support is the support block of a list: whether the team can answer now, and what to tell the
// customer when it cannot.
type Support struct {
	Status    SupportState
	Available bool
	// Reason, Prompt are empty when Status is online.
	Reason string
	Prompt string
	// NextAvailableAt is the next opening of business hours; nil without hours or inside them.
	NextAvailableAt *time.Time
	// ExpectedReplySeconds is the median time to first admin reply over the last 7 days; nil
	// until there is data.
	ExpectedReplySeconds *int64
	// Until is the first moment the block may change by itself: business hours open or
	// close, or an admin's status lapses. Zero when nothing is due. It is not shown.
	Until time.Time
}

// announced is what customers are told of s and hear again when it changes: everything but
// the expected reply time, a statistic each replica computes on its own.
func (s Support) announced() string {
	next := ""
	if s.NextAvailableAt != nil {
		next = s.NextAvailableAt.UTC().Format(time.RFC3339Nano)
	}
	return string(s.Status) + "|" + strconv.FormatBool(s.Available) + "|" + s.Reason + "|" + next + "|" + s.Prompt
}

// AdminStatus is what an admin sets through the presence endpoint.
type AdminStatus string

// The admin statuses an admin can set. There is no offline status to set: an admin whose
// heartbeat expired is offline.
const (
	AdminOnline AdminStatus = "online"
	AdminAway   AdminStatus = "away"
)
