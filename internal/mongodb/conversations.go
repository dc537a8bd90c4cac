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

// Store keeps chat's conversation logs, views and write marks, settings, admins and
// idempotency records.
// Every filter it sends holds the tenant id, so one tenant never reads or changes another's
// documents.
type Store struct {
	conversations *mongo.Collection
	entries       *mongo.Collection
	marks         *mongo.Collection
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
	errEntryTaken           = &chat.Error{Code: chat.Conflict, Message: "entry sequence number or id taken"}
	errConversationNotFound = &chat.Error{Code: chat.NotFound, Message: "conversation not found"}
	errEntryNotFound        = &chat.Error{Code: chat.NotFound, Message: "entry not found"}
)

// newestFirst returns the order of lists: latest activity first, greater id first among equal
// times.
func newestFirst() bson.D {
	return bson.D{{Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}
}

// Append stores entries in order. It stops at the first entry whose
// (tenant, conversation, seq) or whose id within the conversation is taken and returns how
// many it stored before it, with an error matching chat.ErrConflict. The uniqueness of the
// entries' _id (tenant, conversation, seq) and of (tenant_id, conversation_id, eid) makes this
// the commit point of every write, on MongoDB and FerretDB alike.
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

// Entry returns the entry of a conversation with id. Returns chat.ErrNotFound when there is
// none.
func (s *Store) Entry(ctx context.Context, tenantID, convID, id string) (*chat.Entry, error) {
	var d entryDoc
	err := s.entries.FindOne(ctx, bson.M{"tenant_id": tenantID, "conversation_id": convID, "eid": id}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errEntryNotFound
	}
	if err != nil {
		return nil, wrap("find entry", err)
	}
	e := d.entry()
	return &e, nil
}

// probedEntries is how many entries EntriesAfter looks up one by one, by _id, before it asks
// for the rest with one range query. A writer rarely finds more than a couple of entries it has
// not seen; looking them up by _id keeps FerretDB on SQLite from scanning the whole log.
const probedEntries = 4

// EntriesAfter returns the entries of a conversation with seq above seq, in order. Entries are
// numbered without gaps, so the first seq not found ends them.
func (s *Store) EntriesAfter(ctx context.Context, tenantID, convID string, seq int64) ([]chat.Entry, error) {
	var entries []chat.Entry
	for next := seq + 1; next <= seq+probedEntries; next++ {
		var d entryDoc
		err := s.entries.FindOne(ctx, bson.M{"_id": entryKey(tenantID, convID, next)}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return entries, nil
		}
		if err != nil {
			return nil, wrap("entries after", err)
		}
		entries = append(entries, d.entry())
	}
	cur, err := s.entries.Find(ctx,
		bson.M{"tenant_id": tenantID, "conversation_id": convID, "seq": bson.M{"$gt": seq + probedEntries}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, wrap("entries after", err)
	}
	var docs []entryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("entries after", err)
	}
	for i := range docs {
		entries = append(entries, docs[i].entry())
	}
	return entries, nil
}

// Mark stores the write mark m.
func (s *Store) Mark(ctx context.Context, m chat.WriteMark) error {
	_, err := s.marks.InsertOne(ctx, markDoc{ID: m.ID, TenantID: m.TenantID, ConversationID: m.ConversationID, CustomerID: m.CustomerID, At: m.At, Done: m.Done})
	return wrap("mark write", err)
}

// FinishMark sets the write mark id of the tenant done. Only the mark's writer changes it, so
// the update needs no atomicity.
func (s *Store) FinishMark(ctx context.Context, tenantID, id string) error {
	_, err := s.marks.UpdateOne(ctx, bson.M{"_id": id, "tenant_id": tenantID}, bson.M{"$set": bson.M{"done": true}})
	return wrap("finish write mark", err)
}

// Unmark deletes the write marks ids of the tenant.
func (s *Store) Unmark(ctx context.Context, tenantID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.marks.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": ids}, "tenant_id": tenantID})
	return wrap("unmark writes", err)
}

// Marks returns up to limit write marks of the tenant that are not done; only those of
// customerID's conversations when it is not "".
func (s *Store) Marks(ctx context.Context, tenantID, customerID string, limit int) ([]chat.WriteMark, error) {
	filter := bson.M{"tenant_id": tenantID, "done": false}
	if customerID != "" {
		filter["customer_id"] = customerID
	}
	return s.findMarks(ctx, filter, limit)
}

// ConversationMarks returns every write mark of a conversation, done or not.
func (s *Store) ConversationMarks(ctx context.Context, tenantID, convID string) ([]chat.WriteMark, error) {
	return s.findMarks(ctx, bson.M{"tenant_id": tenantID, "conversation_id": convID}, 0)
}

// findMarks returns the write marks matching filter, at most limit (0: all).
func (s *Store) findMarks(ctx context.Context, filter bson.M, limit int) ([]chat.WriteMark, error) {
	cur, err := s.marks.Find(ctx, filter, options.Find().SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("write marks", err)
	}
	var docs []markDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap("write marks", err)
	}
	marks := make([]chat.WriteMark, len(docs))
	for i := range docs {
		marks[i] = docs[i].mark()
	}
	return marks, nil
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
