package mongodb_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/testenv"
)

// Views stored before customer_id existed are still listed for their customer once the
// service starts (EnsureIndexes): on FerretDB a customer's list filters on customer_id, which
// EnsureIndexes gives them; on MongoDB it filters on customer.id.
func TestEnsureIndexesKeepsOlderViewsListed(t *testing.T) {
	for _, server := range testenv.MongoServers() {
		t.Run(server.Name, func(t *testing.T) { testOlderViewsListed(t, server) })
	}
}

func testOlderViewsListed(t *testing.T, server testenv.MongoServer) {
	uri, database := server.MustDatabase(t)
	ctx := context.Background()
	db, err := mongodb.Open(ctx, uri, database, mongodb.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close(ctx)
	s := db.Store()
	other := newConversation(shop, id(2), t0.Add(time.Minute))
	other.Customer.ID = "cust-2"
	mustCreate(t, s, newConversation(shop, id(1), t0), other)

	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer client.Disconnect(ctx)
	views := client.Database(database).Collection("conversations")
	// As an older version stored them: without customer_id.
	if _, err := views.UpdateMany(ctx, bson.M{}, bson.M{"$unset": bson.M{"customer_id": ""}}); err != nil {
		t.Fatalf("unset customer_id: %v", err)
	}
	if n, err := views.CountDocuments(ctx, bson.M{"customer_id": bson.M{"$exists": true}}); err != nil || n != 0 {
		t.Fatalf("views with customer_id before EnsureIndexes: %d, %v; want 0", n, err)
	}

	for i := range 2 {
		if err := db.EnsureIndexes(ctx); err != nil {
			t.Fatalf("EnsureIndexes(%d) = %v, want nil", i+1, err)
		}
	}
	// One written since.
	third := newConversation(shop, id(3), t0.Add(2*time.Minute))
	mustCreate(t, s, third)
	for _, tc := range []struct {
		customer string
		want     []string
	}{
		{"cust-1", []string{id(3), id(1)}},
		{"cust-2", []string{id(2)}},
	} {
		list, err := s.ListConversations(ctx, shop, chat.ListFilter{CustomerID: tc.customer}, nil, 10)
		if err != nil {
			t.Fatalf("ListConversations(%s): %v", tc.customer, err)
		}
		if diff := cmp.Diff(tc.want, ids(list)); diff != "" {
			t.Errorf("ListConversations(%s) ids (-want +got):\n%s", tc.customer, diff)
		}
	}
	var got struct {
		CustomerID string `bson:"customer_id"`
	}
	if err := views.FindOne(ctx, bson.M{"_id": id(3)}).Decode(&got); err != nil || got.CustomerID != "cust-1" {
		t.Errorf("customer_id of a view projected now = %q, %v; want cust-1", got.CustomerID, err)
	}
}
