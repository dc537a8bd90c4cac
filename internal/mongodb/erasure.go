package mongodb

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/datarights"
)

// Erasure: the jobs (the erasures collection) and the deletes that erase conversations from
// every collection that holds something of them, in bounded batches.

var (
	_ datarights.Jobs    = (*Store)(nil)
	_ datarights.Records = (*Store)(nil)
)

// deleteBatch bounds the documents one delete removes, so an erasure never holds the server
// for long.
const deleteBatch = 500

// erasureDoc is a datarights.Erasure.
type erasureDoc struct {
	ID          string            `bson:"_id"`
	TenantID    string            `bson:"tenant_id"`
	CustomerID  string            `bson:"customer_id,omitempty"`
	RequestedBy string            `bson:"requested_by"`
	RequestedAt time.Time         `bson:"requested_at"`
	State       string            `bson:"state"`
	Passes      int               `bson:"passes"`
	SettleAt    time.Time         `bson:"settle_at,omitempty"`
	DoneAt      time.Time         `bson:"done_at,omitempty"`
	Counts      datarights.Counts `bson:"counts"`
}

func (d erasureDoc) tenant() string { return d.TenantID }

func (d erasureDoc) erasure() *datarights.Erasure {
	return &datarights.Erasure{ID: d.ID, TenantID: d.TenantID, CustomerID: d.CustomerID, RequestedBy: d.RequestedBy,
		RequestedAt: d.RequestedAt.UTC(), State: datarights.State(d.State), Passes: d.Passes, SettleAt: d.SettleAt.UTC(),
		DoneAt: d.DoneAt.UTC(), Counts: d.Counts}
}

func toErasureDoc(e *datarights.Erasure) erasureDoc {
	return erasureDoc{ID: e.ID, TenantID: e.TenantID, CustomerID: e.CustomerID, RequestedBy: e.RequestedBy,
		RequestedAt: e.RequestedAt, State: string(e.State), Passes: e.Passes, SettleAt: e.SettleAt, DoneAt: e.DoneAt, Counts: e.Counts}
}

// AddErasure stores a new erasure.
func (s *Store) AddErasure(ctx context.Context, e *datarights.Erasure) error {
	if err := s.breaker.allow("add erasure"); err != nil {
		return err
	}
	_, err := s.erasures.InsertOne(ctx, toErasureDoc(e))
	return s.wrap("add erasure", err)
}

// Erasure returns erasure id of the tenant, or datarights.ErrNotFound.
func (s *Store) Erasure(ctx context.Context, tenantID, id string) (*datarights.Erasure, error) {
	d, err := findByID[erasureDoc](ctx, s, s.erasures, tenantID, id, "find erasure", datarights.ErrNotFound)
	if err != nil {
		return nil, err
	}
	return d.erasure(), nil
}

// ActiveErasure returns the pending erasure of a customer of the tenant, or nil.
func (s *Store) ActiveErasure(ctx context.Context, tenantID, customerID string) (*datarights.Erasure, error) {
	const op = "find pending erasure"
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	docs, err := findAll[erasureDoc](ctx, s, op, s.erasures,
		bson.M{"tenant_id": tenantID, "customer_id": customerID, "state": string(datarights.Pending)},
		options.Find().SetLimit(1))
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	return docs[0].erasure(), nil
}

// PendingErasures returns up to limit pending erasures of any tenant, the oldest first.
func (s *Store) PendingErasures(ctx context.Context, limit int) ([]datarights.Erasure, error) {
	const op = "pending erasures"
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	docs, err := findAll[erasureDoc](ctx, s, op, s.erasures, bson.M{"state": string(datarights.Pending)},
		options.Find().SetSort(bson.D{{Key: "requested_at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	out := make([]datarights.Erasure, len(docs))
	for i := range docs {
		out[i] = *docs[i].erasure()
	}
	return out, nil
}

// SaveErasure replaces the stored erasure with e.
func (s *Store) SaveErasure(ctx context.Context, e *datarights.Erasure) error {
	if err := s.breaker.allow("save erasure"); err != nil {
		return err
	}
	_, err := s.erasures.ReplaceOne(ctx, bson.M{"_id": e.ID, "tenant_id": e.TenantID}, toErasureDoc(e))
	return s.wrap("save erasure", err)
}

// LastEntry returns the entry of a conversation with the greatest Seq, or nil when it has none.
func (s *Store) LastEntry(ctx context.Context, tenantID, convID string) (*chat.Entry, error) {
	const op = "last entry"
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	docs, err := findAll[entryDoc](ctx, s, op, s.entries, bson.M{"tenant_id": tenantID, "conversation_id": convID},
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(1))
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	e := docs[0].entry()
	return &e, nil
}

// DeleteLog deletes the entries of a conversation up to upTo but its seal (chat.EntryErased),
// and the pending marks of the conversation, deleteBatch entries at a time. It returns how many
// entries, and how many messages among them, it deleted.
//
// A batch is found by equality on the conversation, a filter FerretDB hands to its backend
// (and MongoDB's index tenant_conversation_seq serves), then deleted entry by entry by _id in
// one bulk write: the one look-up every server answers from an index. A filter of _id $in
// would make FerretDB read the tenant's whole log for every batch.
func (s *Store) DeleteLog(ctx context.Context, tenantID, convID string, upTo int64) (entries, messages int64, err error) {
	const op = "delete log"
	find := options.Find().SetProjection(bson.M{"_id": 1, "kind": 1, "seq": 1}).SetLimit(deleteBatch + 1)
	stalls := 0
	for stalls < batchStalls {
		if err := s.breaker.allow(op); err != nil {
			return entries, messages, err
		}
		docs, err := findAll[struct {
			Key  string `bson:"_id"`
			Kind string `bson:"kind"`
			Seq  int64  `bson:"seq"`
		}](ctx, s, op, s.entries, bson.M{"tenant_id": tenantID, "conversation_id": convID}, find)
		if err != nil {
			return entries, messages, err
		}
		var dels []mongo.WriteModel
		var msgs int64
		for _, d := range docs {
			if d.Kind == string(chat.EntryErased) || d.Seq > upTo || len(dels) == deleteBatch {
				continue
			}
			if d.Kind == string(chat.EntryMessage) {
				msgs++
			}
			dels = append(dels, mongo.NewDeleteOneModel().SetFilter(bson.M{"_id": d.Key, "tenant_id": tenantID, "conversation_id": convID}))
		}
		if len(dels) == 0 {
			break
		}
		res, err := s.entries.BulkWrite(ctx, dels, options.BulkWrite().SetOrdered(false))
		if err != nil {
			return entries, messages, s.wrap(op, err)
		}
		entries += res.DeletedCount
		if res.DeletedCount == int64(len(dels)) {
			messages += msgs // every entry found is deleted: its messages with it
		} else {
			messages += msgs * res.DeletedCount / int64(len(dels)) // another deleter raced: an estimate
		}
		if res.DeletedCount == 0 {
			stalls++
		}
	}
	if stalls >= batchStalls {
		return entries, messages, fmt.Errorf("mongodb delete log: found entries to delete but deleted none %d times", stalls)
	}
	if _, err := s.outbox.DeleteMany(ctx, bson.M{"tenant_id": tenantID, "conversation_id": convID}); err != nil {
		return entries, messages, s.wrap(op, err)
	}
	return entries, messages, nil
}

// DeleteViews deletes the views of conversations of the tenant.
func (s *Store) DeleteViews(ctx context.Context, tenantID string, ids []string) (int64, error) {
	if err := s.breaker.allow("delete views"); err != nil {
		return 0, err
	}
	res, err := s.conversations.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": ids}, "tenant_id": tenantID})
	if err != nil {
		return 0, s.wrap("delete views", err)
	}
	return res.DeletedCount, nil
}

// DeleteIdempotencyOf deletes the idempotency records, and their responses, of the requests
// that wrote to conversations of the tenant. (A response stored before responses named their
// conversation is not found; it expires with its record, within the keys' ttl.)
func (s *Store) DeleteIdempotencyOf(ctx context.Context, tenantID string, ids []string) (int64, error) {
	const op = "delete idempotency records"
	if err := s.breaker.allow(op); err != nil {
		return 0, err
	}
	var total int64
	for {
		docs, err := findAll[struct {
			ID string `bson:"_id"`
		}](ctx, s, op, s.idempotency, bson.M{"tenant_id": tenantID, "conversation_id": bson.M{"$in": ids}},
			options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(deleteBatch/2))
		if err != nil || len(docs) == 0 {
			return total, err
		}
		var del []string
		for _, d := range docs {
			del = append(del, d.ID, strings.TrimSuffix(d.ID, responseSuffix))
		}
		res, err := s.idempotency.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": del}, "tenant_id": tenantID})
		if err != nil {
			return total, s.wrap(op, err)
		}
		total += res.DeletedCount
	}
}

// DeleteDeliveriesOf deletes the webhook deliveries of the events of conversations of the
// tenant, pending or done, and their places in the queue. A delivery names its conversation
// in its event id (tenant:conversation:seq/type) and its order (ms|conversation|seq|n).
func (s *Store) DeleteDeliveriesOf(ctx context.Context, tenantID string, ids []string) (int64, error) {
	const op = "delete webhook deliveries"
	if err := s.breaker.allow(op); err != nil {
		return 0, err
	}
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = regexp.QuoteMeta(id)
	}
	alt := "(" + strings.Join(quoted, "|") + ")"
	if _, err := deleteBatched(ctx, s.webhookQueue, bson.M{"tenant_id": tenantID, "order": bson.M{"$regex": `^[0-9]+\|` + alt + `\|`}}, deleteBatch); err != nil {
		return 0, s.wrap(op, err)
	}
	n, err := deleteBatched(ctx, s.webhookDeliveries, bson.M{"tenant_id": tenantID, "event_id": bson.M{"$regex": "^" + regexp.QuoteMeta(tenantID) + ":" + alt + ":"}}, deleteBatch)
	return n, s.wrap(op, err)
}

// ResolvedBefore returns up to limit conversations of the tenant resolved, and unchanged
// since, before before: the oldest first.
func (s *Store) ResolvedBefore(ctx context.Context, tenantID string, before time.Time, limit int) ([]*chat.Conversation, error) {
	return s.findViews(ctx, "resolved conversations",
		bson.M{"tenant_id": tenantID, "status": string(chat.StatusResolved), "updated_at": bson.M{"$lt": before}},
		bson.D{{Key: "updated_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
}
