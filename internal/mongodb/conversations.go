package mongodb

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
)

// Store keeps chat's conversation logs and views, settings, admins and idempotency records.
// Every filter it sends holds the tenant id, so one tenant never reads or changes another's
// documents.
type Store struct {
	conversations *mongo.Collection
	entries       *mongo.Collection
	settings      *mongo.Collection
	admins        *mongo.Collection
	idempotency   *mongo.Collection
	now           func() time.Time
	log           *slog.Logger
}

var (
	_ chat.ConversationStore = (*Store)(nil)
	_ chat.SettingsStore     = (*Store)(nil)
	_ chat.AdminStore        = (*Store)(nil)
	_ idempotency.Store      = (*Store)(nil)
)

// The errors the store returns for what is not there or taken.
var (
	errEntryTaken           = &chat.Error{Code: chat.Conflict, Message: "entry id or sequence number taken"}
	errConversationNotFound = &chat.Error{Code: chat.NotFound, Message: "conversation not found"}
	errEntryNotFound        = &chat.Error{Code: chat.NotFound, Message: "entry not found"}
)

// newestFirst returns the order of lists: latest activity first, greater id first among equal
// times.
func newestFirst() bson.D {
	return bson.D{{Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}
}

// Append stores entries in order, each marked unprojected. It stops at the first entry whose id
// or (tenant, conversation, seq) is taken and returns how many it stored before it, with an
// error matching chat.ErrConflict. The unique index on (tenant_id, conversation_id, seq) makes
// this the commit point of every write, on MongoDB and FerretDB alike.
func (s *Store) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	docs := make([]any, len(entries))
	for i, e := range entries {
		docs[i] = toEntryDoc(e)
	}
	_, err := s.entries.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
	if err == nil {
		return len(entries), nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 {
		return 0, wrap("append entries", err)
	}
	// An ordered insert stops at its first failing document: those before it are stored.
	first := bwe.WriteErrors[0]
	if bwe.WriteConcernError == nil && isDuplicateKey(first.Code) {
		return first.Index, errEntryTaken
	}
	return first.Index, wrap("append entries", err)
}

// isDuplicateKey reports whether a write error code is a unique-key violation.
func isDuplicateKey(code int) bool { return code == 11000 || code == 11001 }

// Entry returns entry id of a conversation. Returns chat.ErrNotFound when there is none.
func (s *Store) Entry(ctx context.Context, tenantID, convID, id string) (*chat.Entry, error) {
	return s.findEntry(ctx, "find entry", bson.M{"_id": id, "tenant_id": tenantID, "conversation_id": convID}, nil)
}

// FirstEntry returns the conversation's entry with the least seq. Returns chat.ErrNotFound when
// it has none.
func (s *Store) FirstEntry(ctx context.Context, tenantID, convID string) (*chat.Entry, error) {
	return s.findEntry(ctx, "first entry", bson.M{"tenant_id": tenantID, "conversation_id": convID}, bson.D{{Key: "seq", Value: 1}})
}

// LastEntry returns the conversation's entry with the greatest seq. Returns chat.ErrNotFound
// when it has none.
func (s *Store) LastEntry(ctx context.Context, tenantID, convID string) (*chat.Entry, error) {
	return s.findEntry(ctx, "last entry", bson.M{"tenant_id": tenantID, "conversation_id": convID}, bson.D{{Key: "seq", Value: -1}})
}

// findEntry returns the first entry matching filter in sort order.
func (s *Store) findEntry(ctx context.Context, op string, filter bson.M, sort bson.D) (*chat.Entry, error) {
	opts := options.FindOne()
	if sort != nil {
		opts.SetSort(sort)
	}
	var d entryDoc
	err := s.entries.FindOne(ctx, filter, opts).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errEntryNotFound
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	e := d.entry()
	return &e, nil
}

// Unprojected returns up to limit entries of the tenant still marked unprojected; only those of
// customerID's conversations when it is not "".
func (s *Store) Unprojected(ctx context.Context, tenantID, customerID string, limit int) ([]chat.Entry, error) {
	filter := bson.M{"tenant_id": tenantID, "unprojected": true}
	if customerID != "" {
		filter["customer_id"] = customerID
	}
	cur, err := s.entries.Find(ctx, filter, options.Find().SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("unprojected entries", err)
	}
	var docs []entryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("unprojected entries", err)
	}
	entries := make([]chat.Entry, len(docs))
	for i := range docs {
		entries[i] = docs[i].entry()
	}
	return entries, nil
}

// MarkProjected clears the unprojected mark of the entries ids of a conversation.
func (s *Store) MarkProjected(ctx context.Context, tenantID, convID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.entries.UpdateMany(ctx,
		bson.M{"_id": bson.M{"$in": ids}, "tenant_id": tenantID, "conversation_id": convID},
		bson.M{"$unset": bson.M{"unprojected": ""}})
	return wrap("mark entries projected", err)
}

// Messages returns up to limit messages of the conversation with seq below before (0: from the
// newest), newest first.
func (s *Store) Messages(ctx context.Context, tenantID, convID string, before int64, limit int) ([]chat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	filter := bson.M{"tenant_id": tenantID, "conversation_id": convID, "kind": string(chat.EntryMessage)}
	if before > 0 {
		filter["seq"] = bson.M{"$lt": before}
	}
	cur, err := s.entries.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(int64(limit)).
			SetProjection(bson.M{"conversation_id": 1, "message": 1}))
	if err != nil {
		return nil, wrap("list messages", err)
	}
	var docs []entryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("list messages", err)
	}
	msgs := make([]chat.Message, 0, len(docs))
	for _, d := range docs {
		if d.Message != nil {
			msgs = append(msgs, d.Message.message(d.ConversationID))
		}
	}
	return msgs, nil
}

// Project stores c as the view of its conversation, unless the stored view is at c.Seq or
// beyond already. On MongoDB the replace is atomic, so a view only moves forward; on servers
// whose updates are not (FerretDB), the caller checks the log afterwards (chat.Service.project).
func (s *Store) Project(ctx context.Context, c *chat.Conversation) error {
	filter := bson.M{"_id": c.ID, "tenant_id": c.TenantID, "seq": bson.M{"$lt": c.Seq}}
	doc := toConversationDoc(c)
	_, err := s.conversations.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		// The view exists but did not match: it is newer, or it was created by a racing
		// upsert just now. Without the upsert the replace tells which, atomically on MongoDB.
		_, err = s.conversations.ReplaceOne(ctx, filter, doc)
	}
	return wrap("project conversation", err)
}

// Conversation returns the view of conversation id of the tenant. Returns chat.ErrNotFound when
// there is none.
func (s *Store) Conversation(ctx context.Context, tenantID, id string) (*chat.Conversation, error) {
	var d conversationDoc
	err := s.conversations.FindOne(ctx, bson.M{"_id": id, "tenant_id": tenantID}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errConversationNotFound
	}
	if err != nil {
		return nil, wrap("find conversation", err)
	}
	return d.conversation(), nil
}

// ListConversations returns up to limit conversations of the tenant matching f, newest
// UpdatedAt first (ties: greater id first), strictly after the position after when not nil.
func (s *Store) ListConversations(ctx context.Context, tenantID string, f chat.ListFilter, after *chat.Position, limit int) ([]*chat.Conversation, error) {
	filter := bson.M{"tenant_id": tenantID}
	if f.CustomerID != "" {
		filter["customer.id"] = f.CustomerID
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
	if after != nil {
		filter["$or"] = bson.A{
			bson.M{"updated_at": bson.M{"$lt": after.UpdatedAt}},
			bson.M{"updated_at": after.UpdatedAt, "_id": bson.M{"$lt": after.ID}},
		}
	}
	return s.findConversations(ctx, "list conversations", filter, limit)
}

// AssignedOpen returns up to limit open conversations of the tenant assigned to adminID, latest
// activity first.
func (s *Store) AssignedOpen(ctx context.Context, tenantID, adminID string, limit int) ([]*chat.Conversation, error) {
	filter := bson.M{"tenant_id": tenantID, "assignee": adminID, "status": string(chat.StatusOpen)}
	return s.findConversations(ctx, "assigned conversations", filter, limit)
}

// findConversations returns up to limit conversations matching filter, newest first.
func (s *Store) findConversations(ctx context.Context, op string, filter bson.M, limit int) ([]*chat.Conversation, error) {
	if limit <= 0 {
		return nil, nil
	}
	cur, err := s.conversations.Find(ctx, filter, options.Find().SetSort(newestFirst()).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap(op, err)
	}
	var docs []conversationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(op, err)
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
	cur, err := s.conversations.Find(ctx,
		bson.M{"tenant_id": tenantID, "first_reply_at": bson.M{"$gte": since}},
		options.Find().
			SetSort(bson.D{{Key: "first_reply_at", Value: -1}}).
			SetProjection(bson.M{"_id": 0, "first_reply_seconds": 1}).
			SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("first reply times", err)
	}
	var docs []struct {
		Seconds int64 `bson:"first_reply_seconds"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("first reply times", err)
	}
	secs := make([]int64, len(docs))
	for i, d := range docs {
		secs[i] = d.Seconds
	}
	return secs, nil
}
