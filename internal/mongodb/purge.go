package mongodb

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// purgeBatch is the most documents PurgeTenant finds and deletes at once, so that purging a
// large tenant never holds one huge delete on the server.
const purgeBatch = 1000

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

// purgeCollection deletes the tenant's documents of one collection, purgeBatch at a time.
func (db *DB) purgeCollection(ctx context.Context, name, tenantID string) (int64, error) {
	n, err := deleteBatched(ctx, db.db.Collection(name), bson.M{"tenant_id": tenantID}, purgeBatch)
	if err != nil {
		return n, wrap("purge documents in "+name, err)
	}
	return n, nil
}
