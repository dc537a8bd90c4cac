package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// ReadyCheck is one dependency /readyz looks at. A failing critical check (MongoDB, tenants)
// makes the pod unready; a failing non-critical one (Redis) only marks it degraded, so a Redis
// outage does not pull every pod out of the Service.
type ReadyCheck struct {
	Name     string
	Critical bool
	// Check returns nil when the dependency is usable. It gets a context with a 1 s deadline.
	// Its error text is shown in the /readyz body: no driver messages.
	Check func(ctx context.Context) error
}

// readyTimeout bounds each readiness check.
const readyTimeout = time.Second

// checkJSON is one check in the /readyz body.
type checkJSON struct {
	Status   string `json:"status"`
	Critical bool   `json:"critical"`
	Error    string `json:"error,omitempty"`
}

// readyJSON is the /readyz body.
type readyJSON struct {
	Status string               `json:"status"`
	Checks map[string]checkJSON `json:"checks"`
}

// healthz answers GET /healthz: the process is alive.
func healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers GET /readyz: 200 "ready", 200 "degraded" when only non-critical checks fail,
// 503 "unavailable" when a critical one fails. The checks run in parallel, each bounded.
func readyz(checks []ReadyCheck) gin.HandlerFunc {
	return func(c *gin.Context) {
		out := readyJSON{Status: "ready", Checks: make(map[string]checkJSON, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, rc := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
				defer cancel()
				res := checkJSON{Status: "ok", Critical: rc.Critical}
				if err := rc.Check(ctx); err != nil {
					res.Status, res.Error = "error", readyError(ctx, err)
				}
				mu.Lock()
				out.Checks[rc.Name] = res
				mu.Unlock()
			})
		}
		wg.Wait()
		status := http.StatusOK
		for _, res := range out.Checks {
			switch {
			case res.Status == "ok":
			case res.Critical:
				out.Status, status = "unavailable", http.StatusServiceUnavailable
			case out.Status == "ready":
				out.Status = "degraded"
			}
		}
		if status != http.StatusOK {
			c.Header("Retry-After", "5")
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(status, out)
	}
}

// readyError describes a failed check. Check errors are shown to callers of /readyz, so checks
// return messages of their own, never a driver's (which may name hosts or credentials).
func readyError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "timed out"
	}
	return err.Error()
}

// problemRender renders a Problem as application/problem+json.
type problemRender struct{ p Problem }

// Render writes the problem.
func (r problemRender) Render(w http.ResponseWriter) error {
	r.WriteContentType(w)
	return json.NewEncoder(w).Encode(r.p)
}

// WriteContentType sets the problem media type.
func (r problemRender) WriteContentType(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
}
