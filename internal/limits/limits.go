// Package limits bounds what one caller and one tenant may do (PRODUCT.md "Limits"): each
// caller's request rate, write rate and open event streams, and the request rate and open event
// streams of a whole tenant. The counts live in Redis, so they hold across replicas and on Redis
// Cluster; while Redis cannot be reached, each replica limits on its own, in process. It also
// bounds the event streams one replica serves, which its memory must hold.
package limits

import (
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// Name names a limit: in the RateLimit-Policy and RateLimit response fields, in metrics and
// in logs.
type Name string

// The limits of PRODUCT.md.
const (
	// Requests bounds all API calls of one caller per minute.
	Requests Name = "requests"
	// Writes bounds the writes (start, send, read, patch, presence, settings) of one caller
	// per minute.
	Writes Name = "writes"
	// EventStreams bounds the event streams one caller has open at once.
	EventStreams Name = "event-streams"
	// TenantRequests bounds all API calls of one tenant, all callers together, per second.
	TenantRequests Name = "tenant-requests"
	// TenantEventStreams bounds the event streams of one tenant's customers together, open at
	// once across replicas.
	TenantEventStreams Name = "tenant-event-streams"
	// ReplicaEventStreams bounds the event streams one replica serves at once, whatever their
	// tenant: the replica is full, not the caller over a limit (503, not 429).
	ReplicaEventStreams Name = "replica-event-streams"
)

// Config holds the limits of a tenant's callers; 0 turns a limit off.
type Config struct {
	// RequestsPerMinute bounds all API calls of one caller (CHAT_LIMITS_REQUESTS_PER_MINUTE).
	RequestsPerMinute int
	// WritesPerMinute bounds the writes of one caller (CHAT_LIMITS_WRITES_PER_MINUTE).
	WritesPerMinute int
	// EventStreams bounds the open event streams of one caller (CHAT_LIMITS_EVENT_STREAMS).
	EventStreams int
	// TenantRequestsPerSecond bounds all API calls of a tenant
	// (CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND).
	TenantRequestsPerSecond int
	// TenantEventStreams bounds the open event streams of a tenant's customers together,
	// across replicas (CHAT_LIMITS_TENANT_EVENT_STREAMS).
	TenantEventStreams int
	// ReplicaEventStreams bounds the event streams this replica serves at once
	// (CHAT_MAX_EVENT_STREAMS); a tenant file cannot change it.
	ReplicaEventStreams int
}

// With returns c with a tenant file's overrides: a field the file sets wins, one it leaves out
// (nil) keeps c's.
func (c Config) With(o tenant.Limits) Config {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.RequestsPerMinute, o.RequestsPerMinute)
	set(&c.WritesPerMinute, o.WritesPerMinute)
	set(&c.EventStreams, o.EventStreams)
	set(&c.TenantRequestsPerSecond, o.TenantRequestsPerSecond)
	set(&c.TenantEventStreams, o.TenantEventStreams)
	return c
}

// Policy returns the limit named n as c sets it; its Quota is 0 when the limit is off.
func (c Config) Policy(n Name) Policy {
	switch n {
	case Requests:
		return Policy{Name: n, Quota: c.RequestsPerMinute, Window: time.Minute}
	case Writes:
		return Policy{Name: n, Quota: c.WritesPerMinute, Window: time.Minute}
	case EventStreams:
		return Policy{Name: n, Quota: c.EventStreams}
	case TenantRequests:
		return Policy{Name: n, Quota: c.TenantRequestsPerSecond, Window: time.Second}
	case TenantEventStreams:
		return Policy{Name: n, Quota: c.TenantEventStreams}
	case ReplicaEventStreams:
		return Policy{Name: n, Quota: c.ReplicaEventStreams}
	}
	return Policy{Name: n}
}

// Policy is one limit: Quota requests per Window, or, for a concurrency limit such as
// EventStreams or TenantEventStreams, Quota at once (Window 0).
type Policy struct {
	Name   Name
	Quota  int
	Window time.Duration
}

// Off reports whether the limit is turned off.
func (p Policy) Off() bool { return p.Quota <= 0 }

// Decision is the answer of a limit check.
type Decision struct {
	// Allowed reports whether the request may go on.
	Allowed bool
	// Policy is the limit that refused the request; when allowed, the caller's request rate
	// (Off when that limit is off).
	Policy Policy
	// Remaining is how many more requests (or streams) the policy allows right now.
	Remaining int
	// Reset is how long until the policy's quota is whole again (allowed), or until it allows
	// one more request (refused). It is 0 for a concurrency limit, which frees a slot when a
	// stream closes rather than after a time.
	Reset time.Duration
	// RetryAfter is how long a refused caller should wait before trying again.
	RetryAfter time.Duration
}
