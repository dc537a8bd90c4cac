// Package events is the live event bus of Support Chat: every committed change is appended to
// its tenant's Redis Stream, which keeps a replay window, and each replica reads the streams of
// the tenants it has subscribers for, one reader per tenant, and fans their entries out to its
// local event streams (docs/EVENTS.md).
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
)

// Key returns the Redis Stream of a tenant's events. The tenant id is a hash tag, so the key
// lives on the slot of the tenant's other keys on a Redis Cluster.
func Key(tenantID string) string { return "chat:{" + tenantID + "}:events" }

// Record is one event as it is stored and delivered: the payloads are rendered once, at
// publication, for each audience.
type Record struct {
	// ID is the stream entry id ("<ms>-<seq>"), the SSE id.
	ID   string
	Type chat.EventType
	// CustomerID is the customer whose conversation changed; "" for events of the whole tenant.
	CustomerID string
	// Admin is the JSON payload for the tenant's admins; Customer the one for the customer
	// (nil when it is the same as Admin).
	Admin    []byte
	Customer []byte
}

// For returns the payload r shows to a caller, and whether the caller may see r at all: admins
// see every event of their tenant, a customer the events of their own conversations and those
// of the whole tenant.
func (r Record) For(c chat.Caller) ([]byte, bool) {
	if c.IsAdmin() {
		return r.Admin, true
	}
	if r.CustomerID != "" && r.CustomerID != c.ID {
		return nil, false
	}
	if r.Customer != nil {
		return r.Customer, true
	}
	return r.Admin, true
}

// Payload is an event rendered for its audiences.
type Payload struct {
	Admin, Customer []byte
}

// Renderer renders an event's JSON payloads (the HTTP API owns the JSON shapes).
type Renderer func(chat.Event) (Payload, error)

// Observer counts published events; it may be nil.
type Observer interface {
	EventPublished(eventType string, err error)
}

// Replay window of a tenant's stream: entries younger than Window are kept, and at least
// MinEvents entries whatever their age (PRODUCT.md asks for 5 minutes and 1000 events).
const (
	DefaultWindow    = 10 * time.Minute
	DefaultMinEvents = 1000
	// maxEvents bounds a stream's memory whatever the tenant's rate.
	maxEvents = 100000
)

// publishScript appends an event to KEYS[1] and trims entries older than the window (ARGV[5]
// ms, by the server's clock, which also makes the ids) once the stream holds more than ARGV[6]
// entries. The key expires once the tenant has been idle for the window and an hour (ARGV[8]
// ms). An event with an id (ARGV[9]) is appended only if KEYS[2], the sorted set of the ids
// published within the window (by score, the time), does not hold it yet: the log publishes each entry's events at
// least once, and this keeps repeats out of the stream. It returns the new entry's id, or
// false for a repeat.
const publishScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[9] ~= '' then
  if redis.call('ZADD', KEYS[2], 'NX', now, ARGV[9]) == 0 then
    return false
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 't', ARGV[1], 'c', ARGV[2], 'a', ARGV[3], 'u', ARGV[4])
if redis.call('XLEN', KEYS[1]) > tonumber(ARGV[6]) then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', tostring(now - tonumber(ARGV[5])))
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return id`

// publishedKey returns the sorted set of the event ids a tenant's stream holds.
func publishedKey(tenantID string) string { return "chat:{" + tenantID + "}:published" }

// Bus publishes events to and reads them from the tenants' streams.
type Bus struct {
	rdb       redis.UniversalClient
	render    Renderer
	log       *slog.Logger
	obs       Observer
	window    time.Duration
	minEvents int
	publish   *redis.Script
	replay    *redis.Script

	// lost holds the tenants whose events without an id this replica failed to publish: the
	// next append to their stream is a resync entry first (see Publish).
	mu   sync.Mutex
	lost map[string]bool
}

// EventResync is the type of the entry that tells every stream of a tenant that events were
// lost: its clients list again with updated_since.
const EventResync chat.EventType = "resync"

// resyncPayload is the data of a resync event.
var resyncPayload = []byte(`{"reason":"some events could not be delivered; list again with updated_since"}`)

var _ chat.Publisher = (*Bus)(nil)

// BusOptions tune a Bus; zero values take the defaults.
type BusOptions struct {
	Window    time.Duration
	MinEvents int
	Logger    *slog.Logger
	Observer  Observer
}

// NewBus returns a Bus on rdb rendering events with render.
func NewBus(rdb redis.UniversalClient, render Renderer, o BusOptions) *Bus {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MinEvents <= 0 {
		o.MinEvents = DefaultMinEvents
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Bus{rdb: rdb, render: render, log: o.Logger, obs: o.Observer, window: o.Window, minEvents: o.MinEvents, publish: redis.NewScript(publishScript), replay: redis.NewScript(replayScript), lost: make(map[string]bool)}
}

// Publish appends e to its tenant's stream, unless e has an ID the stream holds already. A
// publish that fails is logged, counted and returned. An event with an ID comes from the
// conversation log, which publishes it again until it is out (internal/convlog). One without
// (support.changed) has no such source: its tenant is remembered, and the next append to its
// stream (the next event, or Flush) is preceded by a resync entry, so every client that may
// have missed the event, live or resuming with Last-Event-ID, is told to list again.
func (b *Bus) Publish(ctx context.Context, e chat.Event) error {
	ctx = context.WithoutCancel(ctx)
	err := b.resyncIfLost(ctx, e.TenantID)
	if err == nil {
		err = b.append(ctx, e)
	}
	if err != nil && e.ID == "" {
		b.setLost(e.TenantID)
	}
	if b.obs != nil {
		b.obs.EventPublished(string(e.Type), err)
	}
	if err != nil {
		b.log.WarnContext(ctx, "event not published", "tenant", e.TenantID, "type", e.Type, "error", err)
	}
	return err
}

func (b *Bus) append(ctx context.Context, e chat.Event) error {
	p, err := b.render(e)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	return b.add(ctx, e.TenantID, e.ID, e.Type, e.CustomerID, p)
}

func (b *Bus) add(ctx context.Context, tenantID, eventID string, t chat.EventType, customerID string, p Payload) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := b.publish.Run(ctx, b.rdb, []string{Key(tenantID), publishedKey(tenantID)},
		string(t), customerID, p.Admin, p.Customer, b.window.Milliseconds(), b.minEvents, maxEvents, (b.window + time.Hour).Milliseconds(), eventID).Err()
	if errors.Is(err, redis.Nil) {
		return nil // a repeat
	}
	return err
}

func (b *Bus) setLost(tenantID string) {
	b.mu.Lock()
	b.lost[tenantID] = true
	b.mu.Unlock()
}

// resyncIfLost appends a resync entry to the tenant's stream if this replica lost an event of
// the tenant since its last successful append.
func (b *Bus) resyncIfLost(ctx context.Context, tenantID string) error {
	b.mu.Lock()
	lost := b.lost[tenantID]
	b.mu.Unlock()
	if !lost {
		return nil
	}
	if err := b.add(ctx, tenantID, "", EventResync, "", Payload{Admin: resyncPayload}); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.lost, tenantID)
	b.mu.Unlock()
	return nil
}

// Flush appends the pending resync entries of tenants that lost events, once Redis takes
// them again; the service calls it every few seconds, so a tenant without further writes hears
// of its lost events too. It returns how many tenants it flushed.
func (b *Bus) Flush(ctx context.Context) int {
	b.mu.Lock()
	tenants := make([]string, 0, len(b.lost))
	for t := range b.lost {
		tenants = append(tenants, t)
	}
	b.mu.Unlock()
	n := 0
	for _, t := range tenants {
		if b.resyncIfLost(ctx, t) != nil {
			break // Redis is still down
		}
		n++
	}
	return n
}

// Last returns the id of the newest event of the tenant, or "0-0" when it has none.
func (b *Bus) Last(ctx context.Context, tenantID string) (string, error) {
	msgs, err := b.rdb.XRevRangeN(ctx, Key(tenantID), "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// read blocks up to block for events of the tenant after id.
func (b *Bus) read(ctx context.Context, tenantID, id string, block time.Duration, count int64) ([]Record, error) {
	streams, err := b.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{Key(tenantID), id}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, s := range streams {
		out = append(out, records(s.Messages)...)
	}
	return out, nil
}

func records(msgs []redis.XMessage) []Record {
	out := make([]Record, 0, len(msgs))
	for _, m := range msgs {
		r := Record{ID: m.ID}
		r.Type = chat.EventType(field(m.Values, "t"))
		r.CustomerID = field(m.Values, "c")
		r.Admin = []byte(field(m.Values, "a"))
		if u := field(m.Values, "u"); u != "" {
			r.Customer = []byte(u)
		}
		out = append(out, r)
	}
	return out
}

func field(values map[string]any, name string) string {
	s, _ := values[name].(string)
	return s
}

// ParseID splits a stream entry id "<ms>-<seq>".
func ParseID(id string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found || len(id) > 41 {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// Less reports whether stream entry id a comes before b; both must be valid ids.
func Less(a, b string) bool {
	ams, aseq, _ := ParseID(a)
	bms, bseq, _ := ParseID(b)
	return ams < bms || ams == bms && aseq < bseq
}
