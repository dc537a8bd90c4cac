package mongodb

import (
	"context"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/webhook"
)

// Support transitions. The support clock decides in Redis which replica announces a change of
// a tenant's support block (once per transition); that replica records the change here, the
// durable source webhooks deliver support.changed from. A document stays until webhooks took
// it up.

type supportChangeDoc struct {
	ID                   string     `bson:"_id"`
	TenantID             string     `bson:"tenant_id"`
	At                   time.Time  `bson:"at"`
	Status               string     `bson:"status"`
	Available            bool       `bson:"available"`
	Reason               string     `bson:"reason,omitempty"`
	Prompt               string     `bson:"prompt,omitempty"`
	NextAvailableAt      *time.Time `bson:"next_available_at,omitempty"`
	ExpectedReplySeconds *int64     `bson:"expected_reply_seconds,omitempty"`
}

// RecordSupportChange records that tenantID's support block became sup at at, the change
// numbered seq by the support clock. Recording one change twice stores it once.
func (s *Store) RecordSupportChange(ctx context.Context, tenantID string, seq int64, at time.Time, sup chat.Support) error {
	if err := s.breaker.allow("record support change"); err != nil {
		return err
	}
	d := supportChangeDoc{
		ID:       tenantID + ":support:" + strconv.FormatInt(at.UnixMilli(), 10) + ":" + strconv.FormatInt(seq, 10),
		TenantID: tenantID, At: at, Status: string(sup.Status), Available: sup.Available, Reason: sup.Reason, Prompt: sup.Prompt,
		NextAvailableAt: sup.NextAvailableAt, ExpectedReplySeconds: sup.ExpectedReplySeconds,
	}
	_, err := s.supportChanges.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	return s.wrap("record support change", err)
}

// SupportChanges returns the support transitions as a source of webhooks.
func (s *Store) SupportChanges() webhook.Source { return supportChanges{s} }

type supportChanges struct{ s *Store }

// Hooked returns up to limit support transitions, oldest first, each as its support.changed
// event, marked by its _id.
func (c supportChanges) Hooked(ctx context.Context, limit int) ([]chat.Recorded, error) {
	s := c.s
	if err := s.breaker.allow("support changes"); err != nil {
		return nil, err
	}
	docs, err := findAll[supportChangeDoc](ctx, s, "support changes", s.supportChanges, bson.M{},
		options.Find().SetSort(bson.D{{Key: "at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	out := make([]chat.Recorded, len(docs))
	for i, d := range docs {
		sup := chat.Support{Status: chat.SupportState(d.Status), Available: d.Available, Reason: d.Reason, Prompt: d.Prompt,
			NextAvailableAt: d.NextAvailableAt, ExpectedReplySeconds: d.ExpectedReplySeconds}
		if sup.NextAvailableAt != nil {
			t := sup.NextAvailableAt.UTC()
			sup.NextAvailableAt = &t
		}
		out[i] = chat.Recorded{Mark: d.ID, Events: []chat.Event{{
			ID: d.ID + "/" + string(chat.EventSupportChanged), Type: chat.EventSupportChanged, TenantID: d.TenantID, At: d.At.UTC(), Support: &sup,
		}}}
	}
	return out, nil
}

// Unhook deletes the support transitions of marks.
func (c supportChanges) Unhook(ctx context.Context, marks []string) error {
	if len(marks) == 0 {
		return nil
	}
	if err := c.s.breaker.allow("unhook support changes"); err != nil {
		return err
	}
	_, err := c.s.supportChanges.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": marks}})
	return c.s.wrap("unhook support changes", err)
}
