package stack

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/mongodb"
)

// Plan says what Seed stores in a tenant.
type Plan struct {
	// Conversations is how many conversations to store.
	Conversations int
	// Customers is how many customers they belong to: conversation i is customer i%Customers's.
	Customers int
	// Admins is how many admins answer, in turn. Default 4.
	Admins int
	// Messages is how many messages each conversation has, the customer's and an admin's in
	// turn, the customer's first. Default 3.
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

// messageID returns the id of message m of conversation i.
func messageID(i, m int) string { return fmt.Sprintf("feed%02x%018x", m, i) }

// conversation returns the log entries and the view of conversation i of p in tenantID,
// computed as chat.Service computes them for a start followed by replies (see newConversation,
// Conversation.record and addMessage in internal/chat).
func (p Plan) conversation(tenantID string, i int) ([]chat.Entry, *chat.Conversation) {
	custID, custName := Customer(i % p.Customers)
	customer := chat.Participant{ID: custID, Role: chat.RoleCustomer, Name: custName}
	adminID, adminName := Admin(i % p.Admins)
	admin := chat.Participant{ID: adminID, Role: chat.RoleAdmin, Name: adminName}
	// Conversation i's last message is i seconds before p.Now; its messages a minute apart.
	last := p.Now.Add(-time.Duration(i) * time.Second).Truncate(time.Millisecond)
	created := last.Add(-time.Duration(p.Messages-1) * time.Minute)
	c := &chat.Conversation{
		Header: chat.Header{ID: conversationID(i), TenantID: tenantID, Subject: fmt.Sprintf("Question %d about my order", i), Customer: customer, CreatedAt: created},
		State:  chat.State{Status: chat.StatusOpen, UpdatedAt: created},
	}
	// Resolved and assigned from the start, so every entry's state and the view agree.
	if p.OpenEvery > 1 && i%p.OpenEvery != 0 {
		c.Status = chat.StatusResolved
	}
	if p.Assign {
		c.Assignee = adminID
	}
	entries := make([]chat.Entry, 0, p.Messages)
	for m := range p.Messages {
		now := created.Add(time.Duration(m) * time.Minute)
		sender, body := customer, fmt.Sprintf("Hello, this is message %d of customer %s: where is order %d?", m, custID, i)
		c.UpdatedAt = now
		if m%2 == 1 {
			sender, body = admin, fmt.Sprintf("Hi %s, this is %s: your order %d ships today.", custName, adminName, i)
			c.AdminCount++
			c.TeamRead = c.CustomerCount
			if len(c.Admins) == 0 {
				c.Admins = []chat.Participant{admin}
			}
			if c.FirstReplyAt == nil {
				at := now
				c.FirstReplyAt = &at
				c.FirstReplySeconds = int64(now.Sub(c.CreatedAt) / time.Second)
			}
		} else {
			c.CustomerCount++
			c.CustomerRead = c.AdminCount
		}
		seq := int64(m + 1)
		msg := chat.Message{ID: messageID(i, m), ConversationID: c.ID, Seq: seq, Sender: sender, Body: body, CreatedAt: now, CustomerN: c.CustomerCount, AdminN: c.AdminCount}
		c.Latest = append(c.Latest, msg)
		if len(c.Latest) > chat.MaxLatest {
			c.Latest = c.Latest[1:]
		}
		c.Seq = seq
		e := chat.Entry{ID: msg.ID, TenantID: tenantID, ConversationID: c.ID, CustomerID: custID, Seq: seq, Kind: chat.EntryMessage, At: now, By: sender, Message: &msg, State: cloneState(c.State)}
		if seq == 1 {
			h := c.Header
			e.Header = &h
		}
		entries = append(entries, e)
	}
	return entries, c
}

// cloneState returns a copy of st sharing nothing with it.
func cloneState(st chat.State) chat.State {
	st.Admins = append([]chat.Participant(nil), st.Admins...)
	if st.FirstReplyAt != nil {
		at := *st.FirstReplyAt
		st.FirstReplyAt = &at
	}
	return st
}

// Seed stores p's conversations in tenantID's record at uri and database, in bulk, p.Batch
// conversations per insert: the entries through the service's own store (Store.Append, one
// ordered insert per batch) and the views with InsertMany of viewDoc, a copy of the store's
// document; the first view is projected by the store (Store.Project) and Seed fails unless
// the copy encodes it identically. Projecting every view through the store would take ~0.2 s
// each on FerretDB with SQLite. Seed builds the indexes first, as the service does.
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
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(5 * time.Minute))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	views := client.Database(database).Collection(viewsCollection)

	for from := 0; from < p.Conversations; from += p.Batch {
		to := min(from+p.Batch, p.Conversations)
		var entries []chat.Entry
		docs := make([]any, 0, to-from)
		for i := from; i < to; i++ {
			e, c := p.conversation(tenantID, i)
			entries = append(entries, e...)
			if i == 0 {
				if err := checkViewDoc(ctx, store, views, c); err != nil {
					return err
				}
				continue
			}
			docs = append(docs, toViewDoc(c))
		}
		// One after the other: FerretDB's SQLite files take one writer at a time, so inserting
		// the entries and the views side by side is no faster. The entries are not pending:
		// their events are nobody's, so the log's relay has nothing to publish.
		if n, err := store.Append(ctx, entries); err != nil {
			return fmt.Errorf("append entries of conversations %d..%d: stored %d: %w", from, to-1, n, err)
		}
		if len(docs) > 0 {
			if _, err := views.InsertMany(ctx, docs); err != nil {
				return fmt.Errorf("insert views of conversations %d..%d: %w", from, to-1, err)
			}
		}
		if p.Progress != nil {
			p.Progress(to)
		}
	}
	return nil
}

// checkViewDoc projects c through the store and fails unless the document stored is the one
// toViewDoc makes of c, field for field and in the same order.
func checkViewDoc(ctx context.Context, store *mongodb.Store, views *mongo.Collection, c *chat.Conversation) error {
	if err := store.Project(ctx, c); err != nil {
		return fmt.Errorf("project %s: %w", c.ID, err)
	}
	var stored bson.D
	if err := views.FindOne(ctx, bson.M{"_id": c.ID}).Decode(&stored); err != nil {
		return fmt.Errorf("read the projected view %s from %q: %w", c.ID, viewsCollection, err)
	}
	raw, err := bson.Marshal(toViewDoc(c))
	if err != nil {
		return err
	}
	var ours bson.D
	if err := bson.Unmarshal(raw, &ours); err != nil {
		return err
	}
	if diff := cmp.Diff(stored, ours); diff != "" {
		return fmt.Errorf("the store's conversation document changed; update viewDoc in bench/internal/stack (-store +bench):\n%s", diff)
	}
	return nil
}
