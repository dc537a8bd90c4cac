package mongodb

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// purgeBatch is the most documents PurgeTenant finds and deletes at once, so that purging a
// large tenant never holds one huge delete on the server.
const purgeBatch = 1000

// purgeStalls is how many batches in a row PurgeTenant lets delete nothing (documents found
// and then gone, such as idempotency records their TTL index removed meanwhile) before it
// gives up rather than loop.
const purgeStalls = 3

// PurgeTenant deletes every document of the tenant from every collection of the database, in
// batches of purgeBatch, and returns how many it deleted in each collection that had any.
//
// Every document the store writes carries tenant_id, including those whose _id also begins
// with the tenant id (settings, admins, idempotency records and responses, log entries and
// outbox marks), so one filter finds them all. The collections are listed from the database
// rather than from this package, so those added later are purged too, provided their
// documents carry tenant_id as well. The migrations collection is global and left alone.
// Run it only for a tenant no replica serves any more: a write racing it may leave documents
// behind (running it again deletes them).
func (db *DB) PurgeTenant(ctx context.Context, tenantID string) (map[string]int64, error) {
	if tenantID == "" {
		return nil, fmt.Errorf("purge tenant: no tenant id")
	}
	names, err := db.db.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		return nil, wrap("list collections", err)
	}
	deleted := map[string]int64{}
	for _, name := range names {
		if name == migrationsCollection || strings.HasPrefix(name, "system.") {
			continue
		}
		n, err := db.purgeCollection(ctx, name, tenantID)
		if n > 0 {
			deleted[name] = n
		}
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// purgeCollection deletes the tenant's documents of one collection, purgeBatch at a time: it
// finds the _ids of a batch, then deletes those, until none are left.
func (db *DB) purgeCollection(ctx context.Context, name, tenantID string) (int64, error) {
	coll := db.db.Collection(name)
	filter := bson.M{"tenant_id": tenantID}
	find := options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(purgeBatch)
	var total int64
	for stalls := 0; ; {
		cur, err := coll.Find(ctx, filter, find)
		if err != nil {
			return total, wrap("find documents to purge in "+name, err)
		}
		var docs []struct {
			ID bson.RawValue `bson:"_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return total, wrap("find documents to purge in "+name, err)
		}
		if len(docs) == 0 {
			return total, nil
		}
		ids := make([]bson.RawValue, len(docs))
		for i, d := range docs {
			ids[i] = d.ID
		}
		res, err := coll.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": ids}, "tenant_id": tenantID})
		if err != nil {
			return total, wrap("purge documents in "+name, err)
		}
		total += res.DeletedCount
		if res.DeletedCount > 0 {
			stalls = 0
		} else if stalls++; stalls >= purgeStalls {
			return total, fmt.Errorf("mongodb purge %s: found documents of the tenant but deleted none %d times", name, stalls)
		}
	}
}
