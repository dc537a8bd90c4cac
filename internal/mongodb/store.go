package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/idempotency"
)

// Store keeps the conversation logs and their views, settings, admins and idempotency
// records. Every document it reads or writes is its tenant's: filters hold the tenant id, or
// the tenant is part of the _id, or (for the look-up by _id alone that FerretDB's SQLite
// backend answers without decoding every document) the document's tenant is checked.
type Store struct {
	conversations     *mongo.Collection
	entries           *mongo.Collection
	settings          *mongo.Collection
	admins            *mongo.Collection
	idempotency       *mongo.Collection
	outbox            *mongo.Collection
	webhookEndpoints  *mongo.Collection
	webhookDeliveries *mongo.Collection
	webhookQueue      *mongo.Collection
	supportChanges    *mongo.Collection
	erasures          *mongo.Collection
	audit             *mongo.Collection
	marks             PendingMarks
	now               func() time.Time
	log               *slog.Logger
	server            *serverKind
	breaker           *breaker
	// customerTop is set once every view has customer_id on FerretDB (backfillCustomerID);
	// until then, and always on MongoDB, a customer's list filters on customer.id.
	customerTop atomic.Bool
}

var (
	_ convlog.Store      = (*Store)(nil)
	_ chat.Store         = (*Store)(nil)
	_ chat.SettingsStore = (*Store)(nil)
	_ chat.AdminStore    = (*Store)(nil)
	_ idempotency.Store  = (*Store)(nil)
)

// The errors the store returns for what is not there or taken.
var (
	errEntryTaken           = &chat.Error{Code: chat.Conflict, Message: "entry sequence number or id taken"}
	errConversationNotFound = &chat.Error{Code: chat.NotFound, Message: "conversation not found"}
	errEntryNotFound        = &chat.Error{Code: chat.NotFound, Message: "entry not found"}
)

// isDuplicateKey reports whether a write error code is a unique-key violation.
func isDuplicateKey(code int) bool { return code == 11000 || code == 11001 }

// serverKind tells which MongoDB wire server the store talks to, which decides how some
// queries are made: MongoDB applies a conditional update atomically and answers `$in` on _id
// from its index; FerretDB v1 does neither (its SQLite backend answers only a filter on _id
// alone without decoding every document of the collection). It asks the server once, with
// buildInfo, and again after a failure.
type serverKind struct {
	db *mongo.Database

	mu       sync.Mutex
	known    bool
	ferretDB bool
}

// isFerretDB reports whether the server is FerretDB; a server that cannot be asked counts as
// FerretDB, whose ways are safe on MongoDB too, until it answers.
func (k *serverKind) isFerretDB(ctx context.Context) bool {
	ferret, err := k.ask(ctx)
	return ferret || err != nil
}

// ask returns whether the server is FerretDB. It asks once, within a second, outside its lock
// so that callers are not held up while the server is out of reach, and again after a failure.
func (k *serverKind) ask(ctx context.Context) (bool, error) {
	k.mu.Lock()
	known, ferret := k.known, k.ferretDB
	k.mu.Unlock()
	if known {
		return ferret, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var info bson.M
	if err := k.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, wrap("build info", err)
	}
	_, ferret = info["ferretdbVersion"]
	k.mu.Lock()
	k.known, k.ferretDB = true, ferret
	k.mu.Unlock()
	return ferret, nil
}

// inOutbox reports whether the store keeps pending marks in the outbox (see PendingMarks).
// It must not guess: entries marked one way and cleared the other would stay pending, so it
// fails while the server cannot be asked.
func (s *Store) inOutbox(ctx context.Context) (bool, error) {
	switch s.marks {
	case PendingOnEntries:
		return false, nil
	case PendingInOutbox:
		return true, nil
	}
	return s.server.ask(ctx)
}

// findByID decodes into v the document of coll with _id id if it belongs to tenantID, and
// returns notFound otherwise. The filter is on _id alone, the one FerretDB's SQLite backend
// hands to SQLite rather than decoding every document; the tenant is checked on the document.
func findByID[T interface{ tenant() string }](ctx context.Context, s *Store, coll *mongo.Collection, tenantID, id, op string, notFound error) (*T, error) {
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	var d T
	err := coll.FindOne(ctx, bson.M{"_id": id}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	if d.tenant() != tenantID {
		return nil, notFound
	}
	return &d, nil
}

// findAll returns the documents of coll matching filter, decoded as T, and wraps a failure of
// the query or of the decoding as operation op (s.wrap). The caller checks the breaker.
func findAll[T any](ctx context.Context, s *Store, op string, coll *mongo.Collection, filter any, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	var docs []T
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.wrap(op, err)
	}
	return docs, nil
}

// idDoc is a document read for its _id alone.
type idDoc struct {
	ID string `bson:"_id"`
}

// wrap is the package's wrap for the store's operations: a failure to find a server opens the
// breaker.
func (s *Store) wrap(op string, err error) error {
	s.breaker.observe(err)
	return wrap(op, err)
}

// batchStalls is how many batches in a row deleteBatched lets delete nothing (documents found,
// then gone, as a TTL index or another deleter removed them meanwhile) before it gives up
// rather than loop.
const batchStalls = 3

// deleteBatched deletes the documents of coll matching filter, batch at a time: it finds the
// _ids of a batch, then deletes those that still match, until none are left, so that no one
// delete holds the server for long. It returns how many it deleted.
func deleteBatched(ctx context.Context, coll *mongo.Collection, filter bson.M, batch int64) (int64, error) {
	find := options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(batch)
	var total int64
	for stalls := 0; ; {
		cur, err := coll.Find(ctx, filter, find)
		if err != nil {
			return total, err
		}
		var docs []struct {
			ID bson.RawValue `bson:"_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return total, err
		}
		if len(docs) == 0 {
			return total, nil
		}
		ids := make([]bson.RawValue, len(docs))
		for i, d := range docs {
			ids[i] = d.ID
		}
		del := bson.M{"_id": bson.M{"$in": ids}}
		for k, v := range filter {
			del[k] = v
		}
		res, err := coll.DeleteMany(ctx, del)
		if err != nil {
			return total, err
		}
		total += res.DeletedCount
		if res.DeletedCount > 0 {
			stalls = 0
		} else if stalls++; stalls >= batchStalls {
			return total, fmt.Errorf("found documents to delete but deleted none %d times", stalls)
		}
	}
}
