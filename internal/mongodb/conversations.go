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

// Store keeps chat's conversations, messages, settings and idempotency records. Every filter
// it sends holds the tenant id, so one tenant never reads or changes another's documents.
type Store struct {
	conversations *mongo.Collection
	messages      *mongo.Collection
	settings      *mongo.Collection
	idempotency   *mongo.Collection
	now           func() time.Time
	log           *slog.Logger
}

var (
	_ chat.ConversationStore = (*Store)(nil)
	_ chat.SettingsStore     = (*Store)(nil)
	_ idempotency.Store      = (*Store)(nil)
)

// The errors the store returns for what is not there or changed meanwhile.
var (
	errConversationExists   = &chat.Error{Code: chat.Conflict, Message: "conversation already exists"}
	errConversationChanged  = &chat.Error{Code: chat.Conflict, Message: "conversation changed meanwhile; try again"}
	errConversationNotFound = &chat.Error{Code: chat.NotFound, Message: "conversation not found"}
	errMessageNotFound      = &chat.Error{Code: chat.NotFound, Message: "message not found"}
)

// newestFirst returns the order of lists: latest activity first, greater id first among equal
// times.
func newestFirst() bson.D {
	return bson.D{{Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}
}

// CreateConversation stores the new conversation c. Returns chat.ErrConflict when its id exists.
func (s *Store) CreateConversation(ctx context.Context, c *chat.Conversation) error {
	_, err := s.conversations.InsertOne(ctx, toConversationDoc(c))
	if mongo.IsDuplicateKeyError(err) {
		return errConversationExists
	}
	return wrap("create conversation", err)
}

// Conversation returns the conversation id of the tenant. Returns chat.ErrNotFound when there
// is none.
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

// UpdateConversation replaces the stored conversation with c if its stored version is still
// prev. Returns chat.ErrConflict when it changed meanwhile, chat.ErrNotFound when it is gone.
func (s *Store) UpdateConversation(ctx context.Context, c *chat.Conversation, prev int64) error {
	res, err := s.conversations.ReplaceOne(ctx,
		bson.M{"_id": c.ID, "tenant_id": c.TenantID, "version": prev},
		toConversationDoc(c))
	if err != nil {
		return wrap("update conversation", err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	n, err := s.conversations.CountDocuments(ctx, bson.M{"_id": c.ID, "tenant_id": c.TenantID}, options.Count().SetLimit(1))
	if err != nil {
		return wrap("update conversation", err)
	}
	if n == 0 {
		return errConversationNotFound
	}
	return errConversationChanged
}

// ClearPending empties the pending messages of a conversation if its first pending message is
// still firstID; it does nothing otherwise.
func (s *Store) ClearPending(ctx context.Context, tenantID, convID, firstID string) error {
	_, err := s.conversations.UpdateOne(ctx,
		bson.M{"_id": convID, "tenant_id": tenantID, "pending.0.id": firstID},
		bson.M{"$set": bson.M{"pending": bson.A{}}})
	return wrap("clear pending", err)
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

// InsertMessages adds msgs to the tenant's message history; a message already there is
// skipped, so replaying pending messages is safe.
func (s *Store) InsertMessages(ctx context.Context, tenantID string, msgs []chat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	docs := make([]any, len(msgs))
	for i, m := range msgs {
		docs[i] = toMessageDoc(tenantID, m)
	}
	_, err := s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if onlyDuplicates(err) {
		return nil
	}
	return wrap("insert messages", err)
}

// onlyDuplicates reports whether err is a bulk write error of duplicate keys only.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 && we.Code != 11001 {
			return false
		}
	}
	return true
}

// Messages returns up to limit messages of the conversation with Seq below before (0: from the
// newest), newest first.
func (s *Store) Messages(ctx context.Context, tenantID, convID string, before int64, limit int) ([]chat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	filter := bson.M{"tenant_id": tenantID, "conversation_id": convID}
	if before > 0 {
		filter["seq"] = bson.M{"$lt": before}
	}
	cur, err := s.messages.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("list messages", err)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("list messages", err)
	}
	msgs := make([]chat.Message, len(docs))
	for i := range docs {
		msgs[i] = docs[i].message()
	}
	return msgs, nil
}

// Message returns the message id of the conversation. Returns chat.ErrNotFound when there is none.
func (s *Store) Message(ctx context.Context, tenantID, convID, id string) (*chat.Message, error) {
	var d messageDoc
	err := s.messages.FindOne(ctx, bson.M{"_id": id, "tenant_id": tenantID, "conversation_id": convID}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errMessageNotFound
	}
	if err != nil {
		return nil, wrap("find message", err)
	}
	m := d.message()
	return &m, nil
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
