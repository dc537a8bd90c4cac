package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/limits"
	"github.com/supportchat/supportchat/internal/tenant"
)

// Limiter checks requests and event streams against the limits of the caller and its tenant
// (*limits.Limiter). It never fails: while its store is down it decides on its own.
type Limiter interface {
	// Request counts one API request of caller subject of tenant t, a write when write is set,
	// and says whether it may go on.
	Request(ctx context.Context, t *tenant.Tenant, subject string, write bool) limits.Decision
	// OpenStream takes an event stream slot of the replica, the caller and its tenant. When
	// allowed, release gives them back and must be called once when the stream ends.
	OpenStream(ctx context.Context, t *tenant.Tenant, subject string, admin bool) (d limits.Decision, release func())
}

var _ Limiter = (*limits.Limiter)(nil)

// limit refuses a request over the caller's request or write rate, or over its tenant's
// request rate, with 429 rate-limited. It runs after authenticate: limits are keyed on the
// verified tenant and token subject, never on anything a client may vary such as its address.
// Allowed requests carry the caller's request rate in RateLimit-Policy and RateLimit. A nil l
// limits nothing.
func limit(l Limiter) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		t, caller, ok := requestScope(c)
		if !ok {
			return
		}
		d := l.Request(c.Request.Context(), t, caller.ID, isWrite(c.Request.Method))
		if !d.Allowed {
			abortRateLimited(c, d)
			return
		}
		setRateLimitFields(c.Writer.Header(), d)
		c.Next()
	}
}

// isWrite reports whether a request of method is a write: every API route that is not a GET
// changes something (start, send, read, patch, presence, settings, webhooks and their
// secrets and redeliveries).
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

// openStream takes an event stream slot from l (nil: no limit). It answers 429 and reports
// false when the caller or its tenant has all its streams open, and 503 (with Retry-After)
// when this replica serves all the streams it may: another replica may take the stream.
func openStream(c *gin.Context, l Limiter, t *tenant.Tenant, caller chat.Caller) (release func(), ok bool) {
	if l == nil {
		return func() {}, true
	}
	d, release := l.OpenStream(c.Request.Context(), t, caller.ID, caller.IsAdmin())
	if !d.Allowed && d.Policy.Name == limits.ReplicaEventStreams {
		abortWith(c, kindServiceUnavailable, fmt.Sprintf("This server has %d event streams open, the most it serves; retry shortly.", d.Policy.Quota))
		return nil, false
	}
	if !d.Allowed {
		abortRateLimited(c, d)
		return nil, false
	}
	return release, true
}

// abortRateLimited answers 429 rate-limited for the limit that refused d, with Retry-After and
// the RateLimit-Policy and RateLimit fields of that limit.
func abortRateLimited(c *gin.Context, d limits.Decision) {
	retry := ceilSeconds(d.RetryAfter)
	setRateLimitFields(c.Writer.Header(), d)
	c.Header("Retry-After", strconv.Itoa(retry))
	abortWith(c, kindRateLimited, rateLimitDetail(d.Policy, retry))
}

// rateLimitDetail says which limit a caller is over and when to retry.
func rateLimitDetail(p limits.Policy, retry int) string {
	switch p.Name {
	case limits.Requests:
		return fmt.Sprintf("You made more than %d requests in a minute; retry in %d s.", p.Quota, retry)
	case limits.Writes:
		return fmt.Sprintf("You made more than %d changes in a minute; retry in %d s.", p.Quota, retry)
	case limits.TenantRequests:
		return fmt.Sprintf("This storefront received more than %d requests in a second; retry in %d s.", p.Quota, retry)
	case limits.EventStreams:
		return fmt.Sprintf("You have %d event streams open, the most allowed; close one first.", p.Quota)
	case limits.TenantEventStreams:
		return fmt.Sprintf("This storefront has %d event streams open, the most allowed; retry in %d s.", p.Quota, retry)
	}
	return fmt.Sprintf("Too many requests; retry in %d s.", retry)
}

// setRateLimitFields sets the RateLimit-Policy and RateLimit fields of d's policy, in the
// Structured Field syntax of draft-ietf-httpapi-ratelimit-headers-10 ("RateLimit header
// fields for HTTP", https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/):
//
//	RateLimit-Policy: "requests";q=600;w=60
//	RateLimit: "requests";r=599;t=1
//
// q is the quota, w its window in seconds, r what remains and t the seconds until the quota is
// whole again (on a 429, until the next request is allowed). A concurrency limit has no window
// or reset: its policy has the draft's quota unit qu="concurrent-requests", and a slot frees
// when a stream closes.
func setRateLimitFields(h http.Header, d limits.Decision) {
	p := d.Policy
	if p.Off() {
		return
	}
	// Built with appends, not fmt: every allowed request sets both fields.
	policy := strconv.AppendQuote(make([]byte, 0, 48), string(p.Name))
	policy = append(policy, ";q="...)
	policy = strconv.AppendInt(policy, int64(p.Quota), 10)
	state := strconv.AppendQuote(make([]byte, 0, 48), string(p.Name))
	state = append(state, ";r="...)
	state = strconv.AppendInt(state, int64(d.Remaining), 10)
	if p.Window == 0 {
		policy = append(policy, `;qu="concurrent-requests"`...)
	} else {
		policy = append(policy, ";w="...)
		policy = strconv.AppendInt(policy, int64(ceilSeconds(p.Window)), 10)
		state = append(state, ";t="...)
		state = strconv.AppendInt(state, int64(ceilSeconds(d.Reset)), 10)
	}
	h["Ratelimit-Policy"] = []string{string(policy)}
	h["Ratelimit"] = []string{string(state)}
}

// ceilSeconds returns d in whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 1)
}
