// Package idempotency makes retried writes safe: a request repeated with the same
// Idempotency-Key gets the first answer, byte for byte, and nothing is stored twice.
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
	// CreatedAt is when the key was first used; after ExpiresAt it is forgotten.
	CreatedAt time.Time
	ExpiresAt time.Time
	// Response is the answer of the request, once one attempt succeeded; nil until then.
	Response *Response
}

// Response is the answer every attempt of one request gets once it succeeded.
type Response struct {
	// Fingerprint is the body's of the request that succeeded (after a release, another
	// body than the record's first may have).
	Fingerprint string
	Status      int
	Body        []byte
	Location    string
	// Conversation is the id of the conversation the request wrote to, so that the erasure of
	// the conversation finds the stored answer, which shows it (internal/datarights).
	Conversation string
}

// Store keeps records. Records are single documents, made unique by Key within a tenant, so
// racing requests agree without transactions: the insert that reserves a key is the arbiter,
// and the seed it stores never changes while the record lives. A response is stored by an
// insert too, once per record: of racing attempts that succeed, the first to store its
// response is the one every attempt answers with.
type Store interface {
	// Reserve stores rec unless an unexpired record with the same tenant and Key exists. It
	// returns the record now stored, with its Response when one is stored, and whether it is
	// rec; an expired record (and its response) is replaced.
	Reserve(ctx context.Context, rec Record) (Record, bool, error)
	// SaveResponse stores resp as the response of rec unless one is stored already, and
	// returns the stored one.
	SaveResponse(ctx context.Context, rec Record, resp Response) (Response, error)
	// Release marks the record of tenantID and key Released unless it has a response.
	Release(ctx context.Context, tenantID, key string) error
}
