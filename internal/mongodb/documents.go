package mongodb

import (
	"strconv"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// entryDoc is a chat.Entry in the entries collection: the log of every conversation. Its _id
// is its place in the log (entryKey), so the write path finds entries by _id alone, the one
// lookup every MongoDB wire server answers from an index (FerretDB's SQLite backend scans the
// collection for any other filter); EID is the entry's own id (chat.Entry.ID).
type entryDoc struct {
	Key            string         `bson:"_id"`
	EID            string         `bson:"eid"`
	TenantID       string         `bson:"tenant_id"`
	ConversationID string         `bson:"conversation_id"`
	CustomerID     string         `bson:"customer_id"`
	Seq            int64          `bson:"seq"`
	Kind           string         `bson:"kind"`
	At             time.Time      `bson:"at"`
	By             participantDoc `bson:"by"`
	Header         *headerDoc     `bson:"header,omitempty"`
	Message        *messageDoc    `bson:"message,omitempty"`
	State          stateDoc       `bson:"state"`
	// Pending is set until the entry's events are published (chat.Entry.Pending); only
	// pending entries have the field, and the partial index pending_at holds just those.
	Pending bool `bson:"pending,omitempty"`
	// Hook is set until webhooks took the entry up (Store.Hooked); the partial index hook_at
	// holds just those.
	Hook bool `bson:"hook,omitempty"`
}

// headerDoc is a chat.Header without its ids (the documents holding it have them).
type headerDoc struct {
	Subject   string         `bson:"subject"`
	Customer  participantDoc `bson:"customer"`
	Context   *contextDoc    `bson:"context,omitempty"`
	CreatedAt time.Time      `bson:"created_at"`
}

// stateDoc is a chat.State. Conversation views hold it inline, so its fields are queried and
// indexed there (status, assignee, updated_at).
type stateDoc struct {
	Seq               int64            `bson:"seq"`
	Status            string           `bson:"status"`
	Assignee          string           `bson:"assignee"` // "" when unassigned
	Admins            []participantDoc `bson:"admins"`
	UpdatedAt         time.Time        `bson:"updated_at"`
	CustomerCount     int64            `bson:"customer_count"`
	AdminCount        int64            `bson:"admin_count"`
	CustomerRead      int64            `bson:"customer_read"`
	TeamRead          int64            `bson:"team_read"`
	FirstReplyAt      *time.Time       `bson:"first_reply_at,omitempty"`
	FirstReplySeconds int64            `bson:"first_reply_seconds"`
	AwayNoticeAt      *time.Time       `bson:"away_notice_at,omitempty"`
}

// conversationDoc is a chat.Conversation in the conversations collection: the view of a
// conversation's log that lists read.
type conversationDoc struct {
	ID       string         `bson:"_id"`
	TenantID string         `bson:"tenant_id"`
	Subject  string         `bson:"subject"`
	Customer participantDoc `bson:"customer"`
	// CustomerID repeats Customer.ID at the top level, where FerretDB v1 hands an equality to
	// its backend (it keeps dotted paths to itself): a customer's list on FerretDB filters on it
	// (docs/SCALE.md).
	CustomerID string      `bson:"customer_id"`
	Context    *contextDoc `bson:"context,omitempty"`
	CreatedAt  time.Time   `bson:"created_at"`
	State      stateDoc    `bson:",inline"`
	// TeamUnread is derived (customer_count > team_read) for the unread filter and its index.
	TeamUnread bool         `bson:"team_unread"`
	Latest     []messageDoc `bson:"latest"`
}

// participantDoc is a chat.Participant.
type participantDoc struct {
	ID   string `bson:"id"`
	Role string `bson:"role"`
	Name string `bson:"name"`
}

// contextDoc is a chat.ShopContext.
type contextDoc struct {
	OrderID   string `bson:"order_id"`
	ProductID string `bson:"product_id"`
	PageURL   string `bson:"page_url"`
}

// messageDoc is a chat.Message inside an entry or a view; the conversation id is the
// enclosing document's.
type messageDoc struct {
	ID        string         `bson:"id"`
	Seq       int64          `bson:"seq"`
	Sender    participantDoc `bson:"sender"`
	Body      string         `bson:"body"`
	CreatedAt time.Time      `bson:"created_at"`
	CustomerN int64          `bson:"customer_n"`
	AdminN    int64          `bson:"admin_n"`
}

// toEntryDoc returns the document of e.
func toEntryDoc(e chat.Entry) *entryDoc {
	d := &entryDoc{
		Key:            entryKey(e.TenantID, e.ConversationID, e.Seq),
		EID:            e.ID,
		TenantID:       e.TenantID,
		ConversationID: e.ConversationID,
		CustomerID:     e.CustomerID,
		Seq:            e.Seq,
		Kind:           string(e.Kind),
		At:             e.At,
		By:             toParticipantDoc(e.By),
		State:          toStateDoc(e.State),
		Pending:        e.Pending,
	}
	if e.Header != nil {
		h := toHeaderDoc(*e.Header)
		d.Header = &h
	}
	if e.Message != nil {
		m := toMessageDoc(*e.Message)
		d.Message = &m
	}
	return d
}

// entryKey returns the _id of entry seq of a conversation: tenant, conversation and seq.
func entryKey(tenantID, convID string, seq int64) string {
	return tenantID + ":" + convID + ":" + strconv.FormatInt(seq, 10)
}

// entry returns the chat.Entry of d.
func (d *entryDoc) entry() chat.Entry {
	e := chat.Entry{
		ID:             d.EID,
		TenantID:       d.TenantID,
		ConversationID: d.ConversationID,
		CustomerID:     d.CustomerID,
		Seq:            d.Seq,
		Kind:           chat.EntryKind(d.Kind),
		At:             d.At.UTC(),
		By:             d.By.participant(),
		State:          d.State.state(),
		Pending:        d.Pending,
	}
	if d.Header != nil {
		h := d.Header.header(d.ConversationID, d.TenantID)
		e.Header = &h
	}
	if d.Message != nil {
		m := d.Message.message(d.ConversationID)
		e.Message = &m
	}
	return e
}

// toHeaderDoc returns the document of h.
func toHeaderDoc(h chat.Header) headerDoc {
	d := headerDoc{Subject: h.Subject, Customer: toParticipantDoc(h.Customer), CreatedAt: h.CreatedAt}
	if h.Context != nil {
		d.Context = &contextDoc{OrderID: h.Context.OrderID, ProductID: h.Context.ProductID, PageURL: h.Context.PageURL}
	}
	return d
}

// header returns the chat.Header of d for conversation id of tenantID.
func (d *headerDoc) header(id, tenantID string) chat.Header {
	h := chat.Header{ID: id, TenantID: tenantID, Subject: d.Subject, Customer: d.Customer.participant(), CreatedAt: d.CreatedAt.UTC()}
	if d.Context != nil {
		h.Context = &chat.ShopContext{OrderID: d.Context.OrderID, ProductID: d.Context.ProductID, PageURL: d.Context.PageURL}
	}
	return h
}

// toStateDoc returns the document of st.
func toStateDoc(st chat.State) stateDoc {
	d := stateDoc{
		Seq:               st.Seq,
		Status:            string(st.Status),
		Assignee:          st.Assignee,
		Admins:            make([]participantDoc, len(st.Admins)),
		UpdatedAt:         st.UpdatedAt,
		CustomerCount:     st.CustomerCount,
		AdminCount:        st.AdminCount,
		CustomerRead:      st.CustomerRead,
		TeamRead:          st.TeamRead,
		FirstReplyAt:      st.FirstReplyAt,
		FirstReplySeconds: st.FirstReplySeconds,
		AwayNoticeAt:      st.AwayNoticeAt,
	}
	for i, p := range st.Admins {
		d.Admins[i] = toParticipantDoc(p)
	}
	return d
}

// state returns the chat.State of d.
func (d *stateDoc) state() chat.State {
	st := chat.State{
		Seq:               d.Seq,
		Status:            chat.Status(d.Status),
		Assignee:          d.Assignee,
		UpdatedAt:         d.UpdatedAt.UTC(),
		CustomerCount:     d.CustomerCount,
		AdminCount:        d.AdminCount,
		CustomerRead:      d.CustomerRead,
		TeamRead:          d.TeamRead,
		FirstReplyAt:      utc(d.FirstReplyAt),
		FirstReplySeconds: d.FirstReplySeconds,
		AwayNoticeAt:      utc(d.AwayNoticeAt),
	}
	if len(d.Admins) > 0 {
		st.Admins = make([]chat.Participant, len(d.Admins))
		for i, p := range d.Admins {
			st.Admins[i] = p.participant()
		}
	}
	return st
}

// toConversationDoc returns the document of the view c.
func toConversationDoc(c *chat.Conversation) *conversationDoc {
	h := toHeaderDoc(c.Header)
	d := &conversationDoc{
		ID:         c.ID,
		TenantID:   c.TenantID,
		Subject:    h.Subject,
		Customer:   h.Customer,
		CustomerID: h.Customer.ID,
		Context:    h.Context,
		CreatedAt:  h.CreatedAt,
		State:      toStateDoc(c.State),
		TeamUnread: c.TeamUnread(),
		Latest:     make([]messageDoc, len(c.Latest)),
	}
	for i, m := range c.Latest {
		d.Latest[i] = toMessageDoc(m)
	}
	return d
}

func (d conversationDoc) tenant() string { return d.TenantID }

// conversation returns the chat.Conversation of d.
func (d *conversationDoc) conversation() *chat.Conversation {
	h := headerDoc{Subject: d.Subject, Customer: d.Customer, Context: d.Context, CreatedAt: d.CreatedAt}
	c := &chat.Conversation{Header: h.header(d.ID, d.TenantID), State: d.State.state()}
	if len(d.Latest) > 0 {
		c.Latest = make([]chat.Message, len(d.Latest))
		for i, m := range d.Latest {
			c.Latest[i] = m.message(d.ID)
		}
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

// toMessageDoc returns the document of m.
func toMessageDoc(m chat.Message) messageDoc {
	return messageDoc{
		ID:        m.ID,
		Seq:       m.Seq,
		Sender:    toParticipantDoc(m.Sender),
		Body:      m.Body,
		CreatedAt: m.CreatedAt,
		CustomerN: m.CustomerN,
		AdminN:    m.AdminN,
	}
}

// message returns the chat.Message of d in conversation convID.
func (d *messageDoc) message(convID string) chat.Message {
	return chat.Message{
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

// utc returns t in UTC, or nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
