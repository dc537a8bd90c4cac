package mongodb

import (
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// conversationDoc is a chat.Conversation in the conversations collection.
type conversationDoc struct {
	ID           string           `bson:"_id"`
	TenantID     string           `bson:"tenant_id"`
	Status       string           `bson:"status"`
	Subject      string           `bson:"subject"`
	Customer     participantDoc   `bson:"customer"`
	Participants []participantDoc `bson:"participants"`
	Context      *contextDoc      `bson:"context,omitempty"`
	// Assignee is "" when the conversation is unassigned.
	Assignee  string    `bson:"assignee"`
	CreatedAt time.Time `bson:"created_at"`
	UpdatedAt time.Time `bson:"updated_at"`

	Version       int64 `bson:"version"`
	LastSeq       int64 `bson:"last_seq"`
	CustomerCount int64 `bson:"customer_count"`
	AdminCount    int64 `bson:"admin_count"`
	CustomerRead  int64 `bson:"customer_read"`
	TeamRead      int64 `bson:"team_read"`
	// TeamUnread is derived (customer_count > team_read) for the unread filter and its index.
	TeamUnread bool `bson:"team_unread"`

	Latest  []embeddedMessageDoc `bson:"latest"`
	Pending []embeddedMessageDoc `bson:"pending"`

	FirstReplyAt      *time.Time `bson:"first_reply_at,omitempty"`
	FirstReplySeconds int64      `bson:"first_reply_seconds"`
	AwayNoticeAt      *time.Time `bson:"away_notice_at,omitempty"`
}

// participantDoc is a chat.Participant.
type participantDoc struct {
	ID   string `bson:"id"`
	Role string `bson:"role"`
	Name string `bson:"name"`
}

// contextDoc is a chat.Context.
type contextDoc struct {
	OrderID   string `bson:"order_id"`
	ProductID string `bson:"product_id"`
	PageURL   string `bson:"page_url"`
}

// embeddedMessageDoc is a chat.Message inside its conversation (latest and pending).
type embeddedMessageDoc struct {
	ID        string         `bson:"id"`
	Seq       int64          `bson:"seq"`
	Sender    participantDoc `bson:"sender"`
	Body      string         `bson:"body"`
	CreatedAt time.Time      `bson:"created_at"`
	CustomerN int64          `bson:"customer_n"`
	AdminN    int64          `bson:"admin_n"`
}

// messageDoc is a chat.Message in the messages collection (the history).
type messageDoc struct {
	ID             string         `bson:"_id"`
	TenantID       string         `bson:"tenant_id"`
	ConversationID string         `bson:"conversation_id"`
	Seq            int64          `bson:"seq"`
	Sender         participantDoc `bson:"sender"`
	Body           string         `bson:"body"`
	CreatedAt      time.Time      `bson:"created_at"`
	CustomerN      int64          `bson:"customer_n"`
	AdminN         int64          `bson:"admin_n"`
}

// toConversationDoc returns the document of c.
func toConversationDoc(c *chat.Conversation) *conversationDoc {
	d := &conversationDoc{
		ID:                c.ID,
		TenantID:          c.TenantID,
		Status:            string(c.Status),
		Subject:           c.Subject,
		Customer:          toParticipantDoc(c.Customer),
		Participants:      make([]participantDoc, len(c.Participants)),
		Assignee:          c.Assignee,
		CreatedAt:         c.CreatedAt,
		UpdatedAt:         c.UpdatedAt,
		Version:           c.Version,
		LastSeq:           c.LastSeq,
		CustomerCount:     c.CustomerCount,
		AdminCount:        c.AdminCount,
		CustomerRead:      c.CustomerRead,
		TeamRead:          c.TeamRead,
		TeamUnread:        c.TeamUnread(),
		Latest:            toEmbeddedDocs(c.Latest),
		Pending:           toEmbeddedDocs(c.Pending),
		FirstReplyAt:      c.FirstReplyAt,
		FirstReplySeconds: c.FirstReplySeconds,
		AwayNoticeAt:      c.AwayNoticeAt,
	}
	for i, p := range c.Participants {
		d.Participants[i] = toParticipantDoc(p)
	}
	if c.Context != nil {
		d.Context = &contextDoc{OrderID: c.Context.OrderID, ProductID: c.Context.ProductID, PageURL: c.Context.PageURL}
	}
	return d
}

// conversation returns the chat.Conversation of d.
func (d *conversationDoc) conversation() *chat.Conversation {
	c := &chat.Conversation{
		ID:                d.ID,
		TenantID:          d.TenantID,
		Status:            chat.Status(d.Status),
		Subject:           d.Subject,
		Customer:          d.Customer.participant(),
		Participants:      make([]chat.Participant, len(d.Participants)),
		Assignee:          d.Assignee,
		CreatedAt:         d.CreatedAt.UTC(),
		UpdatedAt:         d.UpdatedAt.UTC(),
		Version:           d.Version,
		LastSeq:           d.LastSeq,
		CustomerCount:     d.CustomerCount,
		AdminCount:        d.AdminCount,
		CustomerRead:      d.CustomerRead,
		TeamRead:          d.TeamRead,
		Latest:            messagesOf(d.ID, d.Latest),
		Pending:           messagesOf(d.ID, d.Pending),
		FirstReplyAt:      utc(d.FirstReplyAt),
		FirstReplySeconds: d.FirstReplySeconds,
		AwayNoticeAt:      utc(d.AwayNoticeAt),
	}
	for i, p := range d.Participants {
		c.Participants[i] = p.participant()
	}
	if d.Context != nil {
		c.Context = &chat.Context{OrderID: d.Context.OrderID, ProductID: d.Context.ProductID, PageURL: d.Context.PageURL}
	}
	return c
}

// toParticipantDoc returns the document of p.
func toParticipantDoc(p chat.Participant) participantDoc {
	return participantDoc{ID: p.ID, Role: string(p.Role), Name: p.Name}
}

// participant returns the chat.Participant of d.
func (d participantDoc) participant() chat.Participant {
	return chat.Participant{ID: d.ID, Role: chat.Role(d.Role), Name: d.Name}
}

// toEmbeddedDocs returns the embedded documents of msgs; never nil, so the field is an array.
func toEmbeddedDocs(msgs []chat.Message) []embeddedMessageDoc {
	docs := make([]embeddedMessageDoc, len(msgs))
	for i, m := range msgs {
		docs[i] = embeddedMessageDoc{
			ID:        m.ID,
			Seq:       m.Seq,
			Sender:    toParticipantDoc(m.Sender),
			Body:      m.Body,
			CreatedAt: m.CreatedAt,
			CustomerN: m.CustomerN,
			AdminN:    m.AdminN,
		}
	}
	return docs
}

// messagesOf returns the messages of conversation convID embedded as docs; nil for none.
func messagesOf(convID string, docs []embeddedMessageDoc) []chat.Message {
	if len(docs) == 0 {
		return nil
	}
	msgs := make([]chat.Message, len(docs))
	for i, d := range docs {
		msgs[i] = chat.Message{
			ID:             d.ID,
			ConversationID: convID,
			Seq:            d.Seq,
			Sender:         d.Sender.participant(),
			Body:           d.Body,
			CreatedAt:      d.CreatedAt.UTC(),
			CustomerN:      d.CustomerN,
			AdminN:         d.AdminN,
		}
	}
	return msgs
}

// toMessageDoc returns the history document of m for tenantID.
func toMessageDoc(tenantID string, m chat.Message) messageDoc {
	return messageDoc{
		ID:             m.ID,
		TenantID:       tenantID,
		ConversationID: m.ConversationID,
		Seq:            m.Seq,
		Sender:         toParticipantDoc(m.Sender),
		Body:           m.Body,
		CreatedAt:      m.CreatedAt,
		CustomerN:      m.CustomerN,
		AdminN:         m.AdminN,
	}
}

// message returns the chat.Message of d.
func (d *messageDoc) message() chat.Message {
	return chat.Message{
		ID:             d.ID,
		ConversationID: d.ConversationID,
		Seq:            d.Seq,
		Sender:         d.Sender.participant(),
		Body:           d.Body,
		CreatedAt:      d.CreatedAt.UTC(),
		CustomerN:      d.CustomerN,
		AdminN:         d.AdminN,
	}
}

// utc returns t in UTC, or nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
