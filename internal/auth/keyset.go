package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

const (
	// minKeysMaxAge is the shortest max age a JWKS response's Cache-Control can ask for (no-cache
	// and max-age=0 included), unless KeysMaxAge is shorter.
	minKeysMaxAge = time.Minute
	// unknownKeyTTL is how long a key id that a fetch did not find is remembered, so that tokens
	// naming it cause no further refetch. A fetch made for any other reason still brings the key
	// in if the issuer publishes it.
	unknownKeyTTL = time.Minute
	// maxUnknownKeys bounds the key ids remembered as unknown per tenant; when full, the expired
	// ones are dropped, and if none are, all of them.
	maxUnknownKeys = 1000
)

// keySetErrorKey is the context key of the *keySetError that receives VerifySignature's error.
type keySetErrorKey struct{}

// keySetError carries the key set's error past go-oidc, which keeps only its text.
type keySetError struct {
	err error
}

// errUnknownKey is returned for a token whose key id and algorithm match no key of the set.
var errUnknownKey = fmt.Errorf("unknown signing key: %w", ErrInvalidToken)

// keySet is one tenant's JWKS, fetched on first use. Unlike oidc.RemoteKeySet its keys expire:
//
//   - The keys are fresh for their max age: the JWKS response's Cache-Control max-age (less its
//     Age), at least minKeysMaxAge and at most KeysMaxAge; KeysMaxAge without one. The first
//     request after that waits for a refetch, so a key the issuer drops stops verifying within
//     the max age plus one fetch.
//   - If that refetch fails, the previous keys stay in use (stale-if-error) until KeysMaxAge past
//     their max age, refetched in the background at most once per FailureBackoff; after that,
//     tokens are refused with ErrIssuerUnavailable. A failed first fetch is remembered for
//     FailureBackoff.
//   - A fetch made RediscoverInterval or more after the last discovery first fetches the
//     discovery document again and follows the jwks_uri it names. A failed rediscovery keeps
//     the URL and is tried again by the first fetch after FailureBackoff.
//   - A token whose key id matches no key refetches the set, at most once per RefetchInterval
//     per tenant. A key id still missing from a fetch that started after its token arrived is
//     remembered for unknownKeyTTL (at most maxUnknownKeys of them) and refetches no more;
//     any other fetch still brings its key in.
type keySet struct {
	v        *Verifier
	tenantID string
	issuer   string

	flights singleflight.Group

	mu            sync.Mutex
	url           string
	nextDiscovery time.Time // when a fetch is to discover the issuer again first
	keys          []jose.JSONWebKey
	fetched       bool                 // keys hold the result of a successful fetch
	expires       time.Time            // when the keys' max age ends
	lastAttempt   time.Time            // when the last fetch ended or a background one started
	lastErr       error                // of the last fetch, nil if it succeeded
	lastRefetch   time.Time            // of the last refetch for an unknown key id
	unknown       map[string]time.Time // key id and algorithm → until when it is known to be missing
}

var _ oidc.KeySet = (*keySet)(nil)

// newKeySet returns the empty key set of key's tenant, to be fetched from url, which a
// discovery of key's issuer has just named.
func newKeySet(v *Verifier, key issuerKey, url string) *keySet {
	return &keySet{
		v:             v,
		tenantID:      key.tenantID,
		issuer:        key.issuer,
		url:           url,
		nextDiscovery: v.now().Add(v.rediscoverInterval),
		unknown:       make(map[string]time.Time),
	}
}

// VerifySignature verifies the signature of jwt with a key of the set and returns its payload.
// Returns errors wrapping ErrInvalidToken, or ErrIssuerUnavailable when the set has no usable
// keys and cannot be fetched. The error is also stored in the *keySetError of ctx, if any.
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

// verify picks the keys matching the token's kid and alg, refetching the set (rate limited)
// when there are none, and returns the payload of the first key that verifies.
func (ks *keySet) verify(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed token or disallowed algorithm: %w", ErrInvalidToken)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("not exactly one signature: %w", ErrInvalidToken)
	}
	header := jws.Signatures[0].Header
	arrived := ks.v.now()
	got, err := ks.load(ctx, false)
	if err != nil {
		return nil, err
	}
	kid, alg := header.KeyID, header.Algorithm
	candidates := matchingKeys(got.keys, kid, alg)
	if len(candidates) == 0 && !got.fetchedSince(arrived) && !ks.isUnknown(kid, alg) {
		// The issuer may have published a new key since the last fetch.
		if got, err = ks.load(ctx, true); err != nil {
			return nil, err
		}
		candidates = matchingKeys(got.keys, kid, alg)
	}
	if len(candidates) == 0 {
		// Only a fetch that began after the token arrived can tell that its key is not
		// published.
		if got.fetchedSince(arrived) {
			ks.rememberUnknown(kid, alg)
		}
		return nil, errUnknownKey
	}
	for _, k := range candidates {
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("bad signature: %w", ErrInvalidToken)
}

// isUnknown reports whether a fetch recently found no key for kid and alg.
func (ks *keySet) isUnknown(kid, alg string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.v.now().Before(ks.unknown[kid+"\x00"+alg])
}

// rememberUnknown remembers for unknownKeyTTL that the set has no key for kid and alg.
func (ks *keySet) rememberUnknown(kid, alg string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.v.now()
	if len(ks.unknown) >= maxUnknownKeys {
		for n, until := range ks.unknown {
			if !now.Before(until) {
				delete(ks.unknown, n)
			}
		}
		if len(ks.unknown) >= maxUnknownKeys {
			clear(ks.unknown)
		}
	}
	ks.unknown[kid+"\x00"+alg] = now.Add(unknownKeyTTL)
}

// loaded is the answer of load: the keys to use, and when the fetch that brought them
// started, zero if they came from memory.
type loaded struct {
	keys    []jose.JSONWebKey
	started time.Time
}

// fetchedSince reports whether the keys come from a fetch that started at or after t.
func (l loaded) fetchedSince(t time.Time) bool {
	return !l.started.IsZero() && !l.started.Before(t)
}

// action is what load does with the set as it stands.
type action int

const (
	useKeys         action = iota // answer from memory, keys or the remembered error
	fetchKeys                     // fetch and wait for the result
	useKeysAndRetry               // answer with the expired keys, fetch in the background
)

// plan decides how load answers now; refetch asks for a refetch for an unknown key id.
func (ks *keySet) plan(refetch bool) (action, []jose.JSONWebKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := ks.v.now()
	usable := ks.fetched && now.Before(ks.expires.Add(ks.v.keysMaxAge))
	backingOff := ks.lastErr != nil && now.Sub(ks.lastAttempt) < ks.v.failureBackoff
	switch {
	case !usable && backingOff:
		return useKeys, nil, ks.lastErr
	case !usable:
		return fetchKeys, nil, nil
	case refetch && (backingOff || now.Sub(ks.lastRefetch) < ks.v.refetchInterval):
		return useKeys, ks.keys, nil
	case refetch:
		return fetchKeys, nil, nil
	case now.Before(ks.expires):
		return useKeys, ks.keys, nil
	case ks.lastErr != nil && !ks.lastAttempt.Before(ks.expires):
		// A fetch failed since the keys expired: the issuer is failing, so requests do not wait
		// for it again.
		if backingOff {
			return useKeys, ks.keys, nil
		}
		ks.lastAttempt = now // the requests that follow need not start another
		return useKeysAndRetry, ks.keys, nil
	}
	return fetchKeys, nil, nil
}

// load returns the keys to verify with, fetching the set when plan says so; refetch asks for a
// refetch for an unknown key id. Concurrent callers share one fetch.
func (ks *keySet) load(ctx context.Context, refetch bool) (loaded, error) {
	act, keys, err := ks.plan(refetch)
	// The fetch is shared, so it must not end with the first caller's request; it keeps the
	// context's values (trace) and is bounded by Timeout.
	shared := context.WithoutCancel(ctx)
	switch act {
	case useKeys:
		return loaded{keys: keys}, err
	case useKeysAndRetry:
		// Not shared with requests that wait: they get a fetch of their own. plan starts one
		// retry per FailureBackoff, and it ends within Timeout.
		go func() { _, _ = ks.fetch(shared, false) }() // fetch logs and remembers its own failure
		return loaded{keys: keys}, nil
	}
	ch := ks.flights.DoChan("jwks", func() (any, error) {
		if act, keys, err := ks.plan(refetch); act == useKeys {
			return loaded{keys: keys}, err
		}
		return ks.fetch(shared, refetch)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return loaded{}, r.Err
		}
		return r.Val.(loaded), nil
	case <-ctx.Done():
		return loaded{}, fmt.Errorf("jwks: %w: %w", ctx.Err(), ErrIssuerUnavailable)
	}
}

// fetch fetches the set; refetch marks a refetch for an unknown key id. On failure it keeps the
// keys fetched before and returns them without error while they are usable.
func (ks *keySet) fetch(ctx context.Context, refetch bool) (loaded, error) {
	started := ks.v.now()
	url := ks.jwksURL(ctx, started)
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	header, fetchErr := ks.v.fetchJSON(ctx, ks.issuer, url, &set)
	var keys []jose.JSONWebKey
	if fetchErr == nil {
		if keys = publicKeys(set.Keys); len(keys) == 0 {
			fetchErr = errors.New("jwks has no usable signing keys")
		}
	}
	// Observed once the outcome is stored, so that whoever sees the count sees the outcome.
	defer ks.v.observeFetch(ks.tenantID, fetchErr)
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.lastAttempt = ks.v.now()
	if refetch {
		ks.lastRefetch = ks.lastAttempt
	}
	switch {
	case url != ks.url:
		// A concurrent rediscovery moved the set: the answer of the old URL is not kept.
		if fetchErr != nil {
			return loaded{}, fmt.Errorf("jwks: %w: %w", fetchErr, ErrIssuerUnavailable)
		}
		return loaded{keys: keys}, nil
	case fetchErr != nil:
		ks.v.log.WarnContext(ctx, "jwks fetch failed", "tenant", ks.tenantID, "url", url, "err", fetchErr)
		ks.lastErr = fmt.Errorf("jwks: %w: %w", fetchErr, ErrIssuerUnavailable)
		if ks.fetched && ks.lastAttempt.Before(ks.expires.Add(ks.v.keysMaxAge)) {
			return loaded{keys: ks.keys}, nil
		}
		return loaded{}, ks.lastErr
	}
	maxAge := ks.v.keysMaxAgeOf(header)
	ks.v.log.DebugContext(ctx, "jwks fetched", "tenant", ks.tenantID, "keys", len(keys), "max_age", maxAge)
	ks.keys, ks.fetched, ks.expires, ks.lastErr = keys, true, started.Add(maxAge), nil
	return loaded{keys: keys, started: started}, nil
}

// has reports whether the key set holds a key with id kid and is within its max age. An expired
// set answers false, so the caller verifies the token again, which refetches the set.
func (ks *keySet) has(kid string) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if !ks.fetched || !ks.v.now().Before(ks.expires) {
		return false
	}
	for _, k := range ks.keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

// jwksURL returns the URL to fetch the set from at now, discovering the issuer again first when
// that is due. A changed jwks_uri forgets the key ids remembered as unknown.
func (ks *keySet) jwksURL(ctx context.Context, now time.Time) string {
	ks.mu.Lock()
	url, due := ks.url, !now.Before(ks.nextDiscovery)
	if due {
		// Until this discovery ends, and for FailureBackoff if it fails, no other fetch tries.
		ks.nextDiscovery = now.Add(ks.v.failureBackoff)
	}
	ks.mu.Unlock()
	if !due {
		return url
	}
	doc, err := ks.v.fetchDiscovery(ctx, ks.issuer)
	ks.v.observeFetch(ks.tenantID, err)
	if err != nil {
		ks.v.log.WarnContext(ctx, "issuer rediscovery failed", "tenant", ks.tenantID, "issuer", ks.issuer, "err", err)
		return url
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.nextDiscovery = now.Add(ks.v.rediscoverInterval)
	if doc.JWKSURI != ks.url {
		ks.v.log.InfoContext(ctx, "issuer moved its jwks_uri", "tenant", ks.tenantID, "from", ks.url, "to", doc.JWKSURI)
		ks.url = doc.JWKSURI
		clear(ks.unknown)
	}
	return ks.url
}

// keysMaxAgeOf returns how long keys served with header stay fresh: the Cache-Control max-age
// less the Age, bounded by minKeysMaxAge and KeysMaxAge, or KeysMaxAge when there is none.
func (v *Verifier) keysMaxAgeOf(header http.Header) time.Duration {
	asked, ok := cacheMaxAge(header)
	if !ok {
		return v.keysMaxAge
	}
	return min(max(asked, min(minKeysMaxAge, v.keysMaxAge)), v.keysMaxAge)
}

// cacheMaxAge returns the freshness lifetime that header's Cache-Control asks for, less its Age,
// and whether it asks for one; no-cache and no-store ask for none at all.
func cacheMaxAge(header http.Header) (time.Duration, bool) {
	const maxSeconds = 1 << 31 // keeps the Duration from overflowing
	var (
		maxAge time.Duration
		found  bool
	)
	for _, value := range header.Values("Cache-Control") {
		for _, directive := range strings.Split(value, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(name) {
			case "no-cache", "no-store":
				return 0, true
			case "max-age":
				if s, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64); err == nil && s >= 0 {
					maxAge, found = time.Duration(min(s, maxSeconds))*time.Second, true
				}
			}
		}
	}
	if age, err := strconv.ParseInt(header.Get("Age"), 10, 64); found && err == nil && age > 0 {
		maxAge -= time.Duration(min(age, maxSeconds)) * time.Second
	}
	return maxAge, found
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
