package testenv_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/testenv"
)

// TestUniqueKeysAreTheArbiter checks, on every server the consistency tests use, the one
// guarantee the write path is built on: of many inserts racing for the same unique key, exactly
// one succeeds and the others fail with a duplicate-key error.
func TestUniqueKeysAreTheArbiter(t *testing.T) {
	for _, srv := range testenv.MongoServers() {
		t.Run(srv.Name, func(t *testing.T) {
			uri, database := srv.MustDatabase(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client, err := mongo.Connect(options.Client().ApplyURI(uri))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = client.Disconnect(ctx) }()
			coll := client.Database(database).Collection("log")
			if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
				Keys:    bson.D{{Key: "stream", Value: 1}, {Key: "seq", Value: 1}},
				Options: options.Index().SetUnique(true),
			}); err != nil {
				t.Fatal(err)
			}
			const racers = 16
			for round := range 5 {
				var wins, dups atomic.Int64
				var wg sync.WaitGroup
				for i := range racers {
					wg.Go(func() {
						_, err := coll.InsertOne(ctx, bson.M{"_id": bson.NewObjectID(), "stream": "s", "seq": round, "writer": i})
						switch {
						case err == nil:
							wins.Add(1)
						case mongo.IsDuplicateKeyError(err):
							dups.Add(1)
						default:
							t.Errorf("insert: %v", err)
						}
					})
				}
				wg.Wait()
				if wins.Load() != 1 || dups.Load() != racers-1 {
					t.Errorf("round %d: %d inserts won and %d were duplicates, want 1 and %d", round, wins.Load(), dups.Load(), racers-1)
				}
			}
		})
	}
}
