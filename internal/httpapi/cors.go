package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/tenant"
)

// CORS lets a storefront's pages on its own domain call the API from the browser (PRODUCT.md
// "Support screen"). Only the origins a tenant lists under web.allowed_origins are allowed,
// with the Authorization header and never with credentials (cookies): the API authenticates
// bearer tokens only, so a page can never borrow a shopper's ambient session.
const (
	corsAllowMethods = "GET, POST, PUT, PATCH"
	corsAllowHeaders = "Authorization, Content-Type, X-Tenant-ID, Idempotency-Key, Last-Event-ID, X-Request-ID"
	// corsExposeHeaders are the response headers a page's script may read.
	corsExposeHeaders = "Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID, Idempotent-Replayed, WWW-Authenticate"
	// corsMaxAge is how long (seconds) a browser may reuse a preflight answer. It is short so a
	// removed origin stops working soon.
	corsMaxAge = 600
)

// OriginTenants finds the tenants that allow a browser origin (*tenant.Registry).
type OriginTenants interface {
	Tenants
	// All returns every tenant.
	All() []*tenant.Tenant
}

// preflight answers a CORS preflight (OPTIONS) under /api/v1. A preflight carries neither the
// tenant header nor a token, so it is allowed for an origin that the tenant of the Host allows
// or, when the Host names no tenant, that some tenant allows; the real request is then
// checked against its own tenant by cors. Other origins get no CORS headers, and nothing here
// ever allows credentials.
func preflight(tenants OriginTenants) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		origin := c.GetHeader("Origin")
		if origin != "" && c.GetHeader("Access-Control-Request-Method") != "" && originAllowed(tenants, c.Request.Host, origin) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
		}
		h.Set("Allow", "OPTIONS, "+corsAllowMethods)
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// originAllowed reports whether a preflight from origin to host may proceed.
func originAllowed(tenants OriginTenants, host, origin string) bool {
	if t, err := tenants.ByHost(hostOnly(host)); err == nil {
		return t.Web.AllowsOrigin(origin)
	}
	for _, t := range tenants.All() {
		if t.Web.AllowsOrigin(origin) {
			return true
		}
	}
	return false
}

// cors adds the CORS headers to a real request whose Origin the request's tenant allows. It
// runs after the tenant is resolved and before authentication, so a page can read a 401 (and
// refresh its token) or a 429 (and its Retry-After).
func cors(c *gin.Context) {
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	origin := c.GetHeader("Origin")
	if origin == "" {
		return
	}
	t, err := tenant.FromContext(c.Request.Context())
	if err != nil || !t.Web.AllowsOrigin(origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}
