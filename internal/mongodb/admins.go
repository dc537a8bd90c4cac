package mongodb

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
)

// An admin document is an admin of a tenant the service has seen: _id is the tenant id and the
// admin id (adminID), so an admin is recorded once per tenant, with tenant_id, admin_id, name,
// first_seen, and last_seen, when an admin request was last recorded (each replica records an
// admin at most once an hour).

// adminID returns the document id of admin id of tenantID.
func adminID(tenantID, id string) string { return tenantID + ":" + id }

// RecordAdmin remembers admin p of the tenant as seen at at. On a server whose updates are not
// atomic two replicas recording one admin at once may leave the earlier time, which is as
// good: a replica records an admin hourly, and assignability is counted in days.
func (s *Store) RecordAdmin(ctx context.Context, tenantID string, p chat.Participant, at time.Time) error {
	if err := s.breaker.allow("record admin"); err != nil {
		return err
	}
	_, err := s.admins.UpdateOne(ctx, bson.M{"_id": adminID(tenantID, p.ID)}, bson.M{
		"$set":         bson.M{"tenant_id": tenantID, "admin_id": p.ID, "name": p.Name},
		"$max":         bson.M{"last_seen": at},
		"$setOnInsert": bson.M{"first_seen": at},
	}, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return nil // a racing first record inserted it, at the same moment
	}
	return s.wrap("record admin", err)
}

// KnownAdmin reports whether the tenant has an admin with id seen at seenSince or later.
func (s *Store) KnownAdmin(ctx context.Context, tenantID, id string, seenSince time.Time) (bool, error) {
	if err := s.breaker.allow("find admin"); err != nil {
		return false, err
	}
	err := s.admins.FindOne(ctx, bson.M{"_id": adminID(tenantID, id), "tenant_id": tenantID, "last_seen": bson.M{"$gte": seenSince}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	return err == nil, s.wrap("find admin", err)
}
