package mongodb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/testenv"
	"github.com/supportchat/supportchat/internal/webhook"
)

// TestPurgeTenant seeds two tenants through the store, and documents of a collection the store
// does not know (as later versions add), then purges one: every document of it goes, in every
// collection, in batches, and the other tenant and the global migrations keep all theirs.
func TestPurgeTenant(t *testing.T) {
	for _, server := range testenv.MongoServers() {
		t.Run(server.Name, func(t *testing.T) {
			ctx := context.Background()
			db, uri, database := mustOpenOn(t, server, 30*time.Second)
			raw := rawDatabase(t, uri, database)

			// More than one batch of the purged tenant in one collection.
			seedTenant(t, db.Store(), raw, outdoor, 2345)
			seedTenant(t, db.Store(), raw, shop, 3)
			// A record of the global migrations collection, even one naming the tenant, stays.
			if _, err := raw.Collection("migrations").InsertOne(ctx, bson.M{"_id": "test", "tenant_id": outdoor}); err != nil {
				t.Fatal(err)
			}
			before := countByTenant(t, raw)
			// Every document the store wrote names its tenant: the purge relies on it.
			delete(before[""], "migrations")
			if len(before[""]) > 0 {
				t.Errorf("documents without tenant_id: %v", before[""])
			}
			if len(before[outdoor]) < 8 {
				t.Fatalf("seeded collections of %s = %v, want every kind", outdoor, before[outdoor])
			}

			got, err := db.PurgeTenant(ctx, outdoor)
			if err != nil {
				t.Fatalf("PurgeTenant: %v", err)
			}
			want := before[outdoor]
			delete(want, "migrations")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PurgeTenant counts differ from the documents seeded (-want +got):\n%s", diff)
			}
			after := countByTenant(t, raw)
			if diff := cmp.Diff(map[string]int64{"migrations": 1}, after[outdoor]); diff != "" {
				t.Errorf("documents of %s left after the purge (-want +got):\n%s", outdoor, diff)
			}
			if diff := cmp.Diff(before[shop], after[shop]); diff != "" {
				t.Errorf("documents of %s changed by the purge of %s (-before +after):\n%s", shop, outdoor, diff)
			}

			// Purging again finds nothing.
			if got, err := db.PurgeTenant(ctx, outdoor); err != nil || len(got) != 0 {
				t.Errorf("second PurgeTenant = %v, %v; want nothing deleted", got, err)
			}
			if _, err := db.PurgeTenant(ctx, ""); err == nil {
				t.Error("PurgeTenant of no tenant succeeded")
			}
		})
	}
}

// rawDatabase returns the database for looking behind the store.
func rawDatabase(tb testing.TB, uri, database string) *mongo.Database {
	tb.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(database)
}

// seedTenant stores documents of every kind for tenantID through the store, and extra
// documents in an "audit" collection the store does not write.
func seedTenant(tb testing.TB, s *mongodb.Store, raw *mongo.Database, tenantID string, extra int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	conv := newConversation(tenantID, id(1), t0)
	mustCreate(tb, s, conv)
	mustAppend(tb, s, logOf(tenantID, id(1), 4))
	prompt := "away"
	if err := s.PutOverrides(ctx, tenantID, chat.Overrides{AwayPrompt: &prompt, UpdatedAt: now, UpdatedBy: "admin-1"}); err != nil {
		tb.Fatal(err)
	}
	if err := s.RecordAdmin(ctx, tenantID, chat.Participant{ID: "admin-1", Role: chat.RoleAdmin, Name: "Alex"}, now); err != nil {
		tb.Fatal(err)
	}
	rec := idempotency.Record{Key: "k1", TenantID: tenantID, Fingerprint: "fp", Seed: "seed", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	if _, _, err := s.Reserve(ctx, rec); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.SaveResponse(ctx, rec, idempotency.Response{Fingerprint: "fp", Status: 201, Body: []byte(`{}`)}); err != nil {
		tb.Fatal(err)
	}
	if err := s.RecordSupportChange(ctx, tenantID, 1, now, chat.Support{Status: chat.SupportOnline, Available: true}); err != nil {
		tb.Fatal(err)
	}
	// Endpoint ids are unique across tenants: each tenant of the test has its own.
	ep := &webhook.Endpoint{ID: id(len(tenantID)), TenantID: tenantID, URL: "https://example.com/hook", Events: []chat.EventType{"message.created"},
		Enabled: true, Secrets: []webhook.Secret{{Value: "whsec_dGVzdA==", CreatedAt: now}}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateEndpoint(ctx, ep, 10); err != nil {
		tb.Fatal(err)
	}
	docs := make([]any, extra)
	for i := range docs {
		docs[i] = bson.M{"_id": fmt.Sprintf("%s/%d", tenantID, i), "tenant_id": tenantID, "action": "export"}
	}
	if _, err := raw.Collection("audit").InsertMany(ctx, docs); err != nil {
		tb.Fatal(err)
	}
}

// countByTenant counts the documents of every collection of raw by tenant_id: tenant,
// collection, count.
func countByTenant(tb testing.TB, raw *mongo.Database) map[string]map[string]int64 {
	tb.Helper()
	ctx := context.Background()
	names, err := raw.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		tb.Fatal(err)
	}
	counts := map[string]map[string]int64{}
	for _, name := range names {
		cur, err := raw.Collection(name).Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"tenant_id": 1}))
		if err != nil {
			tb.Fatal(err)
		}
		var docs []struct {
			TenantID string `bson:"tenant_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			tb.Fatal(err)
		}
		for _, d := range docs {
			if counts[d.TenantID] == nil {
				counts[d.TenantID] = map[string]int64{}
			}
			counts[d.TenantID][name]++
		}
	}
	return counts
}
