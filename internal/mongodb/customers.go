package mongodb

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
)

// A customer's data, page by page, for export and erasure (internal/datarights): their
// conversations' views, the logs of conversations that may have none yet, and a log in pages
// so that a conversation with 10,000 messages is never read whole.

// CustomerViews returns up to limit views of the conversations of a customer of the tenant, by
// id, after the id after ("" from the first).
func (s *Store) CustomerViews(ctx context.Context, tenantID, customerID, after string, limit int) ([]*chat.Conversation, error) {
	filter := bson.M{"tenant_id": tenantID, s.customerField(): customerID}
	if after != "" {
		filter["_id"] = bson.M{"$gt": after}
	}
	return s.findViews(ctx, "customer conversations", filter, bson.D{{Key: "_id", Value: 1}}, limit)
}

// CustomerLogs returns the ids of up to limit conversations of a customer of the tenant that
// have log entries, by id after the id after: with CustomerViews, it finds a conversation
// whose first write died before it made the view, and what a write that raced an erasure left.
func (s *Store) CustomerLogs(ctx context.Context, tenantID, customerID, after string, limit int) ([]string, error) {
	const op = "customer logs"
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	var ids []string
	for len(ids) < limit {
		filter := bson.M{"tenant_id": tenantID, "customer_id": customerID}
		if after != "" {
			filter["conversation_id"] = bson.M{"$gt": after}
		}
		// One entry per conversation: the next page starts after the conversation found.
		docs, err := findAll[struct {
			ConversationID string `bson:"conversation_id"`
		}](ctx, s, op, s.entries, filter, options.Find().
			SetSort(bson.D{{Key: "conversation_id", Value: 1}}).
			SetProjection(bson.M{"_id": 0, "conversation_id": 1}).
			SetLimit(1))
		if err != nil || len(docs) == 0 {
			return ids, err
		}
		after = docs[0].ConversationID
		ids = append(ids, after)
	}
	return ids, nil
}

// EntriesPage returns up to limit entries of a conversation with Seq above after, in order.
// Its filter's equalities on the conversation are what FerretDB hands to its backend: it then
// reads that conversation's log, not the tenant's (a filter of _id $in would read the whole
// collection).
func (s *Store) EntriesPage(ctx context.Context, tenantID, convID string, after int64, limit int) ([]chat.Entry, error) {
	const op = "entries page"
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	filter := bson.M{"tenant_id": tenantID, "conversation_id": convID, "seq": bson.M{"$gt": after}}
	docs, err := findAll[entryDoc](ctx, s, op, s.entries, filter,
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	entries := make([]chat.Entry, 0, len(docs))
	for i := range docs {
		if docs[i].Seq != after+1+int64(i) {
			break // numbered without gaps: a gap is a log being erased
		}
		entries = append(entries, docs[i].entry())
	}
	return entries, nil
}
