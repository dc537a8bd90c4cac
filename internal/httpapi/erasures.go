package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/datarights"
)

// Erasures request and report the erasure of customers (*datarights.Eraser).
type Erasures interface {
	// Request asks for the erasure of a customer of the tenant: the customer's pending one,
	// or a new one. Invalid for a malformed id.
	Request(ctx context.Context, tenantID, customerID string, by chat.Caller) (*datarights.Erasure, error)
	// Status returns an erasure of the tenant, or NotFound.
	Status(ctx context.Context, tenantID, id string) (*datarights.Erasure, error)
}

var _ Erasures = (*datarights.Eraser)(nil)

// erasureJSON is an erasure as the API shows it: never the customer's id, which a finished
// erasure no longer holds.
type erasureJSON struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	RequestedAt Time              `json:"requested_at"`
	DoneAt      *Time             `json:"done_at"`
	Counts      datarights.Counts `json:"counts"`
}

func erasureOf(e *datarights.Erasure) erasureJSON {
	j := erasureJSON{ID: e.ID, Status: string(e.State), RequestedAt: Time(e.RequestedAt), Counts: e.Counts}
	if e.State == datarights.Done {
		t := Time(e.DoneAt)
		j.DoneAt = &t
	}
	return j
}

// erasureHandlers are the thin handlers of the erasure endpoints.
type erasureHandlers struct {
	svc Erasures
}

// erase answers DELETE /admin/customers/{customer_id}: 202 with the erasure.
func (h *erasureHandlers) erase(c *gin.Context) {
	t, caller, err := chat.RequireAdmin(c.Request.Context())
	if err != nil {
		abortWithError(c, err)
		return
	}
	e, err := h.svc.Request(c.Request.Context(), t.ID, c.Param("customer_id"), caller)
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.Header("Location", "/api/v1/admin/erasures/"+e.ID)
	c.JSON(http.StatusAccepted, erasureOf(e))
}

// erasure answers GET /admin/erasures/{id}.
func (h *erasureHandlers) erasure(c *gin.Context) {
	t, _, err := chat.RequireAdmin(c.Request.Context())
	if err != nil {
		abortWithError(c, err)
		return
	}
	e, err := h.svc.Status(c.Request.Context(), t.ID, c.Param("id"))
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, erasureOf(e))
}
