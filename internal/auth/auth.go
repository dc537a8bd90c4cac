// Package auth verifies bearer tokens against each tenant's OpenID Connect issuer and turns them
// into a Principal.
//
// A Verifier discovers a tenant's issuer on first use and keeps one go-oidc verifier per tenant,
// issuer and audience, backed by its own JWKS cache:
//
//   - The keys are used for at most KeysMaxAge (less if the JWKS response's Cache-Control
//     max-age says so, but not under a minute); the first request after that waits for a
//     refetch, so a key the issuer drops stops verifying within the max age plus one fetch. If
//     the issuer fails, the previous keys serve for at most another KeysMaxAge.
//   - The first JWKS fetch RediscoverInterval or more after the last discovery fetches the
//     discovery document again first, so a changed jwks_uri takes effect.
//   - A token with an unknown key id refetches the JWKS at most once per RefetchInterval per
//     tenant, so a newly published key verifies within about that; a key id that a fetch did
//     not find is remembered for a minute (up to 1000 per tenant) and causes no further fetch.
//   - A down issuer is remembered for FailureBackoff so that requests fail fast with
//     ErrIssuerUnavailable.
//   - Fetches follow redirects only within one https origin (scheme, host and port), and a
//     plain http or loopback jwks_uri is accepted only from an issuer on loopback.
//
// Fetches of one tenant never hold a lock that another tenant needs.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sync/singleflight"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// ErrInvalidToken is returned when a bearer token is malformed, badly signed, not meant for the
// tenant, expired or not yet valid (HTTP 401).
var ErrInvalidToken = errors.New("invalid token")

// ErrIssuerUnavailable is returned when the tenant's issuer cannot be discovered or its keys
// cannot be fetched, so no token of the tenant can be verified (HTTP 503).
var ErrIssuerUnavailable = errors.New("issuer unavailable")

// Principal is the caller a verified token speaks for.
type Principal struct {
	// Subject is the token's 'sub' claim.
	Subject string
	// Name is the display name from the tenant's name claim, empty when absent.
	Name string
	// Admin reports whether the tenant's admin claim holds one of its admin values.
	Admin bool
	// Expires is the token's 'exp'.
	Expires time.Time
}

// Observer records fetches of issuers' documents; telemetry implements it.
type Observer interface {
	// JWKSFetch records one discovery or JWKS fetch of a tenant's issuer; outcome is "ok" or
	// "error".
	JWKSFetch(tenantID, outcome string)
}

// Options configures a Verifier. Zero values take the documented defaults.
type Options struct {
	// HTTPClient fetches discovery documents and JWKS. The Verifier uses a copy that refuses
	// redirects leaving the first request's https origin; HTTPClient's own CheckRedirect is
	// asked after that. Default: a client with Timeout.
	HTTPClient *http.Client
	// Timeout bounds each discovery or JWKS fetch. Default 5s.
	Timeout time.Duration
	// Leeway is the clock skew allowed on 'exp' and 'nbf'. Default 60s.
	Leeway time.Duration
	// RefetchInterval is the minimum gap between JWKS refetches of a tenant caused by tokens
	// with unknown key ids. Default 1s.
	RefetchInterval time.Duration
	// KeysMaxAge is the longest a tenant's JWKS is used before it is fetched again. A shorter
	// Cache-Control max-age on the JWKS response is honoured down to one minute. When the
	// issuer cannot be reached, the keys stay in use for another KeysMaxAge at most.
	// Default DefaultKeysMaxAge.
	KeysMaxAge time.Duration
	// RediscoverInterval is how often a discovered issuer's discovery document is fetched
	// again, before the next JWKS fetch, so that a changed jwks_uri takes effect. Default 1h.
	RediscoverInterval time.Duration
	// FailureBackoff is how long a failed discovery or first JWKS fetch is remembered, so that
	// requests to a down issuer fail at once. Default 5s.
	FailureBackoff time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives fetch failures. Default: discard.
	Logger *slog.Logger
	// Observer, if not nil, records discovery and JWKS fetches.
	Observer Observer
}

// DefaultKeysMaxAge is the default of Options.KeysMaxAge.
const DefaultKeysMaxAge = 15 * time.Minute

// Verifier authenticates bearer tokens for any tenant. It discovers each tenant's issuer lazily
// on first use and caches the result; it is safe for concurrent use.
type Verifier struct {
	client             *http.Client
	timeout            time.Duration
	leeway             time.Duration
	refetchInterval    time.Duration
	keysMaxAge         time.Duration
	rediscoverInterval time.Duration
	failureBackoff     time.Duration
	now                func() time.Time
	log                *slog.Logger
	obs                Observer

	flights singleflight.Group

	mu      sync.Mutex
	issuers map[string]*issuer // by tenant id

	tokens *tokenCache
}

// signingAlgs are the accepted token signature algorithms: asymmetric only, never HMAC or none.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// New returns a Verifier configured by o.
func New(o Options) *Verifier {
	v := &Verifier{
		timeout:            o.Timeout,
		leeway:             o.Leeway,
		refetchInterval:    o.RefetchInterval,
		keysMaxAge:         o.KeysMaxAge,
		rediscoverInterval: o.RediscoverInterval,
		failureBackoff:     o.FailureBackoff,
		now:                o.Now,
		log:                o.Logger,
		obs:                o.Observer,
		issuers:            make(map[string]*issuer),
		tokens:             newTokenCache(),
	}
	if v.timeout <= 0 {
		v.timeout = 5 * time.Second
	}
	if v.leeway <= 0 {
		v.leeway = 60 * time.Second
	}
	if v.refetchInterval <= 0 {
		v.refetchInterval = time.Second
	}
	if v.keysMaxAge <= 0 {
		v.keysMaxAge = DefaultKeysMaxAge
	}
	if v.rediscoverInterval <= 0 {
		v.rediscoverInterval = time.Hour
	}
	if v.failureBackoff <= 0 {
		v.failureBackoff = 5 * time.Second
	}
	v.client = fetchClient(o.HTTPClient, v.timeout)
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v
}

// KeysMaxAge returns the longest the Verifier uses a tenant's keys before fetching them again:
// a key the issuer drops stops verifying within about that.
func (v *Verifier) KeysMaxAge() time.Duration { return v.keysMaxAge }

// Authenticate verifies token against the issuer of t and returns its principal. Returns an
// error wrapping ErrInvalidToken when the token is not acceptable, or ErrIssuerUnavailable when
// the issuer's discovery document or keys cannot be fetched. Errors never contain the token or
// its claims.
func (v *Verifier) Authenticate(ctx context.Context, t *tenant.Tenant, token string) (Principal, error) {
	if t == nil || t.OIDC.Issuer == "" || t.OIDC.Audience == "" {
		return Principal{}, fmt.Errorf("tenant has no issuer or audience: %w", ErrIssuerUnavailable)
	}
	key := issuerKey{tenantID: t.ID, issuer: t.OIDC.Issuer, audience: t.OIDC.Audience}
	hash := sha256.Sum256([]byte(token))
	identity := identityKey(t.OIDC)
	if p, ok := v.tokens.get(hash, key, identity, v.now()); ok {
		return p, nil
	}
	// Cheap checks on the unverified token first: they need no network, so garbage and tokens
	// of other issuers never cause a discovery or a JWKS fetch.
	kid, err := v.precheck(t, token)
	if err != nil {
		return Principal{}, err
	}
	iss, err := v.issuerFor(ctx, t)
	if err != nil {
		return Principal{}, err
	}

	// go-oidc flattens key set errors into strings; the key set reports its own, sentinel-
	// wrapped error through this holder instead.
	var ksErr keySetError
	idToken, err := iss.verifier.Verify(context.WithValue(ctx, keySetErrorKey{}, &ksErr), token)
	if err != nil {
		if ksErr.err != nil {
			return Principal{}, ksErr.err
		}
		return Principal{}, fmt.Errorf("token rejected: %w", ErrInvalidToken)
	}

	var claims map[string]any
	if err := idToken.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("token claims: %w", ErrInvalidToken)
	}
	for _, rc := range t.OIDC.RequiredClaims {
		if !hasRole(claimAt(claims, rc.Path), []string{rc.Value}) {
			return Principal{}, fmt.Errorf("token lacks a claim the tenant requires: %w", ErrInvalidToken)
		}
	}
	p := Principal{Subject: idToken.Subject, Expires: idToken.Expiry}
	if name, ok := claimAt(claims, t.OIDC.NameClaim).(string); ok {
		p.Name = cleanName(name)
	}
	p.Admin = hasRole(claimAt(claims, t.OIDC.AdminClaim), t.OIDC.AdminValues)
	if iss.keys != nil && iss.key == key {
		v.tokens.put(hash, cachedToken{key: key, identity: identity, kid: kid, principal: p, validUntil: p.Expires.Add(-tokenCacheMargin), keys: iss.keys})
	}
	return p, nil
}

// precheck parses token without verifying its signature and rejects it if its algorithm or
// registered claims cannot be valid for t.
//
// It returns the id of the key the token names.
func (v *Verifier) precheck(t *tenant.Tenant, token string) (string, error) {
	jws, err := jose.ParseSignedCompact(token, signingAlgs)
	if err != nil {
		return "", fmt.Errorf("malformed token or disallowed algorithm: %w", ErrInvalidToken)
	}
	if len(jws.Signatures) != 1 {
		return "", fmt.Errorf("not exactly one signature: %w", ErrInvalidToken)
	}
	var c jwt.Claims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		return "", fmt.Errorf("malformed claims: %w", ErrInvalidToken)
	}
	now := v.now()
	switch {
	case c.Issuer != t.OIDC.Issuer:
		return "", fmt.Errorf("wrong issuer: %w", ErrInvalidToken)
	case !slices.Contains(c.Audience, t.OIDC.Audience):
		return "", fmt.Errorf("wrong audience: %w", ErrInvalidToken)
	case c.Subject == "":
		return "", fmt.Errorf("missing subject: %w", ErrInvalidToken)
	case !chat.ValidID(c.Subject):
		return "", fmt.Errorf("subject is not 1 to 255 visible ASCII characters: %w", ErrInvalidToken)
	case c.Expiry == nil:
		return "", fmt.Errorf("missing expiry: %w", ErrInvalidToken)
	case now.After(c.Expiry.Time().Add(v.leeway)):
		return "", fmt.Errorf("token expired: %w", ErrInvalidToken)
	case c.NotBefore != nil && now.Add(v.leeway).Before(c.NotBefore.Time()):
		return "", fmt.Errorf("token not yet valid: %w", ErrInvalidToken)
	}
	return jws.Signatures[0].Header.KeyID, nil
}

// claimAt returns the claim at a dotted path (realm_access.roles), walking nested objects, or
// nil when there is none.
func claimAt(claims map[string]any, path string) any {
	if path == "" {
		return nil
	}
	var cur any = claims
	for len(path) > 0 {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		// A claim name that itself contains dots wins over nesting.
		if val, ok := obj[path]; ok {
			return val
		}
		name, rest, found := strings.Cut(path, ".")
		if !found {
			return nil
		}
		cur, path = obj[name], rest
	}
	return cur
}

// identityKey identifies how a tenant turns a token into a principal: the claims it requires,
// its admin claim and values and its name claim. A cached token is used only while the tenant
// maps tokens as it did when the token was checked, so an operator's fix of admin_values
// takes an admin's rights away at once, not at the token's exp.
func identityKey(o tenant.OIDC) string {
	var b strings.Builder
	field := func(s string) { // length-prefixed: no two configurations share a key
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	for _, c := range o.RequiredClaims {
		field(c.Path)
		field(c.Value)
	}
	b.WriteByte('|')
	field(o.AdminClaim)
	for _, v := range o.AdminValues {
		field(v)
	}
	b.WriteByte('|')
	field(o.NameClaim)
	return b.String()
}

// hasRole reports whether claim is a string equal to one of values, or an array containing one.
func hasRole(claim any, values []string) bool {
	switch c := claim.(type) {
	case string:
		return slices.Contains(values, c)
	case []any:
		for _, e := range c {
			if s, ok := e.(string); ok && slices.Contains(values, s) {
				return true
			}
		}
	}
	return false
}
