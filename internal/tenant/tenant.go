// Package tenant defines storefront tenants: their files under tenants/, validation, the live
// Registry with hot reload, and the request context that carries the tenant.
package tenant

import (
	"context"
	"errors"
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
}

// Chat holds a tenant's chat settings as the file defines them. Admins may override them
// through the API; see chat.Settings.
type Chat struct {
	AwayPrompt string
	// BusinessHours is nil when the team has no set hours (always inside hours).
	BusinessHours *BusinessHours
	// UnassignOnAway unassigns an admin's open conversations when they go away or offline.
	UnassignOnAway bool
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
