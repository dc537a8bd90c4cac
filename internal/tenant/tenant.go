// Package tenant defines storefront tenants: their files under tenants/, validation, the live
// Registry with hot reload, and the request context that carries the tenant.
package tenant

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ErrNotFound is returned when no tenant matches an id or host (HTTP 404 tenant-not-found).
var ErrNotFound = errors.New("tenant not found")

// Tenant is one storefront, as defined by its file tenants/<id>.yaml.
type Tenant struct {
	ID    string
	Name  string
	Hosts []string
	OIDC  OIDC
	Chat  Chat
	Web   Web
	// Limits overrides the configured default limits for this tenant's callers.
	Limits Limits

	// Source is the file the tenant was loaded from, for logs and errors.
	Source string
}

// OIDC holds how a tenant's bearer tokens are verified and how roles are read from them.
type OIDC struct {
	// Issuer is the exact 'iss' value; discovery is at Issuer + "/.well-known/openid-configuration".
	Issuer string
	// Audience must be one of the token's 'aud' values.
	Audience string
	// AdminClaim is a claim name or dotted path (realm_access.roles) holding role names.
	AdminClaim string
	// AdminValues are the role names that make a caller an admin.
	AdminValues []string
	// NameClaim is the optional claim holding the caller's display name.
	NameClaim string
	// RequiredClaims must all hold for a token to be accepted, in file order. They bind a token
	// to this tenant when another tenant trusts the same issuer.
	RequiredClaims []RequiredClaim
}

// RequiredClaim is a claim a tenant's tokens must carry: the claim at Path (a name or dotted
// path) is a string equal to Value, or an array containing Value.
type RequiredClaim struct {
	Path  string
	Value string
}

// Web holds what browsers may do with the tenant's API.
type Web struct {
	// AllowedOrigins are the browser origins (scheme://host[:port], lowercase) that CORS lets
	// call the API for this tenant.
	AllowedOrigins []string
}

// AllowsOrigin reports whether origin is one of the tenant's allowed browser origins.
func (w Web) AllowsOrigin(origin string) bool {
	for _, o := range w.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// Limits are a tenant file's overrides of the configured default limits. A nil field keeps
// the default; 0 turns the limit off.
type Limits struct {
	// RequestsPerMinute bounds all API calls of one caller.
	RequestsPerMinute *int
	// WritesPerMinute bounds the writes (start, send, read, patch, presence, settings) of one
	// caller.
	WritesPerMinute *int
	// EventStreams bounds the open event streams of one caller.
	EventStreams *int
	// TenantRequestsPerSecond bounds all API calls of the tenant, all callers together.
	TenantRequestsPerSecond *int
	// TenantEventStreams bounds the open event streams of the tenant, all callers together.
	TenantEventStreams *int
}

// Chat holds a tenant's chat settings as the file defines them. Admins may override them
// through the API; see chat.Settings.
type Chat struct {
	AwayPrompt string
	// BusinessHours is nil when the team has no set hours (always inside hours).
	BusinessHours *BusinessHours
	// UnassignOnAway unassigns an admin's open conversations when they go away or offline.
	UnassignOnAway bool
	// Retention is how long resolved conversations are kept; the zero Retention keeps them
	// forever.
	Retention Retention
}

// MaxRetentionDays bounds Retention.ResolvedAfterDays: ten years.
const MaxRetentionDays = 3650

// Retention is how long a tenant keeps its resolved conversations.
type Retention struct {
	// ResolvedAfterDays is the number of days (1..MaxRetentionDays) after its resolution that a
	// resolved conversation is erased; 0 keeps resolved conversations forever.
	ResolvedAfterDays int
}

// DefaultAwayPrompt is the away prompt of a tenant whose file sets none.
const DefaultAwayPrompt = "Our team is away right now. We will reply as soon as we can."

// BusinessHours is a weekly schedule in one time zone.
type BusinessHours struct {
	Location *time.Location
	// Weekly holds the opening ranges per weekday (index time.Sunday..time.Saturday).
	Weekly [7][]Range
}

// Range is an opening range of one day in minutes after local midnight. End may be smaller than
// Start for a range that runs past midnight into the next day (22:00-02:00); End is 1440 for "24:00".
type Range struct {
	Start, End int
}

type ctxKey struct{}

// NewContext returns a context carrying t.
func NewContext(ctx context.Context, t *Tenant) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the tenant of the request. Returns ErrNotFound when ctx carries none.
func FromContext(ctx context.Context) (*Tenant, error) {
	t, ok := ctx.Value(ctxKey{}).(*Tenant)
	if !ok || t == nil {
		return nil, ErrNotFound
	}
	return t, nil
}
