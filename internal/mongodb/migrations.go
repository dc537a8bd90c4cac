package mongodb

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// customerIDDone is the _id of the record of the migrations collection saying that every
// conversation view has customer_id (conversationDoc.CustomerID).
const customerIDDone = "conversations.customer_id"

// backfillCustomerID gives customer_id to the views written before it existed, on FerretDB,
// then records that it did, and from then on a customer's list filters on it (customerField).
// On MongoDB it does nothing: lists keep filtering on customer.id, the key of their index.
//
// Each view is updated by _id alone, the filter FerretDB's SQLite backend answers from its
// index; the views are found with one scan. A run cut short (EnsureIndexes' deadline) goes on
// where it stopped at the next. While it runs, a view may be updated by a write too; FerretDB's
// updates are not atomic, so the backfill may then put back the older view, as a lost
// projection would: lists refresh views from their logs (chat.Log.Refresh), and the
// conversation's next write projects it again. A replica still running a version from before
// customer_id writes views without it, which customers' lists on FerretDB then miss until
// that replica is gone.
func (db *DB) backfillCustomerID(ctx context.Context) error {
	s := db.store
	ferret, err := s.server.ask(ctx)
	if err != nil || !ferret {
		return err
	}
	migrations := db.db.Collection(migrationsCollection)
	err = migrations.FindOne(ctx, bson.M{"_id": customerIDDone}).Err()
	if err == nil {
		s.customerTop.Store(true)
		return nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return wrap("find migration "+customerIDDone, err)
	}
	cur, err := s.conversations.Find(ctx, bson.M{"customer_id": bson.M{"$exists": false}},
		options.Find().SetProjection(bson.M{"customer.id": 1}))
	if err != nil {
		return wrap("find views without customer_id", err)
	}
	var old []struct {
		ID       string `bson:"_id"`
		Customer struct {
			ID string `bson:"id"`
		} `bson:"customer"`
	}
	if err := cur.All(ctx, &old); err != nil {
		return wrap("find views without customer_id", err)
	}
	for _, v := range old {
		if _, err := s.conversations.UpdateOne(ctx, bson.M{"_id": v.ID}, bson.M{"$set": bson.M{"customer_id": v.Customer.ID}}); err != nil {
			return wrap("set customer_id of view "+v.ID, err)
		}
	}
	_, err = migrations.InsertOne(ctx, bson.M{"_id": customerIDDone, "at": time.Now()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return wrap("record migration "+customerIDDone, err)
	}
	if len(old) > 0 {
		db.log.InfoContext(ctx, "conversation views given customer_id", "count", len(old))
	}
	s.customerTop.Store(true)
	return nil
}
