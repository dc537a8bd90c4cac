// Package chat is the domain of Support Chat: conversations, messages, support status and the
// use cases the API offers, with the interfaces it needs from storage, presence and events.
package chat

import (
	"context"
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
}

// IsAdmin reports whether c is one of the tenant's support admins.
func (c Caller) IsAdmin() bool { return c.Role == RoleAdmin }

type callerKey struct{}

// NewContext returns a context carrying the caller c.
func NewContext(ctx context.Context, c Caller) context.Context {
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

// Context is what the storefront knows about the subject of a conversation, shown to admins.
type Context struct {
	OrderID   string
	ProductID string
	PageURL   string
}

// Message is one message of a conversation.
type Message struct {
	ID             string
	ConversationID string
	// Seq is the message's 1-based position in its conversation.
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

// Conversation is a support conversation between one customer and the tenant's admins, with the
// summary the list shows. It is the unit of consistency: every change is a compare-and-swap on
// Version, and new messages are committed here (Pending) before they reach the message history.
type Conversation struct {
	ID       string
	TenantID string
	Status   Status
	Subject  string
	Customer Participant
	// Participants are the customer first, then every admin who wrote, in order of their first message.
	Participants []Participant
	Context      *Context
	// Assignee is the admin id the conversation is assigned to, or "".
	Assignee  string
	CreatedAt time.Time
	// UpdatedAt is the time of the latest message or admin change; it only ever grows, which keeps
	// keyset paging of lists stable.
	UpdatedAt time.Time

	// Version counts the changes of the conversation (optimistic concurrency).
	Version int64
	// LastSeq is the Seq of the newest message.
	LastSeq int64
	// CustomerCount and AdminCount count the messages of each side (system messages are in neither).
	CustomerCount int64
	AdminCount    int64
	// CustomerRead is the AdminN of the last message the customer has read; TeamRead the CustomerN
	// of the last message any admin has read (the team shares one read mark).
	CustomerRead int64
	TeamRead     int64

	// Latest holds up to MaxLatest newest messages, oldest first.
	Latest []Message
	// Pending holds messages committed to the conversation that may not be in the message history
	// yet; whoever finds them writes them there (idempotently) and clears them.
	Pending []Message

	// FirstReplyAt is when an admin first answered; FirstReplySeconds how long after the
	// conversation started that was.
	FirstReplyAt      *time.Time
	FirstReplySeconds int64
	// AwayNoticeAt is when the away prompt was last posted into the conversation.
	AwayNoticeAt *time.Time
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
}

// AdminStatus is what an admin sets through the presence endpoint.
type AdminStatus string

// The admin statuses. Offline is never set: it is what an expired heartbeat reads as.
const (
	AdminOnline  AdminStatus = "online"
	AdminAway    AdminStatus = "away"
	AdminOffline AdminStatus = "offline"
)
