// Package devissuer is a minimal local OpenID Connect issuer for development (cmd/chatd-dev)
// and tests: discovery, JWKS, a token endpoint without credentials, and key rotation. It must
// never be linked into the production binary.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Options configures an Issuer. Zero values take the documented defaults.
type Options struct {
	// Addr is the listen address. Default "127.0.0.1:0".
	Addr string
	// Audience is the 'aud' of minted tokens. Default "support-chat".
	Audience string
	// AdminClaim is the claim name or dotted path (realm_access.roles) that carries the admin
	// role in minted tokens. Default "roles".
	AdminClaim string
	// AdminValue is the role name of admins. Default "admin".
	AdminValue string
	// NameClaim is the claim that carries the display name. Default "name".
	NameClaim string
	// TokenTTL is the lifetime of tokens from the token endpoint. Default 1h.
	TokenTTL time.Duration
	// Now is the clock of minted tokens. Default time.Now.
	Now func() time.Time
}

// Issuer is a running local OpenID Connect issuer.
type Issuer struct {
	opts     Options
	url      string
	server   *http.Server
	done     chan struct{}
	fetches  atomic.Int64
	mu       sync.Mutex
	keys     []signingKey          // every key ever made, all published
	current  map[string]signingKey // signing key by algorithm
	serveErr error
}

// signingKey is a private key with its key id and algorithm.
type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

// New starts an issuer on o.Addr with a fresh RSA-2048 (RS256) and EC P-256 (ES256) key.
func New(o Options) (*Issuer, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Audience == "" {
		o.Audience = "support-chat"
	}
	if o.AdminClaim == "" {
		o.AdminClaim = "roles"
	}
	if o.AdminValue == "" {
		o.AdminValue = "admin"
	}
	if o.NameClaim == "" {
		o.NameClaim = "name"
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	iss := &Issuer{opts: o, current: make(map[string]signingKey), done: make(chan struct{})}
	for _, alg := range []string{string(jose.RS256), string(jose.ES256)} {
		if _, err := iss.RotateKey(alg); err != nil {
			return nil, err
		}
	}

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	iss.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", iss.serveDiscovery)
	mux.HandleFunc("GET /jwks", iss.serveJWKS)
	mux.HandleFunc("POST /token", iss.serveToken)
	iss.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(iss.done)
		if err := iss.server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			iss.mu.Lock()
			iss.serveErr = err
			iss.mu.Unlock()
		}
	}()
	return iss, nil
}

// URL returns the issuer identifier, http://127.0.0.1:port; discovery is below it.
func (iss *Issuer) URL() string {
	return iss.url
}

// JWKSFetches returns how many times the JWKS was served.
func (iss *Issuer) JWKSFetches() int {
	return int(iss.fetches.Load())
}

// Close stops the issuer and waits for its server to end.
func (iss *Issuer) Close() error {
	err := iss.server.Close()
	<-iss.done
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return errors.Join(err, iss.serveErr)
}

// RotateKey makes a new key for alg (RS256 or ES256), publishes it in the JWKS next to the old
// ones and signs alg's tokens with it from now on. Returns its key id.
func (iss *Issuer) RotateKey(alg string) (kid string, err error) {
	var key crypto.Signer
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return "", fmt.Errorf("rotate key: unsupported algorithm %q", alg)
	}
	if err != nil {
		return "", fmt.Errorf("rotate key: %w", err)
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	sk := signingKey{kid: strings.ToLower(alg) + "-" + hex.EncodeToString(id[:]), alg: jose.SignatureAlgorithm(alg), key: key}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, sk)
	iss.current[alg] = sk
	return sk.kid, nil
}

// DropKey stops publishing the key kid, as an issuer does with a retired or leaked key. The
// current key of an algorithm cannot be dropped: rotate first.
func (iss *Issuer) DropKey(kid string) error {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	for _, cur := range iss.current {
		if cur.kid == kid {
			return fmt.Errorf("drop key: %s is a current key", kid)
		}
	}
	iss.keys = slices.DeleteFunc(iss.keys, func(k signingKey) bool { return k.kid == kid })
	return nil
}

// KeyID returns the key id that signs alg's tokens now, or "" for an unsupported alg.
func (iss *Issuer) KeyID(alg string) string {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.current[alg].kid
}

// Sign returns a compact JWS of claims signed with the current key of alg (RS256 or ES256).
// Claims are taken as given, so tests can craft any token.
func (iss *Issuer) Sign(alg string, claims map[string]any) (string, error) {
	iss.mu.Lock()
	sk, ok := iss.current[alg]
	iss.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("sign: unsupported algorithm %q", alg)
	}
	return SignJWT(alg, sk.kid, sk.key, claims)
}

// SignJWT returns a compact JWS of claims with header {"alg": alg, "kid": kid, "typ": "JWT"},
// signed with key. An empty kid leaves the header without one.
func SignJWT(alg, kid string, key crypto.Signer, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Claims returns the claims of a token for sub valid for ttl from now: iss, aud, sub, iat, nbf,
// exp, the name under NameClaim if name is set, and for an admin the AdminValue in an array
// under AdminClaim (nested objects for a dotted path).
func (iss *Issuer) Claims(sub, name string, admin bool, ttl time.Duration) map[string]any {
	now := iss.opts.Now()
	claims := map[string]any{
		"iss": iss.url,
		"aud": iss.opts.Audience,
		"sub": sub,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if name != "" {
		claims[iss.opts.NameClaim] = name
	}
	if admin {
		obj := claims
		path := strings.Split(iss.opts.AdminClaim, ".")
		for _, p := range path[:len(path)-1] {
			next := map[string]any{}
			obj[p] = next
			obj = next
		}
		obj[path[len(path)-1]] = []string{iss.opts.AdminValue}
	}
	return claims
}

// Mint returns an RS256 token for sub valid for ttl (TokenTTL when ttl <= 0).
func (iss *Issuer) Mint(sub, name string, admin bool, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = iss.opts.TokenTTL
	}
	return iss.Sign(string(jose.RS256), iss.Claims(sub, name, admin, ttl))
}

// serveDiscovery answers the OpenID Provider configuration.
func (iss *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss.url,
		"jwks_uri":                              iss.url + "/jwks",
		"token_endpoint":                        iss.url + "/token",
		"id_token_signing_alg_values_supported": []string{string(jose.RS256), string(jose.ES256)},
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"grant_types_supported":                 []string{"client_credentials"},
	})
}

// serveJWKS answers the public keys, old and current.
func (iss *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	iss.fetches.Add(1)
	writeJSON(w, http.StatusOK, iss.JWKS())
}

// JWKS returns the public keys the issuer publishes, old and current, without counting a fetch.
func (iss *Issuer) JWKS() jose.JSONWebKeySet {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(iss.keys))}
	for _, k := range iss.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	return set
}

// serveToken mints a token without any credentials from the form or query fields sub, role
// (customer or admin, default customer) and name.
func (iss *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	sub, role, name := r.FormValue("sub"), r.FormValue("role"), r.FormValue("name")
	if sub == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "sub is required"})
		return
	}
	if role != "" && role != "customer" && role != "admin" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "role must be customer or admin"})
		return
	}
	token, err := iss.Mint(sub, name, role == "admin", iss.opts.TokenTTL)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int(iss.opts.TokenTTL.Seconds()),
	})
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
