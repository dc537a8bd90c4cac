package telemetry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/telemetry"
	"github.com/supportchat/supportchat/internal/tenant"
)

// secrets are values inside the command documents below that must never reach a span.
var secrets = []string{"cust-secret-42", "Where is my order", "msg-secret-id", "8765432101"}

// MustRaw marshals doc into a command document.
func MustRaw(tb testing.TB, doc bson.D) bson.Raw {
	tb.Helper()
	raw, err := bson.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// mongoCall is one command as the driver reports it: started, then succeeded or failed.
type mongoCall struct {
	db, name, conn string
	requestID      int64
	cmd            bson.D
	failure        error // nil: succeeded
}

func (c mongoCall) start(ctx context.Context, tb testing.TB, mon *event.CommandMonitor) {
	mon.Started(ctx, &event.CommandStartedEvent{
		Command: MustRaw(tb, c.cmd), DatabaseName: c.db, CommandName: c.name,
		RequestID: c.requestID, ConnectionID: c.conn,
	})
}

func (c mongoCall) finish(ctx context.Context, tb testing.TB, mon *event.CommandMonitor) {
	fin := event.CommandFinishedEvent{
		Duration: 3 * time.Millisecond, CommandName: c.name, DatabaseName: c.db,
		RequestID: c.requestID, ConnectionID: c.conn,
	}
	if c.failure != nil {
		mon.Failed(ctx, &event.CommandFailedEvent{CommandFinishedEvent: fin, Failure: c.failure})
		return
	}
	mon.Succeeded(ctx, &event.CommandSucceededEvent{CommandFinishedEvent: fin, Reply: MustRaw(tb, bson.D{{Key: "ok", Value: 1}})})
}

func TestMongoMonitorTracesCommandsWithoutTheirValues(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel := MustSetup(t, telemetry.Options{Getenv: env(nil), Exporter: exp})
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{TenantLabel: true})
	mon := telemetry.NewMongoMonitor(tel.TracerProvider(), metrics)
	ctx := tenant.NewContext(context.Background(), &tenant.Tenant{ID: "demo-shop"})
	const conn = "mongo-0.mongo:27017[-3]"

	find := mongoCall{db: "supportchat", name: "find", conn: conn, requestID: 7, cmd: bson.D{
		{Key: "find", Value: "conversations"},
		{Key: "filter", Value: bson.D{{Key: "tenant_id", Value: "demo-shop"}, {Key: "customer_id", Value: "cust-secret-42"}}},
		{Key: "$db", Value: "supportchat"},
	}}
	dup := driver.Error{Code: 11000, Name: "DuplicateKey",
		Message: `E11000 duplicate key error collection: supportchat.messages index: _id_ dup key: { _id: "msg-secret-id" }`}
	insert := mongoCall{db: "supportchat", name: "insert", conn: "mongo-1.mongo:27017[-9]", requestID: 7, cmd: bson.D{
		{Key: "insert", Value: "messages"},
		{Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: "msg-secret-id"}, {Key: "body", Value: "Where is my order?"}}}},
	}, failure: dup}
	getMore := mongoCall{db: "supportchat", name: "getMore", conn: conn, requestID: 8, cmd: bson.D{
		{Key: "getMore", Value: int64(8765432101)}, {Key: "collection", Value: "conversations"},
	}}
	ping := mongoCall{db: "admin", name: "ping", conn: "[::1]:27017[-1]", requestID: 9, cmd: bson.D{{Key: "ping", Value: 1}}}
	timeout := mongoCall{db: "supportchat", name: "update", conn: conn, requestID: 10, cmd: bson.D{
		{Key: "update", Value: "settings"}, {Key: "updates", Value: bson.A{bson.D{{Key: "q", Value: bson.D{{Key: "x", Value: "cust-secret-42"}}}}}},
	}, failure: driver.Error{Message: "operation timed out", Wrapped: context.DeadlineExceeded}}

	// find and insert overlap with the same request id on different connections.
	find.start(ctx, t, mon)
	insert.start(ctx, t, mon)
	insert.finish(ctx, t, mon)
	find.finish(ctx, t, mon)
	for _, c := range []mongoCall{getMore, ping, timeout} {
		c.start(ctx, t, mon)
		c.finish(ctx, t, mon)
	}

	type want struct {
		attrs     map[string]string
		status    codes.Code
		errorType string
	}
	wants := map[string]want{
		"find conversations": {attrs: map[string]string{
			"db.system.name": "mongodb", "db.operation.name": "find", "db.collection.name": "conversations",
			"db.namespace": "supportchat", "server.address": "mongo-0.mongo", "server.port": "27017", "chat.tenant.id": "demo-shop",
		}, status: codes.Unset},
		"insert messages": {attrs: map[string]string{
			"db.operation.name": "insert", "db.collection.name": "messages", "server.address": "mongo-1.mongo",
			"error.type": "DuplicateKey", "db.response.status_code": "11000",
		}, status: codes.Error, errorType: "DuplicateKey"},
		"getMore conversations": {attrs: map[string]string{"db.operation.name": "getMore", "db.collection.name": "conversations"}},
		"ping admin":            {attrs: map[string]string{"db.operation.name": "ping", "db.collection.name": "", "db.namespace": "admin", "server.address": "::1"}},
		"update settings":       {attrs: map[string]string{"error.type": "timeout"}, status: codes.Error, errorType: "timeout"},
	}
	spans := exp.GetSpans()
	if len(spans) != len(wants) {
		t.Fatalf("got %d spans, want %d", len(spans), len(wants))
	}
	for _, s := range spans {
		w, ok := wants[s.Name]
		if !ok {
			t.Errorf("unexpected span %q", s.Name)
			continue
		}
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("span %q kind = %v, want client", s.Name, s.SpanKind)
		}
		got := attrs(s.Attributes)
		for k, v := range w.attrs {
			if got[k] != v {
				t.Errorf("span %q attribute %s = %q, want %q", s.Name, k, got[k], v)
			}
		}
		if s.Status.Code != w.status || s.Status.Description != w.errorType {
			t.Errorf("span %q status = %v %q, want %v %q", s.Name, s.Status.Code, s.Status.Description, w.status, w.errorType)
		}
		if len(s.Events) != 0 {
			t.Errorf("span %q has events %v; errors are recorded as attributes only", s.Name, s.Events)
		}
		for k, v := range got {
			for _, secret := range secrets {
				if strings.Contains(v, secret) {
					t.Errorf("span %q attribute %s = %q carries a command value", s.Name, k, v)
				}
			}
			if strings.Contains(k, "statement") || strings.Contains(k, "query.text") {
				t.Errorf("span %q has attribute %s: the command document must not be recorded", s.Name, k)
			}
		}
	}

	// The same commands feed chat_mongodb_command_duration_seconds.
	for _, c := range []struct{ operation, collection, outcome string }{
		{"find", "conversations", "ok"}, {"insert", "messages", "error"}, {"getMore", "conversations", "ok"},
		{"ping", "none", "ok"}, {"update", "settings", "error"},
	} {
		if n := histogramCount(MustGather(t, metrics), "chat_mongodb_command_duration_seconds",
			map[string]string{"operation": c.operation, "collection": c.collection, "outcome": c.outcome}); n != 1 {
			t.Errorf("chat_mongodb_command_duration_seconds%v count = %d, want 1", c, n)
		}
	}
}

func TestMongoMonitorWithoutTracingStillCountsCommands(t *testing.T) {
	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
	for _, tp := range []trace.TracerProvider{nil, MustSetup(t, telemetry.Options{Getenv: env(nil)}).TracerProvider()} {
		mon := telemetry.NewMongoMonitor(tp, metrics)
		c := mongoCall{db: "supportchat", name: "aggregate", conn: "localhost:27017[-1]", requestID: 1,
			cmd: bson.D{{Key: "aggregate", Value: "conversations"}}, failure: errors.New("boom")}
		c.start(context.Background(), t, mon)
		c.finish(context.Background(), t, mon)
	}
	// A nil observer is allowed too.
	mon := telemetry.NewMongoMonitor(nil, nil)
	c := mongoCall{db: "supportchat", name: "find", conn: "localhost:27017[-1]", requestID: 2, cmd: bson.D{{Key: "find", Value: "x"}}}
	c.start(context.Background(), t, mon)
	c.finish(context.Background(), t, mon)

	labels := map[string]string{"operation": "aggregate", "collection": "conversations", "outcome": "error"}
	if n := histogramCount(MustGather(t, metrics), "chat_mongodb_command_duration_seconds", labels); n != 2 {
		t.Errorf("chat_mongodb_command_duration_seconds%v count = %d, want 2", labels, n)
	}
}
