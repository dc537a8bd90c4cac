package chat

import "time"

// EventType names what happened.
type EventType string

// The events every write produces.
const (
	EventConversationCreated EventType = "conversation.created"
	EventConversationUpdated EventType = "conversation.updated"
	EventMessageCreated      EventType = "message.created"
	EventConversationRead    EventType = "conversation.read"
	EventPresenceChanged     EventType = "presence.changed"
	EventSettingsChanged     EventType = "settings.changed"
)

// Event is one change, published after it is stored. CustomerID says which customer may see it;
// events without one are for the tenant's admins only (and, for presence, everyone).
type Event struct {
	Type           EventType
	TenantID       string
	ConversationID string
	CustomerID     string
	At             time.Time
	// Conversation is the conversation after the change, for conversation events.
	Conversation *Conversation
	// Message is the new message, for message.created.
	Message *Message
	// Support is the tenant's support state after a presence change.
	Support *Support
}
