package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/webhook"
)

// Webhooks is the management of a tenant's webhook endpoints (*webhook.Service). Every method
// acts for the tenant and caller of its context and checks that the caller is an admin
// (Forbidden otherwise); an id of another tenant's endpoint or delivery is NotFound, a field
// that fails validation Invalid naming it, and a tenant at its cap of endpoints, or a
// redelivery to a disabled endpoint, Conflict.
type Webhooks interface {
	// Create returns the new endpoint and its signing secret, which nothing shows again.
	Create(ctx context.Context, in webhook.Input) (*webhook.Endpoint, string, error)
	List(ctx context.Context) ([]webhook.Endpoint, error)
	Get(ctx context.Context, id string) (*webhook.Endpoint, error)
	Update(ctx context.Context, id string, in webhook.Input) (*webhook.Endpoint, error)
	Delete(ctx context.Context, id string) error
	// Rotate returns the endpoint and its new signing secret; the previous one keeps signing
	// for webhook.RotationOverlap.
	Rotate(ctx context.Context, id string) (*webhook.Endpoint, string, error)
	// Deliveries returns a page of an endpoint's deliveries, newest first; limit 0 is the
	// default page size, and a cursor not of this list is Invalid naming "cursor".
	Deliveries(ctx context.Context, id, cursor string, limit int) (*webhook.Page, error)
	// Redeliver queues a delivery for an attempt now, with a fresh schedule of retries.
	Redeliver(ctx context.Context, id, deliveryID string) (*webhook.Delivery, error)
}

var _ Webhooks = (*webhook.Service)(nil)

// webhookHandlers are the thin handlers of /admin/webhooks: bind, call the service, encode.
// The service checks the caller's role and tenant.
type webhookHandlers struct {
	svc Webhooks
	*handlers
}

// The JSON shapes of webhooks (api/openapi.yaml describes the same). No shape carries a
// signing secret but the answers of create and rotate-secret, nor a delivery's body.
type (
	endpointJSON struct {
		ID             string   `json:"id"`
		URL            string   `json:"url"`
		Events         []string `json:"events"`
		Description    string   `json:"description"`
		Enabled        bool     `json:"enabled"`
		DisabledReason string   `json:"disabled_reason,omitempty"`
		CreatedAt      Time     `json:"created_at"`
		UpdatedAt      Time     `json:"updated_at"`
	}
	// endpointSecretJSON is an endpoint with its new signing secret (create, rotate-secret).
	endpointSecretJSON struct {
		endpointJSON
		Secret string `json:"secret"`
	}
	endpointListJSON struct {
		Webhooks []endpointJSON `json:"webhooks"`
	}
	attemptJSON struct {
		At         Time   `json:"at"`
		Status     *int   `json:"status"`
		DurationMS int64  `json:"duration_ms"`
		Error      string `json:"error,omitempty"`
	}
	deliveryJSON struct {
		ID            string        `json:"id"`
		EventID       string        `json:"event_id"`
		Type          string        `json:"type"`
		State         string        `json:"state"`
		CreatedAt     Time          `json:"created_at"`
		NextAttemptAt *Time         `json:"next_attempt_at"`
		Attempts      []attemptJSON `json:"attempts"`
	}
	deliveryPageJSON struct {
		Deliveries []deliveryJSON `json:"deliveries"`
		NextCursor *string        `json:"next_cursor"`
	}
)

func endpointOf(e *webhook.Endpoint) endpointJSON {
	events := make([]string, len(e.Events))
	for i, t := range e.Events {
		events[i] = string(t)
	}
	return endpointJSON{
		ID: e.ID, URL: e.URL, Events: events, Description: e.Description, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, CreatedAt: Time(e.CreatedAt), UpdatedAt: Time(e.UpdatedAt),
	}
}

func deliveryOf(d *webhook.Delivery) deliveryJSON {
	out := deliveryJSON{
		ID: d.ID, EventID: d.EventID, Type: string(d.Type), State: string(d.State),
		CreatedAt: Time(d.CreatedAt), Attempts: make([]attemptJSON, len(d.Attempts)),
	}
	if d.State == webhook.Pending && !d.NextAt.IsZero() {
		out.NextAttemptAt = timePtr(&d.NextAt)
	}
	for i, a := range d.Attempts {
		aj := attemptJSON{At: Time(a.At), DurationMS: a.Duration.Milliseconds(), Error: a.Error}
		if a.Status != 0 {
			status := a.Status
			aj.Status = &status
		}
		out.Attempts[i] = aj
	}
	return out
}

// webhookRequest is the body of POST and PATCH /admin/webhooks: a field left out is required
// (url, events) or defaulted (description "", enabled true) on creation, and left as it is by
// PATCH.
type webhookRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
}

func (r webhookRequest) input() webhook.Input {
	in := webhook.Input{URL: r.URL, Description: r.Description, Enabled: r.Enabled}
	if r.Events != nil {
		in.Events, in.EventsSet = *r.Events, true
	}
	return in
}

// list answers GET /admin/webhooks.
func (w *webhookHandlers) list(c *gin.Context) {
	es, err := w.svc.List(c.Request.Context())
	if err != nil {
		abortWithError(c, err)
		return
	}
	out := endpointListJSON{Webhooks: make([]endpointJSON, len(es))}
	for i := range es {
		out.Webhooks[i] = endpointOf(&es[i])
	}
	c.JSON(http.StatusOK, out)
}

// create answers POST /admin/webhooks: 201 with the endpoint, its secret and its Location.
func (w *webhookHandlers) create(c *gin.Context) {
	var req webhookRequest
	if _, ok := w.bind(c, &req); !ok {
		return
	}
	e, secret, err := w.svc.Create(c.Request.Context(), req.input())
	if err != nil {
		abortWithError(c, err)
		return
	}
	created(c, endpointSecretJSON{endpointJSON: endpointOf(e), Secret: secret}, "/api/v1/admin/webhooks/"+e.ID)
}

// get answers GET /admin/webhooks/{id}.
func (w *webhookHandlers) get(c *gin.Context) {
	e, err := w.svc.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, endpointOf(e))
}

// update answers PATCH /admin/webhooks/{id}: the fields given change, at least one.
func (w *webhookHandlers) update(c *gin.Context) {
	var req webhookRequest
	if _, ok := w.bind(c, &req); !ok {
		return
	}
	if req == (webhookRequest{}) {
		abortWithError(c, chat.FieldError("body", "must set at least one of url, events, description and enabled"))
		return
	}
	e, err := w.svc.Update(c.Request.Context(), c.Param("id"), req.input())
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, endpointOf(e))
}

// remove answers DELETE /admin/webhooks/{id}: 204.
func (w *webhookHandlers) remove(c *gin.Context) {
	if err := w.svc.Delete(c.Request.Context(), c.Param("id")); err != nil {
		abortWithError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// rotate answers POST /admin/webhooks/{id}/rotate-secret: the endpoint and its new secret.
func (w *webhookHandlers) rotate(c *gin.Context) {
	e, secret, err := w.svc.Rotate(c.Request.Context(), c.Param("id"))
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, endpointSecretJSON{endpointJSON: endpointOf(e), Secret: secret})
}

// deliveries answers GET /admin/webhooks/{id}/deliveries: a page, newest first.
func (w *webhookHandlers) deliveries(c *gin.Context) {
	q, err := query(c, "limit", "cursor")
	if err != nil {
		abortWithError(c, err)
		return
	}
	limit, err := intParam(q, "limit")
	if err != nil {
		abortWithError(c, err)
		return
	}
	page, err := w.svc.Deliveries(c.Request.Context(), c.Param("id"), q.Get("cursor"), limit)
	if err != nil {
		abortWithError(c, err)
		return
	}
	out := deliveryPageJSON{Deliveries: make([]deliveryJSON, len(page.Deliveries)), NextCursor: nullable(page.Next)}
	for i := range page.Deliveries {
		out.Deliveries[i] = deliveryOf(&page.Deliveries[i])
	}
	c.JSON(http.StatusOK, out)
}

// redeliver answers POST /admin/webhooks/{id}/deliveries/{delivery_id}/redeliver: 202 with the
// delivery, queued for an attempt now.
func (w *webhookHandlers) redeliver(c *gin.Context) {
	d, err := w.svc.Redeliver(c.Request.Context(), c.Param("id"), c.Param("delivery_id"))
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusAccepted, deliveryOf(d))
}
