package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// Service is the management of a tenant's endpoints by its admins: the endpoints of
// /api/v1/admin/webhooks. Every method acts for the tenant and the caller of its context, and
// only for admins.
type Service struct {
	store   Store
	targets Targets
	now     func() time.Time
}

// NewService returns the management of endpoints kept in store, whose URLs targets checks.
func NewService(store Store, targets Targets, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, targets: targets, now: now}
}

// Input is what an admin sets on an endpoint; nil fields are left as they are (PATCH), and
// are required or defaulted on creation.
type Input struct {
	URL         *string
	Events      []string
	EventsSet   bool
	Description *string
	Enabled     *bool
}

// Page is a page of deliveries, newest first; Next is the cursor of the next, "" at the end.
type Page struct {
	Deliveries []Delivery
	Next       string
}

// DefaultPageSize and MaxPageSize bound a page of deliveries.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// admin returns the tenant of ctx if its caller is one of the tenant's admins.
func admin(ctx context.Context) (string, error) {
	t, err := tenant.FromContext(ctx)
	if err != nil {
		return "", chat.Errorf(chat.NotFound, "unknown tenant")
	}
	c, err := chat.CallerFromContext(ctx)
	if err != nil {
		return "", err
	}
	if !c.IsAdmin() {
		return "", chat.Errorf(chat.Forbidden, "only the tenant's admins manage webhooks")
	}
	return t.ID, nil
}

// Create registers an endpoint and returns it with its signing secret, which is shown this
// once.
func (s *Service) Create(ctx context.Context, in Input) (*Endpoint, string, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, "", err
	}
	if in.URL == nil {
		return nil, "", chat.FieldError("url", "is required")
	}
	if !in.EventsSet {
		return nil, "", chat.FieldError("events", "is required: a list of event types")
	}
	now := s.clock()
	e := &Endpoint{ID: "ep_" + randomHex(12), TenantID: tenantID, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := s.apply(e, in); err != nil {
		return nil, "", err
	}
	secret := NewSecret()
	e.Secrets = []Secret{{Value: secret, CreatedAt: now}}
	if err := s.store.CreateEndpoint(ctx, e, MaxEndpoints); err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// List returns the tenant's endpoints.
func (s *Service) List(ctx context.Context) ([]Endpoint, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Endpoints(ctx, tenantID)
}

// Get returns the tenant's endpoint id.
func (s *Service) Get(ctx context.Context, id string) (*Endpoint, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.Endpoint(ctx, tenantID, id)
}

// Update changes the fields of in on endpoint id. Enabling an endpoint clears the reason the
// service disabled it for.
func (s *Service) Update(ctx context.Context, id string, in Input) (*Endpoint, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.store.Endpoint(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if err := s.apply(e, in); err != nil {
		return nil, err
	}
	e.UpdatedAt = s.clock()
	if err := s.store.ReplaceEndpoint(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// Delete deletes endpoint id with its queue and its deliveries.
func (s *Service) Delete(ctx context.Context, id string) error {
	tenantID, err := admin(ctx)
	if err != nil {
		return err
	}
	if _, err := s.store.Endpoint(ctx, tenantID, id); err != nil {
		return err
	}
	return s.store.DeleteEndpoint(ctx, tenantID, id)
}

// Rotate gives endpoint id a new signing secret, returned this once; the previous one keeps
// signing for RotationOverlap, and older ones stop.
func (s *Service) Rotate(ctx context.Context, id string) (*Endpoint, string, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, "", err
	}
	e, err := s.store.Endpoint(ctx, tenantID, id)
	if err != nil {
		return nil, "", err
	}
	now := s.clock()
	secret := NewSecret()
	keep := []Secret{{Value: secret, CreatedAt: now}}
	for _, old := range e.Secrets {
		if old.Expires.IsZero() {
			old.Expires = now.Add(RotationOverlap)
		}
		if now.Before(old.Expires) {
			keep = append(keep, old)
		}
	}
	e.Secrets, e.UpdatedAt = keep, now
	if err := s.store.ReplaceEndpoint(ctx, e); err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// Deliveries returns a page of endpoint id's deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, id, cursor string, limit int) (*Page, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return nil, chat.FieldError("limit", "must be between 1 and %d", MaxPageSize)
	}
	before, beforeID, err := parseCursor(cursor)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.Endpoint(ctx, tenantID, id); err != nil {
		return nil, err
	}
	ds, err := s.store.Deliveries(ctx, tenantID, id, before, beforeID, limit+1)
	if err != nil {
		return nil, err
	}
	p := &Page{Deliveries: ds}
	if len(ds) > limit {
		p.Deliveries = ds[:limit]
		last := ds[limit-1]
		p.Next = formatCursor(last.CreatedAt, last.ID)
	}
	return p, nil
}

// Redeliver queues delivery deliveryID of endpoint id for an attempt now, with a fresh
// schedule of retries. A delivery still pending stays as it is; an endpoint that is disabled
// takes none (Conflict).
func (s *Service) Redeliver(ctx context.Context, id, deliveryID string) (*Delivery, error) {
	tenantID, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.store.Endpoint(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	d, err := s.store.Delivery(ctx, tenantID, deliveryID)
	if err != nil || d.EndpointID != e.ID {
		return nil, chat.Errorf(chat.NotFound, "no such delivery")
	}
	if !e.Enabled {
		return nil, chat.Errorf(chat.Conflict, "the endpoint is disabled; enable it first")
	}
	if d.State == Pending {
		return d, nil
	}
	now := s.clock()
	d.State, d.Tries, d.NextAt, d.Since = Pending, 0, now, now
	if err := s.store.SaveDelivery(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}

// apply validates in and sets it on e.
func (s *Service) apply(e *Endpoint, in Input) error {
	if in.URL != nil {
		if err := s.targets.Check(*in.URL); err != nil {
			return err
		}
		e.URL = *in.URL
	}
	if in.EventsSet {
		types, err := eventTypes(in.Events)
		if err != nil {
			return err
		}
		e.Events = types
	}
	if in.Description != nil {
		d := strings.TrimSpace(*in.Description)
		if !utf8.ValidString(d) || utf8.RuneCountInString(d) > MaxDescription {
			return chat.FieldError("description", "must be valid UTF-8 of at most %d characters", MaxDescription)
		}
		e.Description = d
	}
	if in.Enabled != nil {
		e.Enabled = *in.Enabled
		if e.Enabled {
			e.DisabledReason = ""
		}
	}
	return nil
}

// eventTypes returns the event types of names, sorted and each once.
func eventTypes(names []string) ([]chat.EventType, error) {
	if len(names) == 0 {
		return nil, chat.FieldError("events", "must list at least one event type")
	}
	var out []chat.EventType
	for i, n := range names {
		t := chat.EventType(n)
		if !slices.Contains(EventTypes, t) {
			return nil, chat.FieldError("events["+strconv.Itoa(i)+"]", "%q is not an event type; use conversation.created, conversation.updated, message.created or support.changed", n)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// formatCursor and parseCursor write and read the position after a delivery in a page.
func formatCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMilli(), 10) + "|" + id))
}

func parseCursor(c string) (time.Time, string, error) {
	if c == "" {
		return time.Time{}, "", nil
	}
	bad := chat.FieldError("cursor", "is not a cursor of this list")
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	ms, id, ok := strings.Cut(string(raw), "|")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", bad
	}
	return time.UnixMilli(n).UTC(), id, nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
