package mongodb

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/webhook"
)

// Webhooks: endpoints, deliveries with their attempts, and the queue of pending deliveries
// the workers read. The queue is a collection of its own and holds only what is pending, so
// that FerretDB, which decodes every document of a collection for a query, reads little on
// each poll; the deliveries keep their history until SweepDeliveries.

var _ webhook.Store = (*Store)(nil)

var (
	errEndpointNotFound = &chat.Error{Code: chat.NotFound, Message: "no such webhook endpoint"}
	errDeliveryNotFound = &chat.Error{Code: chat.NotFound, Message: "no such delivery"}
)

type secretDoc struct {
	Value     string    `bson:"value"`
	CreatedAt time.Time `bson:"created_at"`
	Expires   time.Time `bson:"expires,omitempty"`
}

type endpointDoc struct {
	ID             string      `bson:"_id"`
	TenantID       string      `bson:"tenant_id"`
	Slot           int         `bson:"slot"`
	URL            string      `bson:"url"`
	Events         []string    `bson:"events"`
	Description    string      `bson:"description,omitempty"`
	Enabled        bool        `bson:"enabled"`
	DisabledReason string      `bson:"disabled_reason,omitempty"`
	Secrets        []secretDoc `bson:"secrets"`
	CreatedAt      time.Time   `bson:"created_at"`
	UpdatedAt      time.Time   `bson:"updated_at"`
}

func (d endpointDoc) tenant() string { return d.TenantID }

func toEndpointDoc(e *webhook.Endpoint) endpointDoc {
	d := endpointDoc{ID: e.ID, TenantID: e.TenantID, Slot: e.Slot, URL: e.URL, Description: e.Description,
		Enabled: e.Enabled, DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	for _, t := range e.Events {
		d.Events = append(d.Events, string(t))
	}
	for _, s := range e.Secrets {
		d.Secrets = append(d.Secrets, secretDoc(s))
	}
	return d
}

func (d endpointDoc) endpoint() webhook.Endpoint {
	e := webhook.Endpoint{ID: d.ID, TenantID: d.TenantID, Slot: d.Slot, URL: d.URL, Description: d.Description,
		Enabled: d.Enabled, DisabledReason: d.DisabledReason, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	for _, t := range d.Events {
		e.Events = append(e.Events, chat.EventType(t))
	}
	for _, s := range d.Secrets {
		e.Secrets = append(e.Secrets, webhook.Secret{Value: s.Value, CreatedAt: s.CreatedAt.UTC(), Expires: s.Expires.UTC()})
	}
	return e
}

type attemptDoc struct {
	At       time.Time `bson:"at"`
	Status   int       `bson:"status,omitempty"`
	Duration int64     `bson:"duration_us"`
	Error    string    `bson:"error,omitempty"`
}

type deliveryDoc struct {
	ID         string       `bson:"_id"`
	TenantID   string       `bson:"tenant_id"`
	EndpointID string       `bson:"endpoint_id"`
	EventID    string       `bson:"event_id"`
	Type       string       `bson:"type"`
	Body       string       `bson:"body"`
	Order      string       `bson:"order"`
	State      string       `bson:"state"`
	CreatedAt  time.Time    `bson:"created_at"`
	NextAt     time.Time    `bson:"next_at,omitempty"`
	Tries      int          `bson:"tries"`
	Since      time.Time    `bson:"since"`
	Attempts   []attemptDoc `bson:"attempts"`
}

func (d deliveryDoc) tenant() string { return d.TenantID }

func toDeliveryDoc(d *webhook.Delivery) deliveryDoc {
	doc := deliveryDoc{ID: d.ID, TenantID: d.TenantID, EndpointID: d.EndpointID, EventID: d.EventID, Type: string(d.Type),
		Body: string(d.Body), Order: d.Order, State: string(d.State), CreatedAt: d.CreatedAt, NextAt: d.NextAt, Tries: d.Tries,
		Since: d.Since, Attempts: []attemptDoc{}}
	for _, a := range d.Attempts {
		doc.Attempts = append(doc.Attempts, attemptDoc{At: a.At, Status: a.Status, Duration: a.Duration.Microseconds(), Error: a.Error})
	}
	return doc
}

func (d deliveryDoc) delivery() webhook.Delivery {
	out := webhook.Delivery{ID: d.ID, TenantID: d.TenantID, EndpointID: d.EndpointID, EventID: d.EventID, Type: chat.EventType(d.Type),
		Body: []byte(d.Body), Order: d.Order, State: webhook.State(d.State), CreatedAt: d.CreatedAt.UTC(), NextAt: d.NextAt.UTC(), Tries: d.Tries, Since: d.Since.UTC()}
	if d.NextAt.IsZero() {
		out.NextAt = time.Time{}
	}
	for _, a := range d.Attempts {
		out.Attempts = append(out.Attempts, webhook.Attempt{At: a.At.UTC(), Status: a.Status, Duration: time.Duration(a.Duration) * time.Microsecond, Error: a.Error})
	}
	return out
}

type queuedDoc struct {
	ID         string    `bson:"_id"`
	TenantID   string    `bson:"tenant_id"`
	EndpointID string    `bson:"endpoint_id"`
	Order      string    `bson:"order"`
	NextAt     time.Time `bson:"next_at"`
	Tries      int       `bson:"tries"`
	CreatedAt  time.Time `bson:"created_at"`
}

func queuedOf(d *webhook.Delivery) queuedDoc {
	return queuedDoc{ID: d.ID, TenantID: d.TenantID, EndpointID: d.EndpointID, Order: d.Order, NextAt: d.NextAt, Tries: d.Tries, CreatedAt: d.CreatedAt}
}

func (q queuedDoc) queued() webhook.Queued {
	return webhook.Queued{ID: q.ID, TenantID: q.TenantID, EndpointID: q.EndpointID, Order: q.Order, NextAt: q.NextAt.UTC(), Tries: q.Tries, CreatedAt: q.CreatedAt.UTC()}
}

// CreateEndpoint stores e in the first free slot of its tenant below most. Slots are unique per
// tenant (an index), so two admins creating endpoints at once on two replicas cannot both take
// the last one; the loser tries the next free slot.
func (s *Store) CreateEndpoint(ctx context.Context, e *webhook.Endpoint, most int) error {
	for range most + 1 {
		existing, err := s.Endpoints(ctx, e.TenantID)
		if err != nil {
			return err
		}
		e.Slot = -1
		for slot := range most {
			if !slices.ContainsFunc(existing, func(x webhook.Endpoint) bool { return x.Slot == slot }) {
				e.Slot = slot
				break
			}
		}
		if e.Slot < 0 {
			return chat.Errorf(chat.Conflict, "the tenant has %d webhook endpoints, the most it may have; delete one first", most)
		}
		if err := s.breaker.allow("create webhook endpoint"); err != nil {
			return err
		}
		_, err = s.webhookEndpoints.InsertOne(ctx, toEndpointDoc(e))
		if !mongo.IsDuplicateKeyError(err) {
			return s.wrap("create webhook endpoint", err)
		}
	}
	return chat.Errorf(chat.Unavailable, "webhook endpoints are being created concurrently; retry")
}

// Endpoints returns the tenant's endpoints, oldest first.
func (s *Store) Endpoints(ctx context.Context, tenantID string) ([]webhook.Endpoint, error) {
	if err := s.breaker.allow("list webhook endpoints"); err != nil {
		return nil, err
	}
	docs, err := findAll[endpointDoc](ctx, s, "list webhook endpoints", s.webhookEndpoints, bson.M{"tenant_id": tenantID},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Endpoint, len(docs))
	for i, d := range docs {
		out[i] = d.endpoint()
	}
	return out, nil
}

// Endpoint returns the tenant's endpoint id.
func (s *Store) Endpoint(ctx context.Context, tenantID, id string) (*webhook.Endpoint, error) {
	d, err := findByID[endpointDoc](ctx, s, s.webhookEndpoints, tenantID, id, "find webhook endpoint", errEndpointNotFound)
	if err != nil {
		return nil, err
	}
	e := d.endpoint()
	return &e, nil
}

// ReplaceEndpoint stores e over the tenant's endpoint with its id.
func (s *Store) ReplaceEndpoint(ctx context.Context, e *webhook.Endpoint) error {
	if err := s.breaker.allow("replace webhook endpoint"); err != nil {
		return err
	}
	res, err := s.webhookEndpoints.ReplaceOne(ctx, bson.M{"_id": e.ID, "tenant_id": e.TenantID}, toEndpointDoc(e))
	if err != nil {
		return s.wrap("replace webhook endpoint", err)
	}
	if res.MatchedCount == 0 {
		return errEndpointNotFound
	}
	return nil
}

// DeleteEndpoint deletes the tenant's endpoint id, its queue and its deliveries.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	if err := s.breaker.allow("delete webhook endpoint"); err != nil {
		return err
	}
	filter := bson.M{"tenant_id": tenantID, "endpoint_id": id}
	if _, err := s.webhookEndpoints.DeleteOne(ctx, bson.M{"_id": id, "tenant_id": tenantID}); err != nil {
		return s.wrap("delete webhook endpoint", err)
	}
	if _, err := s.webhookQueue.DeleteMany(ctx, filter); err != nil {
		return s.wrap("delete webhook queue", err)
	}
	_, err := s.webhookDeliveries.DeleteMany(ctx, filter)
	return s.wrap("delete webhook deliveries", err)
}

// AddDeliveries stores new deliveries and queues them, in the order given (a worker reading
// the queue meanwhile sees a prefix of them, never a later one without an earlier one). A
// delivery stored before (a fan-out that is done again after it died before clearing its
// marks) is queued again only while it is pending, so a delivered one is not sent again.
func (s *Store) AddDeliveries(ctx context.Context, ds []webhook.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	if err := s.breaker.allow("add webhook deliveries"); err != nil {
		return err
	}
	docs := make([]any, len(ds))
	for i := range ds {
		docs[i] = toDeliveryDoc(&ds[i])
	}
	stored, err := insertInOrder(ctx, s.webhookDeliveries, docs)
	if err != nil {
		return s.wrap("add webhook deliveries", err)
	}
	var queue []any
	for i := range ds {
		if !stored[i] {
			queue = append(queue, queuedOf(&ds[i]))
			continue
		}
		d, err := s.Delivery(ctx, ds[i].TenantID, ds[i].ID)
		if err != nil {
			return err
		}
		if d.State == webhook.Pending {
			queue = append(queue, queuedOf(d))
		}
	}
	if _, err := insertInOrder(ctx, s.webhookQueue, queue); err != nil {
		return s.wrap("queue webhook deliveries", err)
	}
	return nil
}

// insertInOrder inserts docs one after the other, as ordered inserts do, going on past those
// refused as duplicates, and returns which were.
func insertInOrder(ctx context.Context, coll *mongo.Collection, docs []any) (map[int]bool, error) {
	dup := map[int]bool{}
	for start := 0; start < len(docs); {
		_, err := coll.InsertMany(ctx, docs[start:], options.InsertMany().SetOrdered(true))
		if err == nil {
			break
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 || !isDuplicateKey(bwe.WriteErrors[0].Code) {
			return nil, err
		}
		dup[start+bwe.WriteErrors[0].Index] = true
		start += bwe.WriteErrors[0].Index + 1
	}
	return dup, nil
}

// Due returns up to limit queued deliveries due at now, the longest due first, leaving out
// the endpoints whose first delivery waits for a retry: theirs wait behind it.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]webhook.Queued, error) {
	if err := s.breaker.allow("due webhook deliveries"); err != nil {
		return nil, err
	}
	// The endpoints held back: their first queued delivery waits for a retry (few: the queue
	// holds only what is pending, and a held endpoint has one such delivery).
	held, err := s.queued(ctx, bson.M{"tries": bson.M{"$gt": 0}, "next_at": bson.M{"$gt": now}}, nil, 0)
	if err != nil {
		return nil, err
	}
	var heldIDs []string
	for _, q := range held {
		if !slices.Contains(heldIDs, q.EndpointID) {
			heldIDs = append(heldIDs, q.EndpointID)
		}
	}
	filter := bson.M{"next_at": bson.M{"$lte": now}}
	if len(heldIDs) > 0 {
		filter["endpoint_id"] = bson.M{"$nin": heldIDs}
	}
	return s.queued(ctx, filter, bson.D{{Key: "next_at", Value: 1}, {Key: "order", Value: 1}}, limit)
}

// Queue returns up to limit queued deliveries of an endpoint in order, due or not.
func (s *Store) Queue(ctx context.Context, tenantID, endpointID string, limit int) ([]webhook.Queued, error) {
	if err := s.breaker.allow("webhook queue"); err != nil {
		return nil, err
	}
	return s.queued(ctx, bson.M{"tenant_id": tenantID, "endpoint_id": endpointID}, bson.D{{Key: "order", Value: 1}, {Key: "_id", Value: 1}}, limit)
}

func (s *Store) queued(ctx context.Context, filter bson.M, sort bson.D, limit int) ([]webhook.Queued, error) {
	opts := options.Find()
	if sort != nil {
		opts.SetSort(sort)
	}
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	docs, err := findAll[queuedDoc](ctx, s, "webhook queue", s.webhookQueue, filter, opts)
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Queued, len(docs))
	for i, d := range docs {
		out[i] = d.queued()
	}
	return out, nil
}

// Delivery returns the tenant's delivery id.
func (s *Store) Delivery(ctx context.Context, tenantID, id string) (*webhook.Delivery, error) {
	d, err := findByID[deliveryDoc](ctx, s, s.webhookDeliveries, tenantID, id, "find webhook delivery", errDeliveryNotFound)
	if err != nil {
		return nil, err
	}
	out := d.delivery()
	return &out, nil
}

// SaveDelivery stores d, then queues it at NextAt while it is pending and takes it out of the
// queue otherwise. One worker at a time works an endpoint's deliveries (a lease), and an
// admin's redelivery touches only a delivery that is out of the queue.
func (s *Store) SaveDelivery(ctx context.Context, d *webhook.Delivery) error {
	if err := s.breaker.allow("save webhook delivery"); err != nil {
		return err
	}
	// By _id alone on FerretDB, which otherwise decodes every delivery of the collection: the
	// id, made of the endpoint's and the event's, belongs to one tenant, and d was read for it.
	filter := bson.M{"_id": d.ID, "tenant_id": d.TenantID}
	if s.server.isFerretDB(ctx) {
		filter = bson.M{"_id": d.ID}
	}
	if _, err := s.webhookDeliveries.ReplaceOne(ctx, filter, toDeliveryDoc(d)); err != nil {
		return s.wrap("save webhook delivery", err)
	}
	if d.State != webhook.Pending {
		_, err := s.webhookQueue.DeleteOne(ctx, bson.M{"_id": d.ID})
		return s.wrap("unqueue webhook delivery", err)
	}
	_, err := s.webhookQueue.ReplaceOne(ctx, bson.M{"_id": d.ID}, queuedOf(d), options.Replace().SetUpsert(true))
	return s.wrap("queue webhook delivery", err)
}

// Deliveries returns up to limit deliveries of an endpoint, newest first, before the position
// (before, beforeID) when before is set.
func (s *Store) Deliveries(ctx context.Context, tenantID, endpointID string, before time.Time, beforeID string, limit int) ([]webhook.Delivery, error) {
	if err := s.breaker.allow("list webhook deliveries"); err != nil {
		return nil, err
	}
	filter := bson.M{"tenant_id": tenantID, "endpoint_id": endpointID}
	if !before.IsZero() {
		filter["$or"] = bson.A{
			bson.M{"created_at": bson.M{"$lt": before}},
			bson.M{"created_at": before, "_id": bson.M{"$lt": beforeID}},
		}
	}
	docs, err := findAll[deliveryDoc](ctx, s, "list webhook deliveries", s.webhookDeliveries, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)).
		SetProjection(bson.M{"body": 0}))
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Delivery, len(docs))
	for i, d := range docs {
		out[i] = d.delivery()
	}
	return out, nil
}

// SweepDeliveries deletes up to limit delivered or dead deliveries created before before.
func (s *Store) SweepDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.breaker.allow("sweep webhook deliveries"); err != nil {
		return 0, err
	}
	filter := bson.M{"created_at": bson.M{"$lt": before}, "state": bson.M{"$in": bson.A{string(webhook.Delivered), string(webhook.Dead)}}}
	docs, err := findAll[idDoc](ctx, s, "find old webhook deliveries", s.webhookDeliveries, filter,
		options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(int64(limit)))
	if err != nil || len(docs) == 0 {
		return 0, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	filter["_id"] = bson.M{"$in": ids}
	res, err := s.webhookDeliveries.DeleteMany(ctx, filter)
	if err != nil {
		return 0, s.wrap("delete old webhook deliveries", err)
	}
	return int(res.DeletedCount), nil
}
