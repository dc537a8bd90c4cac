package telemetry

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// MongoObserver records the duration and outcome of MongoDB commands; *Metrics implements it.
type MongoObserver interface {
	// MongoCommand records one command; collection is empty for database-level commands and err
	// is nil on success. ctx carries the command's span.
	MongoCommand(ctx context.Context, operation, collection string, d time.Duration, err error)
}

// collectionCommands are the commands whose first element's value is the collection they act on.
// Other commands (getMore aside) get no collection, so no value of theirs can leak into a span
// or a label.
var collectionCommands = map[string]bool{
	"find": true, "insert": true, "update": true, "delete": true, "findAndModify": true,
	"aggregate": true, "count": true, "distinct": true, "createIndexes": true, "listIndexes": true,
	"dropIndexes": true, "create": true, "drop": true, "collMod": true, "killCursors": true,
}

// NewMongoMonitor returns a command monitor for the MongoDB driver (options.Client().SetMonitor)
// that traces every command with tp and reports it to m; tp nil means no tracing and m may be nil.
//
// Spans follow the OpenTelemetry database conventions: name "<command> <collection>" (or
// "<command> <database>" for database-level commands), kind client, attributes db.system.name
// (mongodb), db.operation.name, db.collection.name, db.namespace (the database), server.address,
// server.port, and on failure error.type and db.response.status_code. Spans never carry the
// command document, its values, or the error message (which can quote a duplicate key's value).
func NewMongoMonitor(tp trace.TracerProvider, m MongoObserver) *event.CommandMonitor {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	mon := &mongoMonitor{
		tracer: tp.Tracer(instrumentationName, trace.WithSchemaURL(semconv.SchemaURL)),
		obs:    m,
	}
	return &event.CommandMonitor{Started: mon.started, Succeeded: mon.succeeded, Failed: mon.failed}
}

// mongoMonitor holds the commands in flight, keyed by mongoKey.
type mongoMonitor struct {
	tracer   trace.Tracer
	obs      MongoObserver
	inFlight sync.Map // mongoKey → mongoCommand
}

// mongoKey identifies a command in flight: request ids are unique per connection.
type mongoKey struct {
	connectionID string
	requestID    int64
}

// mongoCommand is what the monitor remembers between a command's start and its end.
type mongoCommand struct {
	span       trace.Span
	collection string
}

func (m *mongoMonitor) started(ctx context.Context, e *event.CommandStartedEvent) {
	collection := commandCollection(e.CommandName, e.Command)
	target := collection
	if target == "" {
		target = e.DatabaseName
	}
	name := e.CommandName
	if target != "" {
		name += " " + target
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, semconv.DBSystemNameMongoDB, semconv.DBOperationName(e.CommandName))
	if collection != "" {
		attrs = append(attrs, semconv.DBCollectionName(collection))
	}
	if e.DatabaseName != "" {
		attrs = append(attrs, semconv.DBNamespace(e.DatabaseName))
	}
	if host, port := peer(e.ConnectionID); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	_, span := m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	m.inFlight.Store(mongoKey{e.ConnectionID, e.RequestID}, mongoCommand{span: span, collection: collection})
}

func (m *mongoMonitor) succeeded(ctx context.Context, e *event.CommandSucceededEvent) {
	m.finish(ctx, &e.CommandFinishedEvent, nil)
}

func (m *mongoMonitor) failed(ctx context.Context, e *event.CommandFailedEvent) {
	err := e.Failure
	if err == nil {
		err = errors.New("command failed")
	}
	m.finish(ctx, &e.CommandFinishedEvent, err)
}

// finish ends the command's span and reports it, under ctx with the command's span.
func (m *mongoMonitor) finish(ctx context.Context, e *event.CommandFinishedEvent, err error) {
	var cmd mongoCommand
	if v, ok := m.inFlight.LoadAndDelete(mongoKey{e.ConnectionID, e.RequestID}); ok {
		cmd = v.(mongoCommand)
	}
	if m.obs != nil {
		if cmd.span != nil {
			ctx = trace.ContextWithSpan(ctx, cmd.span)
		}
		m.obs.MongoCommand(ctx, e.CommandName, cmd.collection, e.Duration, err)
	}
	if cmd.span == nil {
		return
	}
	if err != nil {
		errType, code := mongoErrorType(err)
		cmd.span.SetAttributes(semconv.ErrorTypeKey.String(errType))
		if code != "" {
			cmd.span.SetAttributes(semconv.DBResponseStatusCode(code))
		}
		// The description is the error type, never the message: server messages quote values.
		cmd.span.SetStatus(codes.Error, errType)
	}
	cmd.span.End()
}

// commandCollection returns the collection a command acts on, or "" when it acts on none or the
// command document is redacted.
func commandCollection(name string, cmd bson.Raw) string {
	if len(cmd) == 0 {
		return ""
	}
	if name == "getMore" {
		if v, err := cmd.LookupErr("collection"); err == nil {
			if s, ok := v.StringValueOK(); ok {
				return s
			}
		}
		return ""
	}
	if !collectionCommands[name] {
		return ""
	}
	first, err := cmd.IndexErr(0)
	if err != nil {
		return ""
	}
	if s, ok := first.Value().StringValueOK(); ok {
		return s
	}
	return ""
}

// peer returns the host and port of a driver connection id, "host:port[-7]".
func peer(connectionID string) (string, int) {
	addr, _, _ := strings.Cut(connectionID, "[-")
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(portStr)
	return host, port
}

// mongoErrorType returns a low-cardinality error.type for a command failure, and the server's
// error code when there is one. The driver reports failures as x/mongo/driver.Error, whose code
// name ("DuplicateKey") is a better error.type than a Go type name; the message is never used.
func mongoErrorType(err error) (errType, code string) {
	var de driver.Error
	if errors.As(err, &de) {
		if de.Code != 0 {
			code = strconv.Itoa(int(de.Code))
		}
		switch {
		case de.Name != "":
			return de.Name, code
		case code != "":
			return code, code
		case de.NetworkError():
			return "network", ""
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", ""
	case errors.Is(err, context.Canceled):
		return "canceled", ""
	}
	return semconv.ErrorType(err).Value.AsString(), ""
}
