package mongodb

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
)

// The views: the conversations collection, one document per conversation, a cache of its log
// that lists, filters and paging read.

// newestFirst returns the order of lists: latest activity first, greater id first among equal
// times.
func newestFirst() bson.D {
	return bson.D{{Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}
}

// View returns the view of conversation id of the tenant. Returns chat.ErrNotFound when there
// is none.
func (s *Store) View(ctx context.Context, tenantID, id string) (*chat.Conversation, error) {
	d, err := findByID[conversationDoc](ctx, s, s.conversations, tenantID, id, "find conversation", errConversationNotFound)
	if err != nil {
		return nil, err
	}
	return d.conversation(), nil
}

// Project stores c as the view of its conversation, unless the stored view is at c.Seq or
// beyond already. On MongoDB the replace is atomic, so a view only moves forward; on servers
// whose updates are not (FerretDB), the log looks again afterwards (see AtomicReplace).
func (s *Store) Project(ctx context.Context, c *chat.Conversation) error {
	if err := s.breaker.allow("project conversation"); err != nil {
		return err
	}
	filter := bson.M{"_id": c.ID, "tenant_id": c.TenantID, "seq": bson.M{"$lt": c.Seq}}
	doc := toConversationDoc(c)
	_, err := s.conversations.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		// The view exists but did not match: it is newer, or it was created by a racing
		// upsert just now. Without the upsert the replace tells which, atomically on MongoDB.
		_, err = s.conversations.ReplaceOne(ctx, filter, doc)
	}
	return s.wrap("project conversation", err)
}

// ProjectNew stores the views of conversations that have none yet, many per insert, as Project
// would one by one; a conversation that has a view keeps it, whatever its Seq. It is for logs
// written in bulk (the benchmarks seed their tenants so): Project's conditional replace makes
// FerretDB with SQLite decode every view of the collection, once per conversation.
func (s *Store) ProjectNew(ctx context.Context, views []*chat.Conversation) error {
	if len(views) == 0 {
		return nil
	}
	if err := s.breaker.allow("project new conversations"); err != nil {
		return err
	}
	docs := make([]any, len(views))
	for i, c := range views {
		docs[i] = toConversationDoc(c)
	}
	_, err := s.conversations.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if onlyDuplicateKeys(err) {
		return nil
	}
	return s.wrap("project new conversations", err)
}

// AtomicReplace reports whether the server applies Project's conditional replace atomically:
// MongoDB does; FerretDB v1 reads the matching document, then writes it back by _id without
// looking at the condition again.
func (s *Store) AtomicReplace(ctx context.Context) bool { return !s.server.isFerretDB(ctx) }

// ListConversations returns up to limit conversations of the tenant matching f, newest
// UpdatedAt first (ties: greater id first), strictly after the position after when not nil.
func (s *Store) ListConversations(ctx context.Context, tenantID string, f chat.ListFilter, after *chat.Position, limit int) ([]*chat.Conversation, error) {
	filter := bson.M{"tenant_id": tenantID}
	if f.CustomerID != "" {
		filter[s.customerField()] = f.CustomerID
	}
	if f.Status != "" {
		filter["status"] = string(f.Status)
	}
	if f.Assignee != nil {
		filter["assignee"] = *f.Assignee
	}
	if f.TeamUnread {
		filter["team_unread"] = true
	}
	if !f.UpdatedSince.IsZero() {
		// A range on the key every list index sorts by, right after its equality keys, so the
		// same indexes serve the delta: the scan starts at the newest and stops at since.
		filter["updated_at"] = bson.M{"$gt": f.UpdatedSince}
	}
	if after != nil {
		filter["$or"] = bson.A{
			bson.M{"updated_at": bson.M{"$lt": after.UpdatedAt}},
			bson.M{"updated_at": after.UpdatedAt, "_id": bson.M{"$lt": after.ID}},
		}
	}
	return s.findConversations(ctx, "list conversations", filter, limit)
}

// customerField returns the field a customer's list filters on: customer_id on FerretDB once
// every view has it, which FerretDB v1 hands to its backend as it does every equality on a
// top-level field (its PostgreSQL backend then returns that customer's few views instead of
// the whole tenant); customer.id otherwise, the key of MongoDB's index tenant_customer_updated.
func (s *Store) customerField() string {
	if s.customerTop.Load() {
		return "customer_id"
	}
	return "customer.id"
}

// AssignedOpen returns up to limit open conversations of the tenant assigned to adminID, latest
// activity first.
func (s *Store) AssignedOpen(ctx context.Context, tenantID, adminID string, limit int) ([]*chat.Conversation, error) {
	filter := bson.M{"tenant_id": tenantID, "assignee": adminID, "status": string(chat.StatusOpen)}
	return s.findConversations(ctx, "assigned conversations", filter, limit)
}

// findConversations returns up to limit conversations matching filter, newest first.
func (s *Store) findConversations(ctx context.Context, op string, filter bson.M, limit int) ([]*chat.Conversation, error) {
	return s.findViews(ctx, op, filter, newestFirst(), limit)
}

// findViews returns up to limit conversations matching filter in the order sort.
func (s *Store) findViews(ctx context.Context, op string, filter bson.M, sort bson.D, limit int) ([]*chat.Conversation, error) {
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	docs, err := findAll[conversationDoc](ctx, s, op, s.conversations, filter,
		options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	convs := make([]*chat.Conversation, len(docs))
	for i := range docs {
		convs[i] = docs[i].conversation()
	}
	return convs, nil
}

// FirstReplySeconds returns the first-reply times, in seconds, of up to limit conversations of
// the tenant first answered at or after since, newest first.
func (s *Store) FirstReplySeconds(ctx context.Context, tenantID string, since time.Time, limit int) ([]int64, error) {
	if limit <= 0 {
		return nil, nil
	}
	if err := s.breaker.allow("first reply times"); err != nil {
		return nil, err
	}
	docs, err := findAll[struct {
		Seconds int64 `bson:"first_reply_seconds"`
	}](ctx, s, "first reply times", s.conversations,
		bson.M{"tenant_id": tenantID, "first_reply_at": bson.M{"$gte": since}},
		options.Find().
			SetSort(bson.D{{Key: "first_reply_at", Value: -1}}).
			SetProjection(bson.M{"_id": 0, "first_reply_seconds": 1}).
			SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	secs := make([]int64, len(docs))
	for i, d := range docs {
		secs[i] = d.Seconds
	}
	return secs, nil
}
