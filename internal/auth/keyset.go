package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// keySetErrorKey is the context key of the *keySetError that receives VerifySignature's error.
type keySetErrorKey struct{}

// keySetError carries the key set's error past go-oidc, which keeps only its text.
type keySetError struct {
	err error
}

// keySet is one tenant's JWKS. Unlike oidc.RemoteKeySet it refetches for an unknown key id at
// most once per RefetchInterval, and remembers a failed first fetch for FailureBackoff.
type keySet struct {
	v        *Verifier
	tenantID string
	url      string

	flights singleflight.Group

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	fetched     bool      // a fetch has succeeded
	lastAttempt time.Time // of the last fetch, successful or not
	lastErr     error     // of the last fetch, nil if it succeeded
	lastRefresh time.Time // of the last refetch for an unknown key id
}

var _ oidc.KeySet = (*keySet)(nil)

// VerifySignature verifies the signature of jwt with a key of the set and returns its payload.
// Returns errors wrapping ErrInvalidToken, or ErrIssuerUnavailable when no keys were ever
// fetched. The error is also stored in the *keySetError of ctx, if any.
func (ks *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := ks.verify(ctx, jwt)
	if err != nil {
		if holder, ok := ctx.Value(keySetErrorKey{}).(*keySetError); ok {
			holder.err = err
		}
		return nil, err
	}
	return payload, nil
}

// verify picks the keys matching the token's kid and alg, refetching the set once (rate
// limited) when there are none, and returns the payload of the first key that verifies.
func (ks *keySet) verify(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed token or disallowed algorithm: %w", ErrInvalidToken)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("not exactly one signature: %w", ErrInvalidToken)
	}
	header := jws.Signatures[0].Header
	keys, err := ks.load(ctx, false)
	if err != nil {
		return nil, err
	}
	candidates := matchingKeys(keys, header.KeyID, header.Algorithm)
	if len(candidates) == 0 {
		// The issuer may have rotated its keys since the last fetch.
		if keys, err = ks.load(ctx, true); err != nil {
			return nil, err
		}
		candidates = matchingKeys(keys, header.KeyID, header.Algorithm)
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("unknown signing key: %w", ErrInvalidToken)
	}
	for _, k := range candidates {
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("bad signature: %w", ErrInvalidToken)
}

// load returns the keys, fetching them if none were ever fetched or, when refresh is set, if
// the last refresh is at least RefetchInterval old. Concurrent callers share one fetch.
func (ks *keySet) load(ctx context.Context, refresh bool) ([]jose.JSONWebKey, error) {
	if keys, ok, err := ks.cached(refresh); ok {
		return keys, err
	}
	ch := ks.flights.DoChan("jwks", func() (any, error) {
		if keys, ok, err := ks.cached(refresh); ok {
			return keys, err
		}
		return ks.fetch(context.WithoutCancel(ctx), refresh)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]jose.JSONWebKey), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("jwks: %w: %w", ctx.Err(), ErrIssuerUnavailable)
	}
}

// cached returns the keys (or the remembered error) with ok set when no fetch is due.
func (ks *keySet) cached(refresh bool) (keys []jose.JSONWebKey, ok bool, err error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.v.now()
	switch {
	case !ks.fetched && ks.lastErr != nil && now.Sub(ks.lastAttempt) < ks.v.failureBackoff:
		return nil, true, ks.lastErr
	case !ks.fetched:
		return nil, false, nil
	case !refresh || now.Sub(ks.lastRefresh) < ks.v.refetchInterval:
		return ks.keys, true, nil
	}
	return nil, false, nil
}

// fetch fetches the set; refresh marks a refetch for an unknown key id. On failure it keeps
// the keys fetched before, if any, and returns them without error.
func (ks *keySet) fetch(ctx context.Context, refresh bool) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	fetchErr := ks.v.fetchJSON(ctx, ks.url, &set)
	var keys []jose.JSONWebKey
	if fetchErr == nil {
		if keys = publicKeys(set.Keys); len(keys) == 0 {
			fetchErr = errors.New("jwks has no usable signing keys")
		}
	}
	ks.v.observeFetch(ks.tenantID, fetchErr)

	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.lastAttempt = ks.v.now()
	if refresh {
		ks.lastRefresh = ks.lastAttempt
	}
	if fetchErr != nil {
		ks.v.log.WarnContext(ctx, "jwks fetch failed", "tenant", ks.tenantID, "url", ks.url, "err", fetchErr)
		ks.lastErr = fmt.Errorf("jwks: %w: %w", fetchErr, ErrIssuerUnavailable)
		if ks.fetched {
			return ks.keys, nil
		}
		return nil, ks.lastErr
	}
	ks.v.log.DebugContext(ctx, "jwks fetched", "tenant", ks.tenantID, "keys", len(keys))
	ks.keys, ks.fetched, ks.lastErr = keys, true, nil
	return keys, nil
}

// publicKeys parses the keys of a JWKS, keeping public signing keys of supported types and
// skipping the rest (other key types, encryption keys, anything private or symmetric).
func publicKeys(raw []json.RawMessage) []jose.JSONWebKey {
	var keys []jose.JSONWebKey
	for _, r := range raw {
		var k jose.JSONWebKey
		if err := json.Unmarshal(r, &k); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" || !k.IsPublic() {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, k)
		}
	}
	return keys
}

// matchingKeys returns the keys that may have signed a token with kid and alg: those with that
// kid (any key when kid is empty), of alg's key type, and not bound to another algorithm.
func matchingKeys(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid || k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		var fits bool
		switch k.Key.(type) {
		case *rsa.PublicKey:
			fits = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
		case *ecdsa.PublicKey:
			fits = strings.HasPrefix(alg, "ES")
		case ed25519.PublicKey:
			fits = alg == string(jose.EdDSA)
		}
		if fits {
			out = append(out, k)
		}
	}
	return out
}
