// Package idempotency makes retried writes safe: a request repeated with the same
// Idempotency-Key gets the first answer, and nothing is stored twice.
package idempotency

import (
	"context"
	"time"
)

// Record is what is kept of one idempotent request.
type Record struct {
	// Key identifies the request: a hash of the tenant, the caller, the route and the client's key.
	Key      string
	TenantID string
	// Fingerprint is a hash of the request body; the same key with another body is refused.
	Fingerprint string
	// Seed makes the ids the request creates a function of the record, so a retry or a racing twin
	// of the request finds what the first attempt stored (see chat.StartInput.Seed).
	Seed string
	// Released is set when the attempt that reserved the key failed: the key may then be used
	// with another body. The seed stays, so whatever a racing twin of the failed attempt
	// committed is still found.
	Released bool
	// Done is set once the response is stored.
	Done     bool
	Status   int
	Body     []byte
	Location string
	// CreatedAt is when the key was first used; after ExpiresAt it is forgotten.
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Store keeps records. Records are single documents, made unique by Key within a tenant, so
// racing requests agree without transactions: the insert that reserves a key is the arbiter,
// and the seed it stores never changes while the record lives. Everything else in a record
// only saves work: a lost response makes a retry run again with the seed, which finds what
// the first attempt stored.
type Store interface {
	// Reserve stores rec unless an unexpired record with the same tenant and Key exists. It
	// returns the record now stored and whether it is rec; an expired record is replaced.
	Reserve(ctx context.Context, rec Record) (Record, bool, error)
	// Complete stores the response of a record (Done, Status, Body, Location) and the
	// Fingerprint of the request that produced it.
	Complete(ctx context.Context, rec Record) error
	// Release marks the record of tenantID and key Released unless it is Done.
	Release(ctx context.Context, tenantID, key string) error
}
