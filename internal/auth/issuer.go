package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/supportchat/supportchat/internal/netguard"
	"github.com/supportchat/supportchat/internal/tenant"
)

const (
	// maxDocumentSize bounds discovery documents and JWKS read from an issuer.
	maxDocumentSize = 1 << 20
	// maxRedirects bounds the redirects one discovery or JWKS fetch follows.
	maxRedirects = 5
)

// issuerKey identifies a cached issuer. A hot-reloaded tenant with a new issuer or audience
// gets a new key, hence a new discovery and verifier.
type issuerKey struct {
	tenantID, issuer, audience string
}

// issuer is the outcome of one tenant's discovery: a verifier, or the error remembered until
// FailureBackoff has passed.
type issuer struct {
	key      issuerKey
	verifier *oidc.IDTokenVerifier
	keys     *keySet
	err      error
	failedAt time.Time
}

// issuerFor returns the verifier of t's issuer, discovering it on first use. Concurrent callers
// share one discovery; a failed discovery is answered from memory for FailureBackoff. (The key
// set discovers the issuer again every RediscoverInterval.)
func (v *Verifier) issuerFor(ctx context.Context, t *tenant.Tenant) (*issuer, error) {
	key := issuerKey{tenantID: t.ID, issuer: t.OIDC.Issuer, audience: t.OIDC.Audience}
	if iss := v.cachedIssuer(key); iss != nil {
		return iss, iss.err
	}
	flight := strings.Join([]string{key.tenantID, key.issuer, key.audience}, "\x00")
	ch := v.flights.DoChan(flight, func() (any, error) {
		if iss := v.cachedIssuer(key); iss != nil {
			return iss, iss.err
		}
		// The discovery is shared, so it must not end with the first caller's request; it
		// keeps the context's values (trace) and is bounded by Timeout.
		iss := v.discover(context.WithoutCancel(ctx), key)
		v.mu.Lock()
		v.issuers[key.tenantID] = iss
		v.mu.Unlock()
		return iss, iss.err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*issuer), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("issuer discovery: %w: %w", ctx.Err(), ErrIssuerUnavailable)
	}
}

// cachedIssuer returns the cached issuer of key if it can be used: discovered, or failed less
// than FailureBackoff ago. Returns nil when a discovery is needed.
func (v *Verifier) cachedIssuer(key issuerKey) *issuer {
	v.mu.Lock()
	defer v.mu.Unlock()
	iss := v.issuers[key.tenantID]
	switch {
	case iss == nil || iss.key != key:
		return nil
	case iss.verifier != nil:
		return iss
	case v.now().Sub(iss.failedAt) < v.failureBackoff:
		return iss
	}
	return nil
}

// discovery holds the fields of an OpenID Provider configuration document that auth uses.
type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// discover fetches the discovery document of key's issuer and builds its verifier. A discovery
// document naming another issuer is an issuer misconfiguration, reported as ErrIssuerUnavailable
// (HTTP 503), not as a bad token.
func (v *Verifier) discover(ctx context.Context, key issuerKey) *issuer {
	iss := &issuer{key: key}
	doc, err := v.fetchDiscovery(ctx, key.issuer)
	v.observeFetch(key.tenantID, err)
	if err != nil {
		v.log.WarnContext(ctx, "issuer discovery failed", "tenant", key.tenantID, "issuer", key.issuer, "err", err)
		iss.err = fmt.Errorf("issuer discovery: %w: %w", err, ErrIssuerUnavailable)
		iss.failedAt = v.now()
		return iss
	}
	algs := make([]string, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = string(a)
	}
	keys := newKeySet(v, key, doc.JWKSURI)
	iss.keys = keys
	iss.verifier = oidc.NewVerifier(key.issuer, keys, &oidc.Config{
		ClientID:             key.audience,
		SupportedSigningAlgs: algs,
		// Expiry and not-before are checked by Authenticate with Leeway: go-oidc has no expiry
		// leeway and a fixed five-minute not-before leeway.
		SkipExpiryCheck: true,
		Now:             v.now,
	})
	v.log.DebugContext(ctx, "issuer discovered", "tenant", key.tenantID, "issuer", key.issuer)
	return iss
}

// observeFetch counts one discovery or JWKS fetch of a tenant's issuer, failed when err is set.
func (v *Verifier) observeFetch(tenantID string, err error) {
	if v.obs == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	v.obs.JWKSFetch(tenantID, outcome)
}

// fetchDiscovery fetches and checks the discovery document of issuer.
func (v *Verifier) fetchDiscovery(ctx context.Context, issuer string) (discovery, error) {
	var doc discovery
	if err := checkURL(issuer); err != nil {
		return doc, fmt.Errorf("issuer: %w", err)
	}
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	if _, err := v.fetchJSON(ctx, issuer, u, &doc); err != nil {
		return doc, err
	}
	if doc.Issuer != issuer {
		return doc, errors.New("discovery document names another issuer")
	}
	if doc.JWKSURI == "" {
		return doc, errors.New("discovery document has no jwks_uri")
	}
	if err := checkJWKSURL(issuer, doc.JWKSURI); err != nil {
		return doc, fmt.Errorf("jwks_uri: %w", err)
	}
	return doc, nil
}

// fetchJSON GETs u, for issuer, within Timeout, decodes its JSON body into dst and returns the
// response's header. The connection may reach loopback only for an issuer configured on
// loopback, where the transport checks addresses as it connects (netguard).
func (v *Verifier) fetchJSON(ctx context.Context, issuer, u string, dst any) (http.Header, error) {
	if iss, err := url.Parse(issuer); err == nil && isLoopback(iss.Hostname()) {
		ctx = netguard.Allow(ctx, netguard.Loopback...)
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", u, maxDocumentSize)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return nil, fmt.Errorf("decode %s: %w", u, err)
	}
	return resp.Header, nil
}

// fetchClient returns a copy of c, or a new client with timeout when c is nil, that follows
// only redirects allowed by checkRedirect and then by c's own CheckRedirect, if any. c itself
// is not changed.
func fetchClient(c *http.Client, timeout time.Duration) *http.Client {
	out := &http.Client{Timeout: timeout}
	if c != nil {
		copied := *c
		out = &copied
	}
	next := out.CheckRedirect
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req.URL, via); err != nil {
			return err
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return out
}

// checkRedirect accepts a redirect to u after the requests via only within one https origin:
// the first request and u are https with the same host and port. Plain http is never
// redirected, so a fetch cannot be downgraded or sent to another host (a local service, say).
func checkRedirect(u *url.URL, via []*http.Request) error {
	from := via[0].URL
	switch {
	case len(via) >= maxRedirects:
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	case from.Scheme != "https" || u.Scheme != "https":
		return errors.New("redirect refused: only https redirects within one origin are followed")
	case httpsHostPort(from) != httpsHostPort(u):
		return errors.New("redirect to another origin refused")
	}
	return nil
}

// httpsHostPort returns the host and port of the https URL u, the port 443 when u has none.
func httpsHostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// checkURL accepts https URLs, and http URLs only on loopback hosts (local development, tests).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("malformed URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("plain http is allowed only on loopback hosts")
	}
	return errors.New("scheme must be https")
}

// checkJWKSURL accepts the jwks_uri named by the discovery document of issuer: an https URL,
// and a loopback one (plain http included) only when issuer is on loopback too, so that a
// remote issuer cannot direct fetches to local services.
func checkJWKSURL(issuer, raw string) error {
	if err := checkURL(raw); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("malformed URL")
	}
	iss, err := url.Parse(issuer)
	if err != nil {
		return errors.New("malformed issuer URL")
	}
	if isLoopback(u.Hostname()) && !isLoopback(iss.Hostname()) {
		return errors.New("loopback URL named by an issuer outside loopback")
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}
