package mongodb

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// codeNotImplemented is the error FerretDB answers for index options it lacks (TTL and partial
// indexes).
const codeNotImplemented = 238

// index is one index of a collection, named so it can be found in the server's list.
type index struct {
	collection string
	name       string
	keys       bson.D
	unique     bool
	// partial makes the index partial, over the documents whose field of that name is true.
	partial string
	// ttl makes a TTL index deleting documents when the time in its only key has passed.
	ttl bool
}

// indexes returns the store's indexes, each backing one of its queries.
func indexes() []index {
	return []index{
		{collection: conversationsCollection, name: "tenant_updated",
			keys: keys("tenant_id", 1, "updated_at", -1, "_id", -1)},
		{collection: conversationsCollection, name: "tenant_customer_updated",
			keys: keys("tenant_id", 1, "customer.id", 1, "updated_at", -1, "_id", -1)},
		{collection: conversationsCollection, name: "tenant_status_updated",
			keys: keys("tenant_id", 1, "status", 1, "updated_at", -1, "_id", -1)},
		{collection: conversationsCollection, name: "tenant_assignee_updated",
			keys: keys("tenant_id", 1, "assignee", 1, "updated_at", -1, "_id", -1)},
		{collection: conversationsCollection, name: "tenant_team_unread_updated",
			keys: keys("tenant_id", 1, "team_unread", 1, "updated_at", -1, "_id", -1)},
		{collection: conversationsCollection, name: "tenant_first_reply",
			keys: keys("tenant_id", 1, "first_reply_at", -1)},
		// The arbiters of concurrent writes: one entry per sequence number of a conversation
		// (the _id says so too) and one per entry id, so a retried write is stored once.
		{collection: entriesCollection, name: "tenant_conversation_seq", unique: true,
			keys: keys("tenant_id", 1, "conversation_id", 1, "seq", -1)},
		{collection: entriesCollection, name: "tenant_conversation_eid", unique: true,
			keys: keys("tenant_id", 1, "conversation_id", 1, "eid", 1)},
		// A customer's logs, for export and erasure (Store.CustomerLogs).
		{collection: entriesCollection, name: "tenant_customer_conversation",
			keys: keys("tenant_id", 1, "customer_id", 1, "conversation_id", 1)},
		// The relay's query, oldest first: a partial index holds only the pending entries on
		// MongoDB; FerretDB has no partial indexes and indexes every entry.
		{collection: entriesCollection, name: "pending_at", partial: "pending",
			keys: keys("pending", 1, "at", 1)},
		// Webhooks' query of the entries they have not taken up, likewise.
		{collection: entriesCollection, name: "hook_at", partial: "hook",
			keys: keys("hook", 1, "at", 1)},
		{collection: outboxCollection, name: "at", keys: keys("at", 1)},
		{collection: webhookEndpointsCollection, name: "tenant_slot", unique: true,
			keys: keys("tenant_id", 1, "slot", 1)},
		{collection: webhookEndpointsCollection, name: "tenant_created",
			keys: keys("tenant_id", 1, "created_at", 1, "_id", 1)},
		{collection: webhookDeliveriesCollection, name: "tenant_endpoint_created",
			keys: keys("tenant_id", 1, "endpoint_id", 1, "created_at", -1, "_id", -1)},
		{collection: webhookDeliveriesCollection, name: "created", keys: keys("created_at", 1)},
		{collection: webhookQueueCollection, name: "next_at", keys: keys("next_at", 1, "order", 1)},
		{collection: webhookQueueCollection, name: "tenant_endpoint_order",
			keys: keys("tenant_id", 1, "endpoint_id", 1, "order", 1, "_id", 1)},
		{collection: supportChangesCollection, name: "at", keys: keys("at", 1)},
		// Erasure: the idempotency answers of a conversation, and the jobs.
		{collection: idempotencyCollection, name: "tenant_conversation",
			keys: keys("tenant_id", 1, "conversation_id", 1)},
		{collection: erasuresCollection, name: "state_requested", keys: keys("state", 1, "requested_at", 1)},
		{collection: erasuresCollection, name: "tenant_customer_state",
			keys: keys("tenant_id", 1, "customer_id", 1, "state", 1)},
		{collection: idempotencyCollection, name: "expires", ttl: true,
			keys: keys("expires_at", 1)},
		// The audit trail, newest first per tenant, and its expiry.
		{collection: auditCollection, name: "tenant_id_desc",
			keys: keys("tenant_id", 1, "_id", -1)},
		{collection: auditCollection, name: "expires", ttl: true,
			keys: keys("expires_at", 1)},
	}
}

// options returns the options of ix, partial or not where it is partial.
func (ix index) options(partial bool) *options.IndexOptionsBuilder {
	opts := options.Index().SetName(ix.name)
	if ix.unique {
		opts.SetUnique(true)
	}
	if ix.partial != "" && partial {
		opts.SetPartialFilterExpression(bson.M{ix.partial: true})
	}
	if ix.ttl {
		opts.SetExpireAfterSeconds(0)
	}
	return opts
}

// keys returns the index keys of name, direction pairs.
func keys(pairs ...any) bson.D {
	d := make(bson.D, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		d = append(d, bson.E{Key: pairs[i].(string), Value: pairs[i+1]})
	}
	return d
}

// EnsureIndexes creates the indexes the store's queries use; those that exist are left as they
// are, so it is safe at every start. A server without TTL indexes (FerretDB) is logged and
// tolerated: NeedsSweep then reports true, and expired idempotency records and audit entries
// must be deleted by Store.SweepIdempotency and Store.SweepAudit. On FerretDB it also gives
// older conversation views the fields later versions added (backfillCustomerID).
func (db *DB) EnsureIndexes(ctx context.Context) error {
	for _, ix := range indexes() {
		_, err := db.db.Collection(ix.collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: ix.options(true)})
		if ix.partial != "" && hasCode(err, codeNotImplemented) {
			// FerretDB has no partial indexes: a whole one then.
			_, err = db.db.Collection(ix.collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: ix.options(false)})
		}
		if ix.ttl && hasCode(err, codeNotImplemented) {
			db.log.InfoContext(ctx, "mongodb server has no TTL indexes; expired records are swept instead",
				"collection", ix.collection, "index", ix.name)
			db.needsSweep.Store(true)
			continue
		}
		if err != nil {
			return wrap("create index "+ix.collection+"."+ix.name, err)
		}
	}
	return db.backfillCustomerID(ctx)
}

// hasCode reports whether err is a server error with code.
func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

// NeedsSweep reports whether the server lacks TTL indexes, so expired idempotency records stay
// until Store.SweepIdempotency deletes them. It is known once EnsureIndexes succeeded.
func (db *DB) NeedsSweep() bool { return db.needsSweep.Load() }
