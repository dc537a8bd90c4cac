package chat

import "time"

// EventType names what happened, as the event stream and webhooks name it (PRODUCT.md).
type EventType string

// The events writes produce.
const (
	EventConversationCreated EventType = "conversation.created"
	// EventConversationUpdated: status, assignee, read marks or participants changed.
	EventConversationUpdated EventType = "conversation.updated"
	EventMessageCreated      EventType = "message.created"
	// EventSupportChanged: the support block of the list changed (presence, settings, hours).
	EventSupportChanged EventType = "support.changed"
)

// Event is one change, published after it is committed. CustomerID says which customer may see
// it; events without one (support.changed) are for everyone of the tenant.
type Event struct {
	// ID identifies the change the event announces, for the events of log entries (see
	// EventID): every publication of one entry's events carries the same ids, so consumers can
	// drop repeats. Events without a durable source (support.changed) have none.
	ID             string
	Type           EventType
	TenantID       string
	ConversationID string
	CustomerID     string
	At             time.Time
	// Seq is the place in its conversation's log of the entry the event announces; zero for
	// events without one (support.changed).
	Seq int64
	// Conversation is the conversation after the change, for conversation and message events.
	Conversation *Conversation
	// Message is the new message, for message.created.
	Message *Message
	// Support is the tenant's support block after the change, for support.changed.
	Support *Support
}

// Summary returns the event's conversation as the tenant's admins (admin true) or its customer
// see it in the list, with its newest message. It returns nil for events without a conversation.
func (e Event) Summary(admin bool) *Summary {
	if e.Conversation == nil {
		return nil
	}
	caller := Caller{ID: e.Conversation.Customer.ID, Role: RoleCustomer}
	if admin {
		caller = Caller{Role: RoleAdmin}
	}
	v := summaryOf(e.Conversation, caller, 1)
	return &v
}

// Recorded are the events of one durable change (a log entry, a support transition) that
// webhooks have not taken up yet. Mark identifies the change to the record that holds it.
type Recorded struct {
	Mark   string
	Events []Event
}
