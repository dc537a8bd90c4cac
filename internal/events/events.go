// Package events publishes every change of Support Chat on Redis pub/sub, one channel per
// tenant, so each replica can deliver live events to the clients it serves.
package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
)

// Channel returns the pub/sub channel of a tenant's events.
func Channel(tenantID string) string { return "chat:{" + tenantID + "}:events" }

// Envelope is an event on the wire: what changed and where, without message bodies or names,
// so a subscriber fetches what it is allowed to see through the API's own access rules.
type Envelope struct {
	Type           chat.EventType `json:"type"`
	TenantID       string         `json:"tenant_id"`
	ConversationID string         `json:"conversation_id,omitempty"`
	CustomerID     string         `json:"customer_id,omitempty"`
	MessageID      string         `json:"message_id,omitempty"`
	At             time.Time      `json:"at"`
}

// Observer counts published events; it may be nil.
type Observer interface {
	EventPublished(eventType string, err error)
}

// Publisher publishes events on Redis. A publish that fails is logged and dropped: MongoDB is
// the record, and clients catch up by listing.
type Publisher struct {
	rdb redis.Cmdable
	log *slog.Logger
	obs Observer
}

var _ chat.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher on rdb. obs may be nil.
func NewPublisher(rdb redis.Cmdable, log *slog.Logger, obs Observer) *Publisher {
	return &Publisher{rdb: rdb, log: log, obs: obs}
}

// Publish sends e to its tenant's channel.
func (p *Publisher) Publish(ctx context.Context, e chat.Event) {
	env := Envelope{Type: e.Type, TenantID: e.TenantID, ConversationID: e.ConversationID, CustomerID: e.CustomerID, At: e.At}
	if e.Message != nil {
		env.MessageID = e.Message.ID
	}
	payload, err := json.Marshal(env)
	if err == nil {
		err = p.rdb.Publish(ctx, Channel(e.TenantID), payload).Err()
	}
	if p.obs != nil {
		p.obs.EventPublished(string(e.Type), err)
	}
	if err != nil {
		p.log.DebugContext(ctx, "event not published", "tenant", e.TenantID, "type", e.Type, "error", err)
	}
}
