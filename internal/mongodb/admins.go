package mongodb

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/supportchat/supportchat/internal/chat"
)

// adminDoc is an admin of a tenant the service has seen; its id is the tenant id and the admin
// id, so an admin is recorded once per tenant.
type adminDoc struct {
	ID        string    `bson:"_id"`
	TenantID  string    `bson:"tenant_id"`
	AdminID   string    `bson:"admin_id"`
	Name      string    `bson:"name"`
	FirstSeen time.Time `bson:"first_seen"`
}

// adminID returns the document id of admin id of tenantID.
func adminID(tenantID, id string) string { return tenantID + ":" + id }

// RecordAdmin remembers admin p of the tenant; recording one again changes nothing.
func (s *Store) RecordAdmin(ctx context.Context, tenantID string, p chat.Participant, at time.Time) error {
	_, err := s.admins.InsertOne(ctx, adminDoc{ID: adminID(tenantID, p.ID), TenantID: tenantID, AdminID: p.ID, Name: p.Name, FirstSeen: at})
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	return wrap("record admin", err)
}

// KnownAdmin reports whether the tenant has an admin with id.
func (s *Store) KnownAdmin(ctx context.Context, tenantID, id string) (bool, error) {
	err := s.admins.FindOne(ctx, bson.M{"_id": adminID(tenantID, id), "tenant_id": tenantID}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	return err == nil, wrap("find admin", err)
}
