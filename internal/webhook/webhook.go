// Package webhook delivers a tenant's events to the endpoints its admins register, as the
// Standard Webhooks specification signs them: the management of endpoints, the fan-out of
// every durable change (a log entry, a support transition) into deliveries, and the workers
// that send them, retry them on a schedule and record every attempt (docs/WEBHOOKS.md).
package webhook

import (
	"context"
	"encoding/json"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// EventTypes are the event types an endpoint may subscribe to (PRODUCT.md).
var EventTypes = []chat.EventType{chat.EventConversationCreated, chat.EventConversationUpdated, chat.EventMessageCreated, chat.EventSupportChanged}

// Endpoint is a receiver of a tenant's events.
type Endpoint struct {
	ID          string
	TenantID    string
	URL         string
	Events      []chat.EventType
	Description string
	Enabled     bool
	// DisabledReason says why the service disabled the endpoint (the receiver answered 410,
	// or failed for longer than the retry schedule); empty when an admin did, or it is enabled.
	DisabledReason string
	// Secrets sign deliveries: the current one first, then those rotated out that still sign
	// until their Expires.
	Secrets   []Secret
	CreatedAt time.Time
	UpdatedAt time.Time
	// Slot is the endpoint's place among its tenant's, unique per tenant: it bounds their
	// number on every server, without an atomic count.
	Slot int
}

// Secret is a signing secret of an endpoint: "whsec_" and the base64 of its key.
type Secret struct {
	Value     string
	CreatedAt time.Time
	// Expires is when a rotated-out secret stops signing; zero for the current one.
	Expires time.Time
}

// Subscribes reports whether e receives events of type t.
func (e *Endpoint) Subscribes(t chat.EventType) bool {
	for _, s := range e.Events {
		if s == t {
			return true
		}
	}
	return false
}

// signing returns the secrets of e that sign at now.
func (e *Endpoint) signing(now time.Time) []Secret {
	var out []Secret
	for _, s := range e.Secrets {
		if s.Expires.IsZero() || now.Before(s.Expires) {
			out = append(out, s)
		}
	}
	return out
}

// State is where a delivery stands.
type State string

// The states of a delivery.
const (
	// Pending: queued, not yet delivered; its next attempt is NextAt.
	Pending State = "pending"
	// Delivered: the receiver answered 2xx.
	Delivered State = "delivered"
	// Dead: the last attempt failed, or the receiver refused it (4xx), or its endpoint was
	// disabled or deleted while it was queued. An admin may redeliver it.
	Dead State = "dead"
)

// Delivery is one event for one endpoint, and its attempts. Its ID is the webhook-id header:
// the same on every attempt and redelivery, so receivers can drop repeats.
type Delivery struct {
	ID         string
	TenantID   string
	EndpointID string
	// EventID is the id of the event (chat.Event.ID).
	EventID string
	Type    chat.EventType
	// Body is the JSON payload, fixed at fan-out: every attempt sends the same bytes.
	Body json.RawMessage
	// Order sorts the deliveries of an endpoint in event order.
	Order     string
	State     State
	CreatedAt time.Time
	// NextAt is the next attempt of a pending delivery.
	NextAt time.Time
	// Attempts are the attempts made, oldest first (at most maxAttemptsKept).
	Attempts []Attempt
	// Tries counts the attempts of the current round: the schedule's step. Since is when the
	// round began: its creation, or its redelivery.
	Tries int
	Since time.Time
}

// Attempt is one try to deliver.
type Attempt struct {
	At time.Time
	// Status is the receiver's HTTP status; 0 when there was no answer.
	Status int
	// Duration is how long the request took.
	Duration time.Duration
	// Error says what went wrong, without the receiver's body: "timeout", "connection
	// refused", "address not allowed", "status 500".
	Error string
}

// Queued is a pending delivery in the queue the workers read: small, so that the servers that
// decode every document of a collection for a query (FerretDB) read little.
type Queued struct {
	ID         string
	TenantID   string
	EndpointID string
	Order      string
	NextAt     time.Time
	// Tries is the delivery's attempts in its current round: a queued delivery with tries
	// holds its endpoint's later deliveries back until NextAt.
	Tries     int
	CreatedAt time.Time
}

// Store keeps endpoints, deliveries and the queue (internal/mongodb). Every method is scoped by
// tenant id where it takes one.
type Store interface {
	// CreateEndpoint stores e in the first free slot below most of its tenant (setting
	// e.Slot); it returns a Conflict error when all are taken.
	CreateEndpoint(ctx context.Context, e *Endpoint, most int) error
	Endpoints(ctx context.Context, tenantID string) ([]Endpoint, error)
	// Endpoint returns chat.ErrNotFound when the tenant has no endpoint id.
	Endpoint(ctx context.Context, tenantID, id string) (*Endpoint, error)
	// ReplaceEndpoint stores e over the endpoint with its id and tenant.
	ReplaceEndpoint(ctx context.Context, e *Endpoint) error
	// DeleteEndpoint deletes the endpoint, its queue and its deliveries.
	DeleteEndpoint(ctx context.Context, tenantID, id string) error

	// AddDeliveries stores new deliveries and queues them; a delivery stored already (a
	// fan-out repeated) is queued again only while it is pending.
	AddDeliveries(ctx context.Context, ds []Delivery) error
	// Due returns up to limit queued deliveries of any endpoint due at now, in order.
	Due(ctx context.Context, now time.Time, limit int) ([]Queued, error)
	// Queue returns up to limit queued deliveries of one endpoint, in order, due or not.
	Queue(ctx context.Context, tenantID, endpointID string, limit int) ([]Queued, error)
	Delivery(ctx context.Context, tenantID, id string) (*Delivery, error)
	// SaveDelivery stores d and queues it as it stands: queued at NextAt while pending,
	// out of the queue otherwise.
	SaveDelivery(ctx context.Context, d *Delivery) error
	// Deliveries returns up to limit deliveries of an endpoint, newest first, created before
	// before (zero: from the newest) and, at equal times, with ids below beforeID.
	Deliveries(ctx context.Context, tenantID, endpointID string, before time.Time, beforeID string, limit int) ([]Delivery, error)
	// SweepDeliveries deletes up to limit delivered or dead deliveries created before
	// before, and returns how many.
	SweepDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
}

// Source is a durable record of changes whose events webhooks carry: the conversation log
// (internal/convlog), the support transitions (internal/mongodb). A change stays there until
// Unhook: a fan-out that dies before storing its deliveries is done again.
type Source interface {
	Hooked(ctx context.Context, limit int) ([]chat.Recorded, error)
	Unhook(ctx context.Context, marks []string) error
}

// Observer counts what webhooks do; the telemetry metrics implement it.
type Observer interface {
	// WebhookAttempt counts an attempt and its outcome: delivered, retry, dead.
	WebhookAttempt(outcome string, d time.Duration)
	// WebhookQueue reports the queue after a poll: how many deliveries are due, and how
	// late the oldest due one is.
	WebhookQueue(due int, lateness time.Duration)
	// WebhookFannedOut counts the deliveries a fan-out created.
	WebhookFannedOut(n int)
}

// Lease gives a named turn of work to one replica at a time (redisconn.Lease).
type Lease interface {
	Take(ctx context.Context, name string, ttl time.Duration) bool
}

// Bounds of the API.
const (
	// MaxEndpoints bounds the endpoints of one tenant.
	MaxEndpoints = 20
	// MaxDescription bounds an endpoint's description, in characters.
	MaxDescription = 500
	// MaxURL bounds an endpoint's URL, in bytes.
	MaxURL = 2048
	// maxAttemptsKept bounds the attempts a delivery keeps.
	maxAttemptsKept = 20
	// RotationOverlap is how long a rotated-out secret still signs.
	RotationOverlap = 24 * time.Hour
)
