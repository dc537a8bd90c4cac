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

// idempotencyDoc is an idempotency.Record without its response; its id is the tenant id and
// the key, so a key is unique within a tenant.
type idempotencyDoc struct {
	ID          string    `bson:"_id"`
	TenantID    string    `bson:"tenant_id"`
	Key         string    `bson:"key"`
	Fingerprint string    `bson:"fingerprint"`
	Seed        string    `bson:"seed"`
	Released    bool      `bson:"released"`
	CreatedAt   time.Time `bson:"created_at"`
	// ExpiresAt is when the TTL index deletes the record (where the server has TTL indexes);
	// until then Reserve treats an expired record as absent.
	ExpiresAt time.Time `bson:"expires_at"`
}

// responseDoc is the idempotency.Response of a record, in the same collection: its id is the
// record's with responseSuffix, so of racing attempts exactly one stores it. Seed ties it to
// the record it answers (a record that expired and was taken over has another seed).
type responseDoc struct {
	ID          string `bson:"_id"`
	TenantID    string `bson:"tenant_id"`
	Seed        string `bson:"seed"`
	Fingerprint string `bson:"fingerprint"`
	Status      int    `bson:"status"`
	Body        []byte `bson:"body"`
	Location    string `bson:"location"`
	// ConversationID is the conversation the request wrote to, for its erasure.
	ConversationID string    `bson:"conversation_id,omitempty"`
	ExpiresAt      time.Time `bson:"expires_at"`
}

// responseSuffix ends the id of a record's response.
const responseSuffix = "/response"

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
		CreatedAt:   d.CreatedAt.UTC(),
		ExpiresAt:   d.ExpiresAt.UTC(),
	}
}

// response returns the idempotency.Response of d.
func (d *responseDoc) response() idempotency.Response {
	return idempotency.Response{Fingerprint: d.Fingerprint, Status: d.Status, Body: d.Body, Location: d.Location, Conversation: d.ConversationID}
}

// Reserve stores rec unless an unexpired record with the same tenant and key exists. It
// returns the record now stored, with its response if it has one, and whether it is rec; an
// expired record is replaced and its response deleted. Returns chat.ErrConflict when racing
// requests keep changing the record.
func (s *Store) Reserve(ctx context.Context, rec idempotency.Record) (idempotency.Record, bool, error) {
	if err := s.breaker.allow("reserve idempotency key"); err != nil {
		return idempotency.Record{}, false, err
	}
	doc := toIdempotencyDoc(rec)
	for range reserveAttempts {
		_, err := s.idempotency.InsertOne(ctx, doc)
		if err == nil {
			return rec, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return idempotency.Record{}, false, s.wrap("reserve idempotency key", err)
		}
		old, err := findByID[idempotencyDoc](ctx, s, s.idempotency, rec.TenantID, doc.ID, "reserve idempotency key", errRecordGone)
		if errors.Is(err, errRecordGone) {
			continue // swept meanwhile: insert again
		}
		if err != nil {
			return idempotency.Record{}, false, err
		}
		if old.ExpiresAt.After(s.now()) {
			stored := old.record()
			resp, err := s.response(ctx, stored)
			if err != nil {
				return idempotency.Record{}, false, err
			}
			stored.Response = resp
			return stored, false, nil
		}
		// Expired but not yet deleted: forget its response, then replace exactly the record
		// read, so of racing requests only one takes the key over.
		if _, err := s.idempotency.DeleteOne(ctx, bson.M{"_id": doc.ID + responseSuffix, "tenant_id": rec.TenantID, "seed": old.Seed}); err != nil {
			return idempotency.Record{}, false, s.wrap("reserve idempotency key", err)
		}
		res, err := s.idempotency.ReplaceOne(ctx,
			bson.M{"_id": doc.ID, "tenant_id": rec.TenantID, "created_at": old.CreatedAt, "seed": old.Seed},
			doc)
		if err != nil {
			return idempotency.Record{}, false, s.wrap("reserve idempotency key", err)
		}
		if res.MatchedCount == 1 {
			return rec, true, nil
		}
	}
	return idempotency.Record{}, false, &chat.Error{Code: chat.Conflict, Message: "request with this idempotency key is in progress; try again"}
}

// errRecordGone is a record that is not there (any more).
var errRecordGone = errors.New("idempotency record not found")

func (d idempotencyDoc) tenant() string { return d.TenantID }
func (d responseDoc) tenant() string    { return d.TenantID }

// response returns the stored response of rec, or nil when it has none.
func (s *Store) response(ctx context.Context, rec idempotency.Record) (*idempotency.Response, error) {
	d, err := findByID[responseDoc](ctx, s, s.idempotency, rec.TenantID, idempotencyID(rec.TenantID, rec.Key)+responseSuffix, "idempotent response", errRecordGone)
	if errors.Is(err, errRecordGone) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Seed != rec.Seed {
		return nil, nil // the response of an expired record this one took over
	}
	r := d.response()
	return &r, nil
}

// SaveResponse stores resp as the response of rec, unless one is stored already: the insert
// of the response's own document decides, so racing attempts all answer with the first
// stored. It returns the stored response.
func (s *Store) SaveResponse(ctx context.Context, rec idempotency.Record, resp idempotency.Response) (idempotency.Response, error) {
	if err := s.breaker.allow("store idempotent response"); err != nil {
		return idempotency.Response{}, err
	}
	doc := responseDoc{
		ID:             idempotencyID(rec.TenantID, rec.Key) + responseSuffix,
		TenantID:       rec.TenantID,
		Seed:           rec.Seed,
		Fingerprint:    resp.Fingerprint,
		Status:         resp.Status,
		Body:           resp.Body,
		Location:       resp.Location,
		ConversationID: resp.Conversation,
		ExpiresAt:      rec.ExpiresAt,
	}
	_, err := s.idempotency.InsertOne(ctx, doc)
	if err == nil {
		return resp, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return idempotency.Response{}, s.wrap("store idempotent response", err)
	}
	stored, err := s.response(ctx, rec)
	if err != nil {
		return idempotency.Response{}, err
	}
	if stored == nil {
		return idempotency.Response{}, &chat.Error{Code: chat.Conflict, Message: "the idempotency key was taken over meanwhile; try again"}
	}
	return *stored, nil
}

// Release marks the record of tenantID and key released. A record with a response keeps its
// response, which Reserve returns before it looks at released.
func (s *Store) Release(ctx context.Context, tenantID, key string) error {
	if err := s.breaker.allow("release idempotency key"); err != nil {
		return err
	}
	_, err := s.idempotency.UpdateOne(ctx,
		bson.M{"_id": idempotencyID(tenantID, key), "tenant_id": tenantID},
		bson.M{"$set": bson.M{"released": true}})
	return s.wrap("release idempotency key", err)
}

// SweepIdempotency deletes up to limit idempotency records and responses that expired before
// now, for servers without TTL indexes (DB.NeedsSweep), and returns how many it deleted.
func (s *Store) SweepIdempotency(ctx context.Context, now time.Time, limit int) (int, error) {
	if err := s.breaker.allow("find expired idempotency records"); err != nil {
		return 0, err
	}
	docs, err := findAll[idDoc](ctx, s, "find expired idempotency records", s.idempotency,
		bson.M{"expires_at": bson.M{"$lt": now}},
		options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(int64(limit)))
	if err != nil {
		return 0, err
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
		return 0, s.wrap("delete expired idempotency records", err)
	}
	return int(res.DeletedCount), nil
}
