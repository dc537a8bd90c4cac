package mongodb

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
)

// reserveAttempts bounds how often Reserve retries when racing requests replace or release the
// record it found.
const reserveAttempts = 5

// idempotencyDoc is an idempotency.Record; its id is the tenant id and the key, so a key is
// unique within a tenant.
type idempotencyDoc struct {
	ID          string    `bson:"_id"`
	TenantID    string    `bson:"tenant_id"`
	Key         string    `bson:"key"`
	Fingerprint string    `bson:"fingerprint"`
	Seed        string    `bson:"seed"`
	Released    bool      `bson:"released"`
	Done        bool      `bson:"done"`
	Status      int       `bson:"status"`
	Body        []byte    `bson:"body"`
	Location    string    `bson:"location"`
	CreatedAt   time.Time `bson:"created_at"`
	// ExpiresAt is when the TTL index deletes the record (where the server has TTL indexes);
	// until then Reserve treats an expired record as absent.
	ExpiresAt time.Time `bson:"expires_at"`
}

// idempotencyID returns the document id of the record key of tenantID.
func idempotencyID(tenantID, key string) string { return tenantID + ":" + key }

// toIdempotencyDoc returns the document of rec.
func toIdempotencyDoc(rec idempotency.Record) idempotencyDoc {
	return idempotencyDoc{
		ID:          idempotencyID(rec.TenantID, rec.Key),
		TenantID:    rec.TenantID,
		Key:         rec.Key,
		Fingerprint: rec.Fingerprint,
		Seed:        rec.Seed,
		Released:    rec.Released,
		Done:        rec.Done,
		Status:      rec.Status,
		Body:        rec.Body,
		Location:    rec.Location,
		CreatedAt:   rec.CreatedAt,
		ExpiresAt:   rec.ExpiresAt,
	}
}

// record returns the idempotency.Record of d.
func (d *idempotencyDoc) record() idempotency.Record {
	return idempotency.Record{
		Key:         d.Key,
		TenantID:    d.TenantID,
		Fingerprint: d.Fingerprint,
		Seed:        d.Seed,
		Released:    d.Released,
		Done:        d.Done,
		Status:      d.Status,
		Body:        d.Body,
		Location:    d.Location,
		CreatedAt:   d.CreatedAt.UTC(),
		ExpiresAt:   d.ExpiresAt.UTC(),
	}
}

// Reserve stores rec unless an unexpired record with the same tenant and key exists. It
// returns the record now stored and whether it is rec; an expired record is replaced. Returns
// chat.ErrConflict when racing requests keep changing the record.
func (s *Store) Reserve(ctx context.Context, rec idempotency.Record) (idempotency.Record, bool, error) {
	doc := toIdempotencyDoc(rec)
	for range reserveAttempts {
		_, err := s.idempotency.InsertOne(ctx, doc)
		if err == nil {
			return rec, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return idempotency.Record{}, false, wrap("reserve idempotency key", err)
		}
		var old idempotencyDoc
		err = s.idempotency.FindOne(ctx, bson.M{"_id": doc.ID, "tenant_id": rec.TenantID}).Decode(&old)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // released meanwhile: insert again
		}
		if err != nil {
			return idempotency.Record{}, false, wrap("reserve idempotency key", err)
		}
		if old.ExpiresAt.After(s.now()) {
			return old.record(), false, nil
		}
		// Expired but not yet deleted: replace exactly the record read, so of racing requests
		// only one takes the key over.
		res, err := s.idempotency.ReplaceOne(ctx,
			bson.M{"_id": doc.ID, "tenant_id": rec.TenantID, "created_at": old.CreatedAt, "seed": old.Seed},
			doc)
		if err != nil {
			return idempotency.Record{}, false, wrap("reserve idempotency key", err)
		}
		if res.MatchedCount == 1 {
			return rec, true, nil
		}
	}
	return idempotency.Record{}, false, &chat.Error{Code: chat.Conflict, Message: "request with this idempotency key is in progress; try again"}
}

// Complete stores the response of a record (Done, Status, Body, Location) and the fingerprint
// of the request that produced it. A record that expired and is gone meanwhile stays gone: the
// response is not kept for replays.
func (s *Store) Complete(ctx context.Context, rec idempotency.Record) error {
	res, err := s.idempotency.UpdateOne(ctx,
		bson.M{"_id": idempotencyID(rec.TenantID, rec.Key), "tenant_id": rec.TenantID},
		bson.M{"$set": bson.M{"done": rec.Done, "status": rec.Status, "body": rec.Body, "location": rec.Location,
			"fingerprint": rec.Fingerprint, "released": false}})
	if err != nil {
		return wrap("complete idempotency key", err)
	}
	if res.MatchedCount == 0 {
		s.log.WarnContext(ctx, "idempotency record gone before its response was stored", "tenant", rec.TenantID)
	}
	return nil
}

// Release marks the record of tenantID and key released unless it is done. The record, and
// with it the seed, stays until it expires.
func (s *Store) Release(ctx context.Context, tenantID, key string) error {
	_, err := s.idempotency.UpdateOne(ctx,
		bson.M{"_id": idempotencyID(tenantID, key), "tenant_id": tenantID, "done": false},
		bson.M{"$set": bson.M{"released": true}})
	return wrap("release idempotency key", err)
}

// SweepIdempotency deletes up to limit idempotency records that expired before now, for servers
// without TTL indexes (DB.NeedsSweep), and returns how many it deleted.
func (s *Store) SweepIdempotency(ctx context.Context, now time.Time, limit int) (int, error) {
	cur, err := s.idempotency.Find(ctx, bson.M{"expires_at": bson.M{"$lt": now}},
		options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(int64(limit)))
	if err != nil {
		return 0, wrap("find expired idempotency records", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return 0, wrap("find expired idempotency records", err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	res, err := s.idempotency.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": ids}, "expires_at": bson.M{"$lt": now}})
	if err != nil {
		return 0, wrap("delete expired idempotency records", err)
	}
	return int(res.DeletedCount), nil
}
