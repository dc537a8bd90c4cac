package mongodb

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/audit"
)

// auditSweepBatch is how many expired audit entries one delete of SweepAudit removes.
const auditSweepBatch = 1000

var _ audit.Store = (*Store)(nil)

// auditDoc is an audit.Entry in the audit collection; its _id is the entry's id, which sorts
// by time, and ExpiresAt is when the TTL index deletes it (where the server has TTL indexes).
type auditDoc struct {
	ID        string           `bson:"_id"`
	TenantID  string           `bson:"tenant_id"`
	At        time.Time        `bson:"at"`
	Actor     auditActorDoc    `bson:"actor"`
	Action    string           `bson:"action"`
	Subject   string           `bson:"subject,omitempty"`
	Target    string           `bson:"target,omitempty"`
	Counts    map[string]int64 `bson:"counts,omitempty"`
	Fields    []string         `bson:"fields,omitempty"`
	ExpiresAt time.Time        `bson:"expires_at"`
}

// auditActorDoc is an audit.Actor.
type auditActorDoc struct {
	ID   string `bson:"id"`
	Role string `bson:"role"`
}

func (d *auditDoc) entry() audit.Entry {
	return audit.Entry{
		ID: d.ID, TenantID: d.TenantID, At: d.At.UTC(), Actor: audit.Actor{ID: d.Actor.ID, Role: d.Actor.Role},
		Action: audit.Action(d.Action), Subject: d.Subject, Target: d.Target, Counts: d.Counts, Fields: d.Fields,
	}
}

// AddAudit stores e, to be deleted after expires.
func (s *Store) AddAudit(ctx context.Context, e audit.Entry, expires time.Time) error {
	const op = "add audit entry"
	if err := s.breaker.allow(op); err != nil {
		return err
	}
	_, err := s.audit.InsertOne(ctx, auditDoc{
		ID: e.ID, TenantID: e.TenantID, At: e.At, Actor: auditActorDoc{ID: e.Actor.ID, Role: e.Actor.Role},
		Action: string(e.Action), Subject: e.Subject, Target: e.Target, Counts: e.Counts, Fields: e.Fields,
		ExpiresAt: expires,
	})
	return s.wrap(op, err)
}

// Audit returns up to limit audit entries of the tenant, newest first, with ids strictly below
// before ("" from the newest).
func (s *Store) Audit(ctx context.Context, tenantID, before string, limit int) ([]audit.Entry, error) {
	const op = "audit entries"
	if err := s.breaker.allow(op); err != nil {
		return nil, err
	}
	filter := bson.M{"tenant_id": tenantID}
	if before != "" {
		filter["_id"] = bson.M{"$lt": before}
	}
	docs, err := findAll[auditDoc](ctx, s, op, s.audit, filter,
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	out := make([]audit.Entry, len(docs))
	for i := range docs {
		out[i] = docs[i].entry()
	}
	return out, nil
}

// SweepAudit deletes the audit entries that expired before now, auditSweepBatch at a time, for
// servers without TTL indexes (DB.NeedsSweep), and returns how many it deleted.
func (s *Store) SweepAudit(ctx context.Context, now time.Time) (int64, error) {
	const op = "sweep audit entries"
	if err := s.breaker.allow(op); err != nil {
		return 0, err
	}
	n, err := deleteBatched(ctx, s.audit, bson.M{"expires_at": bson.M{"$lt": now}}, auditSweepBatch)
	return n, s.wrap(op, err)
}
