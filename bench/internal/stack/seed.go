package stack

import (
	"context"
	"fmt"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/mongodb"
)

// Plan says what Seed stores in a tenant.
type Plan struct {
	// Conversations is how many conversations to store.
	Conversations int
	// First is the index of the first conversation: Seed stores conversations First to
	// First+Conversations-1, whose ids and times follow from their index. Default 0; a second
	// Seed of the same tenant starts where the first ended.
	First int
	// Customers is how many customers they belong to: conversation i is customer
	// FirstCustomer+i%Customers's.
	Customers int
	// FirstCustomer is the index of the first of the customers. Default 0.
	FirstCustomer int
	// Admins is how many admins answer, in turn. Default 4.
	Admins int
	// Messages is how many messages each conversation has, the customer's and an admin's in
	// turn, the customer's first, at most 4096. Default 3.
	Messages int
	// OpenEvery, when above 1, leaves only every OpenEvery-th conversation open (0, k, 2k, ...)
	// and the others resolved, as in a desk that answers. Default: every one open.
	OpenEvery int
	// Assign assigns each conversation to the admin who answers it.
	Assign bool
	// Batch is how many conversations are written per insert. Default 1000.
	Batch int
	// Progress, when set, is told how many conversations are stored after each batch.
	Progress func(stored int)
	// Now is the time of the newest conversation's last message; the others are older by a
	// second each. Default time.Now.
	Now time.Time
}

// Customer returns the id and name of customer i.
func Customer(i int) (id, name string) {
	return fmt.Sprintf("cust-%06d", i), fmt.Sprintf("Customer %d", i)
}

// Admin returns the id and name of admin i.
func Admin(i int) (id, name string) {
	return fmt.Sprintf("admin-%d", i), fmt.Sprintf("Agent %d", i)
}

// conversationID returns the id of conversation i: 24 hex digits, as the service's ids are.
func conversationID(i int) string { return fmt.Sprintf("c0ffee%018x", i) }

// messageID returns the id of message m (below 4096) of conversation i.
func messageID(i, m int) string { return fmt.Sprintf("feed%03x%017x", m, i) }

// conversationLog returns the log of conversation i of p in tenantID: a start followed by
// replies, each entry with the state chat.Service would record (see newConversation,
// Conversation.Record and addMessage in internal/chat).
func (p Plan) conversationLog(tenantID string, i int) []chat.Entry {
	custID, custName := Customer(p.FirstCustomer + i%p.Customers)
	customer := chat.Participant{ID: custID, Role: chat.RoleCustomer, Name: custName}
	adminID, adminName := Admin(i % p.Admins)
	admin := chat.Participant{ID: adminID, Role: chat.RoleAdmin, Name: adminName}
	// Conversation i's last message is i seconds before p.Now; its messages a minute apart.
	last := p.Now.Add(-time.Duration(i) * time.Second).Truncate(time.Millisecond)
	created := last.Add(-time.Duration(p.Messages-1) * time.Minute)
	header := chat.Header{ID: conversationID(i), TenantID: tenantID, Subject: fmt.Sprintf("Question %d about my order", i), Customer: customer, CreatedAt: created}
	st := chat.State{Status: chat.StatusOpen, UpdatedAt: created}
	// Resolved and assigned from the start, so that every entry's state and the view agree.
	if p.OpenEvery > 1 && i%p.OpenEvery != 0 {
		st.Status = chat.StatusResolved
	}
	if p.Assign {
		st.Assignee = adminID
	}
	entries := make([]chat.Entry, 0, p.Messages)
	for m := range p.Messages {
		now := created.Add(time.Duration(m) * time.Minute)
		sender, body := customer, fmt.Sprintf("Hello, this is message %d of customer %s: where is order %d?", m, custID, i)
		st.UpdatedAt = now
		if m%2 == 1 {
			sender, body = admin, fmt.Sprintf("Hi %s, this is %s: your order %d ships today.", custName, adminName, i)
			st.AdminCount++
			st.TeamRead = st.CustomerCount
			if len(st.Admins) == 0 {
				st.Admins = []chat.Participant{admin}
			}
			if st.FirstReplyAt == nil {
				at := now
				st.FirstReplyAt = &at
				st.FirstReplySeconds = int64(now.Sub(created) / time.Second)
			}
		} else {
			st.CustomerCount++
			st.CustomerRead = st.AdminCount
		}
		st.Seq = int64(m + 1)
		msg := chat.Message{ID: messageID(i, m), ConversationID: header.ID, Seq: st.Seq, Sender: sender, Body: body, CreatedAt: now, CustomerN: st.CustomerCount, AdminN: st.AdminCount}
		e := chat.Entry{ID: msg.ID, TenantID: tenantID, ConversationID: header.ID, CustomerID: custID, Seq: st.Seq, Kind: chat.EntryMessage, At: now, By: sender, Message: &msg, State: st}
		// The entries share st's Admins and FirstReplyAt, which are set once and never changed.
		if st.Seq == 1 {
			h := header
			e.Header = &h
		}
		entries = append(entries, e)
	}
	return entries
}

// Seed stores p's conversations in tenantID's record at uri and database through the service's
// own store, p.Batch conversations at a time: their logs with Store.Append (one ordered insert
// per batch), then their views, made from the logs by chat.FromLog as the log's readers make
// them, with Store.ProjectNew (one insert per batch). Seed builds the indexes first, as the
// service does.
func Seed(ctx context.Context, uri, database, tenantID string, p Plan) error {
	if p.Customers <= 0 {
		p.Customers = 1
	}
	if p.Admins <= 0 {
		p.Admins = 4
	}
	if p.Messages <= 0 {
		p.Messages = 3
	}
	if p.Batch <= 0 {
		p.Batch = 1000
	}
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	if p.Conversations <= 0 {
		return nil
	}
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer func() { _ = db.Close(context.WithoutCancel(ctx)) }()
	if err := db.EnsureIndexes(ctx); err != nil {
		return err
	}
	store := db.Store()
	for from := p.First; from < p.First+p.Conversations; from += p.Batch {
		to := min(from+p.Batch, p.First+p.Conversations)
		var entries []chat.Entry
		views := make([]*chat.Conversation, 0, to-from)
		for i := from; i < to; i++ {
			convLog := p.conversationLog(tenantID, i)
			c, ok := chat.FromLog(convLog)
			if !ok {
				return fmt.Errorf("the log of conversation %d does not start it", i)
			}
			entries = append(entries, convLog...)
			views = append(views, c)
		}
		// One after the other: FerretDB's SQLite files take one writer at a time, so inserting
		// the entries and the views side by side is no faster. The entries are not pending:
		// their events are nobody's, so the log's relay has nothing to publish.
		if n, err := store.Append(ctx, entries); err != nil {
			return fmt.Errorf("append entries of conversations %d..%d: stored %d: %w", from, to-1, n, err)
		}
		if err := store.ProjectNew(ctx, views); err != nil {
			return fmt.Errorf("project views of conversations %d..%d: %w", from, to-1, err)
		}
		if p.Progress != nil {
			p.Progress(to - p.First)
		}
	}
	return nil
}
