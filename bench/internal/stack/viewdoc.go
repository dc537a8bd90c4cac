package stack

import (
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// viewsCollection is the store's collection of conversation views.
const viewsCollection = "conversations"

// viewDoc is a copy of internal/mongodb's conversationDoc, the view of a conversation that
// lists read, so Seed can insert views in bulk. checkViewDoc compares it with what the store
// writes on every Seed.
type viewDoc struct {
	ID         string       `bson:"_id"`
	TenantID   string       `bson:"tenant_id"`
	Subject    string       `bson:"subject"`
	Customer   participant  `bson:"customer"`
	CustomerID string       `bson:"customer_id"`
	Context    *shopContext `bson:"context,omitempty"`
	CreatedAt  time.Time    `bson:"created_at"`
	State      state        `bson:",inline"`
	// TeamUnread is derived (customer_count > team_read).
	TeamUnread bool      `bson:"team_unread"`
	Latest     []message `bson:"latest"`
}

type state struct {
	Seq               int64         `bson:"seq"`
	Status            string        `bson:"status"`
	Assignee          string        `bson:"assignee"`
	Admins            []participant `bson:"admins"`
	UpdatedAt         time.Time     `bson:"updated_at"`
	CustomerCount     int64         `bson:"customer_count"`
	AdminCount        int64         `bson:"admin_count"`
	CustomerRead      int64         `bson:"customer_read"`
	TeamRead          int64         `bson:"team_read"`
	FirstReplyAt      *time.Time    `bson:"first_reply_at,omitempty"`
	FirstReplySeconds int64         `bson:"first_reply_seconds"`
	AwayNoticeAt      *time.Time    `bson:"away_notice_at,omitempty"`
}

type participant struct {
	ID   string `bson:"id"`
	Role string `bson:"role"`
	Name string `bson:"name"`
}

type shopContext struct {
	OrderID   string `bson:"order_id"`
	ProductID string `bson:"product_id"`
	PageURL   string `bson:"page_url"`
}

type message struct {
	ID        string      `bson:"id"`
	Seq       int64       `bson:"seq"`
	Sender    participant `bson:"sender"`
	Body      string      `bson:"body"`
	CreatedAt time.Time   `bson:"created_at"`
	CustomerN int64       `bson:"customer_n"`
	AdminN    int64       `bson:"admin_n"`
}

// toViewDoc returns the view document of c.
func toViewDoc(c *chat.Conversation) *viewDoc {
	d := &viewDoc{
		ID:         c.ID,
		TenantID:   c.TenantID,
		Subject:    c.Subject,
		Customer:   toParticipant(c.Customer),
		CustomerID: c.Customer.ID,
		CreatedAt:  c.CreatedAt,
		State: state{
			Seq:               c.Seq,
			Status:            string(c.Status),
			Assignee:          c.Assignee,
			Admins:            make([]participant, len(c.Admins)),
			UpdatedAt:         c.UpdatedAt,
			CustomerCount:     c.CustomerCount,
			AdminCount:        c.AdminCount,
			CustomerRead:      c.CustomerRead,
			TeamRead:          c.TeamRead,
			FirstReplyAt:      c.FirstReplyAt,
			FirstReplySeconds: c.FirstReplySeconds,
			AwayNoticeAt:      c.AwayNoticeAt,
		},
		TeamUnread: c.TeamUnread(),
		Latest:     make([]message, len(c.Latest)),
	}
	if c.Context != nil {
		d.Context = &shopContext{OrderID: c.Context.OrderID, ProductID: c.Context.ProductID, PageURL: c.Context.PageURL}
	}
	for i, p := range c.Admins {
		d.State.Admins[i] = toParticipant(p)
	}
	for i, m := range c.Latest {
		d.Latest[i] = message{ID: m.ID, Seq: m.Seq, Sender: toParticipant(m.Sender), Body: m.Body, CreatedAt: m.CreatedAt, CustomerN: m.CustomerN, AdminN: m.AdminN}
	}
	return d
}

func toParticipant(p chat.Participant) participant {
	return participant{ID: p.ID, Role: string(p.Role), Name: p.Name}
}
