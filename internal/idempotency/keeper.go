package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxKeyLength is the longest Idempotency-Key accepted.
const MaxKeyLength = 255

// ErrKeyReused is returned when a key comes back with a different request body (HTTP 422).
var ErrKeyReused = errors.New("idempotency key reused with a different request")

// ErrBadKey is returned for a key that is empty, too long or not printable ASCII (HTTP 400).
var ErrBadKey = fmt.Errorf("idempotency key must be 1 to %d printable ASCII characters", MaxKeyLength)

// Request is one idempotent request as the keeper sees it.
type Request struct {
	TenantID string
	CallerID string
	// Route names the operation, e.g. "POST /api/v1/chat/start"; a key is scoped to it.
	Route string
	Key   string
	Body  []byte
}

// Attempt is the go-ahead to run a request. Replay is set when the request already has its
// response; otherwise run it with Seed and report the outcome with Finish.
type Attempt struct {
	Seed   string
	Replay *Response
	rec    Record
	// reserved is true for the attempt that stored the record; only it may release the key.
	reserved bool
	// fingerprint is this attempt's request body's.
	fingerprint string
}

// Keeper runs the idempotency protocol over a Store.
type Keeper struct {
	store   Store
	ttl     time.Duration
	now     func() time.Time
	newSeed func() string
}

// NewKeeper returns a Keeper remembering keys for ttl. newSeed returns a fresh random string.
func NewKeeper(store Store, ttl time.Duration, now func() time.Time, newSeed func() string) *Keeper {
	return &Keeper{store: store, ttl: ttl, now: now, newSeed: newSeed}
}

// Begin looks the request's key up, reserving it when it is new. A request whose key is
// reserved but not finished (a racing twin, or an attempt that died) runs again with the same
// Seed: the operations it guards create nothing twice for one seed. After a failed attempt the
// key may come back with another body (a corrected request); it runs with the same seed too,
// so it is refused further down if a twin of the failed attempt stored something. Returns
// ErrBadKey and ErrKeyReused, or the store's error.
func (k *Keeper) Begin(ctx context.Context, r Request) (*Attempt, error) {
	if !validKey(r.Key) {
		return nil, ErrBadKey
	}
	now := k.now().UTC()
	rec := Record{
		Key:         scopeHash(r),
		TenantID:    r.TenantID,
		Fingerprint: fingerprint(r.Body),
		Seed:        k.newSeed(),
		CreatedAt:   now,
		ExpiresAt:   now.Add(k.ttl),
	}
	stored, reserved, err := k.store.Reserve(ctx, rec)
	if err != nil {
		return nil, err
	}
	if r := stored.Response; r != nil {
		if r.Fingerprint != rec.Fingerprint {
			return nil, ErrKeyReused
		}
		return &Attempt{Seed: stored.Seed, Replay: r, rec: stored}, nil
	}
	if stored.Fingerprint != rec.Fingerprint && !stored.Released {
		return nil, ErrKeyReused
	}
	return &Attempt{Seed: stored.Seed, rec: stored, reserved: reserved, fingerprint: rec.Fingerprint}, nil
}

// Finish reports the outcome of an attempt. A successful (2xx) one stores its response and
// returns the response to answer with: its own, or the one a racing twin stored first, so
// every answer for the key is the same. A failed one releases the key so the client can
// retry it, with another body if it likes, and returns nil; only the attempt that reserved
// the key releases it: a racing twin that fails must not open the key to another body while
// its sibling may still succeed.
func (k *Keeper) Finish(ctx context.Context, a *Attempt, resp Response) (*Response, error) {
	if resp.Status < 200 || resp.Status > 299 {
		if !a.reserved {
			return nil, nil
		}
		return nil, k.store.Release(ctx, a.rec.TenantID, a.rec.Key)
	}
	resp.Fingerprint = a.fingerprint
	stored, err := k.store.SaveResponse(ctx, a.rec, resp)
	if err != nil {
		return nil, err
	}
	return &stored, nil
}

// validKey reports whether key is 1..MaxKeyLength printable ASCII characters.
func validKey(key string) bool {
	if key == "" || len(key) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// scopeHash scopes a key to its caller and operation (the store adds the tenant).
func scopeHash(r Request) string {
	h := sha256.New()
	for _, part := range []string{r.CallerID, r.Route, r.Key} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprint hashes a request body; JSON bodies are compacted first, so the same request sent
// with other white space is still the same request.
func fingerprint(body []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, body) == nil {
		body = buf.Bytes()
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
