package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/testenv"
)

const audience = "support-chat"

// observer counts JWKS fetches by outcome.
type observer struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *observer) JWKSFetch(tenantID, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = map[string]int{}
	}
	o.counts[tenantID+" "+outcome]++
}

func (o *observer) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[key]
}

// countingTransport counts the requests that reach the network.
type countingTransport struct {
	n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func tenantOf(id string, iss *testenv.Issuer) *tenant.Tenant {
	return &tenant.Tenant{ID: id, Name: id, OIDC: iss.OIDC()}
}

func newVerifier(clk *testenv.Clock, o auth.Options) *auth.Verifier {
	o.Now = clk.Now
	return auth.New(o)
}

func TestAuthenticateAccepts(t *testing.T) {
	shop := testenv.NewIssuer(t, audience, "roles", "support_admin")
	outdoor := testenv.NewIssuer(t, audience, "realm_access.roles", "chat-agent")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{})
	now := clk.Now()

	tests := []struct {
		name   string
		issuer *testenv.Issuer
		token  string
		want   auth.Principal
	}{
		{"customer with an RS256 token", shop, shop.Token(t, "cust-1", false), auth.Principal{Subject: "cust-1"}},
		{"customer with an ES256 token", shop, shop.TokenWith(t, "ES256", nil), auth.Principal{Subject: "user-1"}},
		{"admin by a top-level roles claim", shop, shop.Token(t, "admin-1", true), auth.Principal{Subject: "admin-1", Admin: true}},
		{"admin by a nested realm_access.roles claim", outdoor, outdoor.Token(t, "agent-1", true), auth.Principal{Subject: "agent-1", Admin: true}},
		{"admin by a role given as a single string", shop, shop.TokenWith(t, "RS256", func(c map[string]any) { c["roles"] = "support_admin" }), auth.Principal{Subject: "user-1", Admin: true}},
		{"customer when the role claim is missing", outdoor, outdoor.Token(t, "cust-2", false), auth.Principal{Subject: "cust-2"}},
		{"customer when the roles are others", shop, shop.TokenWith(t, "RS256", func(c map[string]any) { c["roles"] = []string{"viewer", "chat-agent"} }), auth.Principal{Subject: "user-1"}},
		{"customer when the nested path holds no object", outdoor, outdoor.TokenWith(t, "RS256", func(c map[string]any) { c["realm_access"] = "chat-agent" }), auth.Principal{Subject: "user-1"}},
		{"display name from the name claim", shop, shop.TokenWith(t, "ES256", func(c map[string]any) { c["name"] = "Ada Lovelace" }), auth.Principal{Subject: "user-1", Name: "Ada Lovelace"}},
		{"no display name when the name claim is not a string", shop, shop.TokenWith(t, "RS256", func(c map[string]any) { c["name"] = 42 }), auth.Principal{Subject: "user-1"}},
		{"audience listed among others", shop, shop.TokenWith(t, "RS256", func(c map[string]any) { c["aud"] = []string{"billing", audience} }), auth.Principal{Subject: "user-1"}},
		{"expired 30 s ago, within the skew", shop, shop.TokenWith(t, "RS256", func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }), auth.Principal{Subject: "user-1"}},
		{"valid 30 s from now, within the skew", shop, shop.TokenWith(t, "RS256", func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() }), auth.Principal{Subject: "user-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Authenticate(t.Context(), tenantOf("shop", tt.issuer), tt.token)
			if err != nil {
				t.Fatalf("Authenticate() error = %v, want nil", err)
			}
			if got.Expires.IsZero() {
				t.Error("the principal has no expiry")
			}
			got.Expires = time.Time{}
			if got != tt.want {
				t.Errorf("Authenticate() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAuthenticateRejects(t *testing.T) {
	shop := testenv.NewIssuer(t, audience, "roles", "support_admin")
	other := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{})
	now := clk.Now()
	valid := func() map[string]any { return shop.Claims("secret-subject", "", true, time.Hour) }
	without := func(claim string) func(map[string]any) { return func(c map[string]any) { delete(c, claim) } }
	with := func(claim string, value any) func(map[string]any) { return func(c map[string]any) { c[claim] = value } }

	tests := []struct {
		name  string
		token string
	}{
		{"HS256 signed with the public key as secret", shop.HS256(t, valid())},
		{"alg none", shop.None(t, valid())},
		{"signed by a key not in the JWKS under a known kid", shop.SignWithUnknownKey(t, valid())},
		{"wrong issuer", shop.TokenWith(t, "RS256", with("iss", "https://evil.example"))},
		{"wrong audience", shop.TokenWith(t, "ES256", with("aud", "another-app"))},
		{"no audience", shop.TokenWith(t, "ES256", without("aud"))},
		{"expired 61 s ago, beyond the skew", shop.TokenWith(t, "RS256", with("exp", now.Add(-61*time.Second).Unix()))},
		{"expired an hour ago", shop.TokenWith(t, "ES256", with("exp", now.Add(-time.Hour).Unix()))},
		{"valid only 120 s from now", shop.TokenWith(t, "RS256", with("nbf", now.Add(120*time.Second).Unix()))},
		{"no subject", shop.TokenWith(t, "RS256", without("sub"))},
		{"empty subject", shop.TokenWith(t, "RS256", with("sub", ""))},
		{"no expiry", shop.TokenWith(t, "RS256", without("exp"))},
		{"expiry not a number", shop.TokenWith(t, "RS256", with("exp", "tomorrow"))},
		{"garbage", "not.a.token"},
		{"empty", ""},
		{"token of another tenant's issuer", other.Token(t, "secret-subject", true)},
		{"token with a changed payload", tamper(t, shop.Token(t, "secret-subject", false))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Authenticate(t.Context(), tenantOf("shop", shop), tt.token)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Authenticate() = %+v, %v; want error wrapping ErrInvalidToken", p, err)
			}
			if msg := err.Error(); tt.token != "" && strings.Contains(msg, tt.token) || strings.Contains(msg, "secret-subject") {
				t.Errorf("Authenticate() error %q contains the token or its claims", msg)
			}
		})
	}
}

// tamper returns token with its payload's subject changed and the signature kept.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "someone-else"
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestAuthenticateRefetchesKeysOnceAfterRotation(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{})
	ten := tenantOf("shop", iss)

	if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-1", false)); err != nil {
		t.Fatalf("Authenticate(before rotation) error = %v", err)
	}
	if _, err := iss.RotateKey("RS256"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-1", false)); err != nil {
			t.Fatalf("Authenticate(after rotation, #%d) error = %v", i, err)
		}
	}
	if got := iss.JWKSFetches(); got != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (first use, one refetch after rotation)", got)
	}
}

func TestAuthenticateLimitsRefetchesForUnknownKeyIDs(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	obs := &observer{}
	v := newVerifier(clk, auth.Options{Observer: obs}) // RefetchInterval: 1s by default
	ten := tenantOf("shop", iss)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	burst := func(t *testing.T) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			kid := make([]byte, 8)
			_, _ = rand.Read(kid)
			token, err := devissuer.SignJWT("ES256", hex.EncodeToString(kid), key, iss.Claims("cust-1", "", false, time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { _, errs[i] = v.Authenticate(t.Context(), ten, token) })
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Authenticate(unknown kid #%d) error = %v, want ErrInvalidToken", i, err)
			}
		}
	}

	if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-1", false)); err != nil {
		t.Fatalf("Authenticate(valid) error = %v", err)
	}
	steps := []struct {
		name        string
		advance     time.Duration
		wantFetches int
	}{
		{"first burst of unknown key ids refetches once", 0, 2},
		{"second burst within the interval does not refetch", 999 * time.Millisecond, 2},
		{"burst after the interval refetches once more", time.Millisecond, 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			burst(t)
			if got := iss.JWKSFetches(); got != s.wantFetches {
				t.Errorf("JWKS fetches = %d, want %d", got, s.wantFetches)
			}
		})
	}
	if got, want := obs.count("shop ok"), 1+3; got != want {
		t.Errorf("observed ok fetches = %d, want %d (the discovery and 3 JWKS)", got, want)
	}
}

func TestAuthenticateUnreachableIssuer(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	ten := &tenant.Tenant{ID: "down", OIDC: iss.OIDC()}
	ten.OIDC.Issuer = closed.URL
	token := iss.TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = closed.URL })

	clk := testenv.NewClock(time.Now())
	transport := &countingTransport{}
	const timeout = 500 * time.Millisecond
	v := newVerifier(clk, auth.Options{HTTPClient: &http.Client{Transport: transport}, Timeout: timeout, FailureBackoff: 5 * time.Second})

	steps := []struct {
		name         string
		advance      time.Duration
		wantRequests int64
	}{
		{"first request tries discovery", 0, 1},
		{"request within the failure backoff answers from memory", 4 * time.Second, 1},
		{"request after the failure backoff tries again", time.Second, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			start := time.Now()
			_, err := v.Authenticate(t.Context(), ten, token)
			if !errors.Is(err, auth.ErrIssuerUnavailable) {
				t.Fatalf("Authenticate() error = %v, want ErrIssuerUnavailable", err)
			}
			// Connection refused is immediate; the margin is for loaded CI machines.
			if d := time.Since(start); d > timeout+5*time.Second {
				t.Errorf("Authenticate() took %v, want less than %v", d, timeout+5*time.Second)
			}
			if got := transport.n.Load(); got != s.wantRequests {
				t.Errorf("requests = %d, want %d", got, s.wantRequests)
			}
		})
	}
}

func TestAuthenticateHangingIssuerDoesNotBlockOtherTenants(t *testing.T) {
	tests := []struct {
		name   string
		hangAt string
	}{
		{"discovery hangs", "/.well-known/openid-configuration"},
		{"first JWKS fetch hangs", "/jwks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := testenv.NewIssuer(t, audience, "roles", "support_admin")
			hanging := newFrontIssuer(t)
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			hanging.route(tt.hangAt, func(w http.ResponseWriter, r *http.Request) {
				select {
				case entered <- struct{}{}:
				default:
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce)
			// The slow tenant's fetch outlives anything the other tenant may need, however
			// loaded the machine.
			v := newVerifier(testenv.NewClock(time.Now()), auth.Options{Timeout: time.Minute})

			slowDone := make(chan error, 1)
			go func() {
				_, err := v.Authenticate(context.Background(), hanging.tenant("slow"), hanging.token(t))
				slowDone <- err
			}()
			select {
			case <-entered:
			case err := <-slowDone:
				t.Fatalf("Authenticate(hanging issuer) = %v before its issuer was reached", err)
			case <-time.After(30 * time.Second):
				t.Fatal("the hanging issuer was not reached within 30s")
			}

			// The slow tenant's fetch is now pending in the hanging handler.
			if _, err := v.Authenticate(t.Context(), tenantOf("shop", good), good.Token(t, "cust-1", false)); err != nil {
				t.Fatalf("Authenticate(other tenant) error = %v, want nil", err)
			}
			select {
			case err := <-slowDone:
				t.Fatalf("Authenticate(hanging issuer) = %v before its issuer answered, want it still pending", err)
			default:
			}

			releaseOnce() // the handler answers an empty body
			if err := <-slowDone; !errors.Is(err, auth.ErrIssuerUnavailable) {
				t.Fatalf("Authenticate(hanging issuer) error = %v, want ErrIssuerUnavailable", err)
			}
		})
	}
}

func TestAuthenticateHangingIssuerTimesOut(t *testing.T) {
	hanging := newFrontIssuer(t)
	hanging.route("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	const timeout = 300 * time.Millisecond
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{Timeout: timeout})
	// Without the Timeout the request would hang until this test's own deadline.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	start := time.Now()
	_, err := v.Authenticate(ctx, hanging.tenant("slow"), hanging.token(t))
	if !errors.Is(err, auth.ErrIssuerUnavailable) {
		t.Fatalf("Authenticate() error = %v, want ErrIssuerUnavailable", err)
	}
	if d := time.Since(start); d > timeout+10*time.Second {
		t.Errorf("Authenticate() took %v, want about the timeout %v", d, timeout)
	}
}

// frontIssuer fronts a devissuer under its own URL, with a JWKS that can be switched off,
// moved, given response headers, and routes that tests add or replace.
type frontIssuer struct {
	*testenv.Issuer
	server       *httptest.Server
	jwksDown     atomic.Bool
	claimsIssuer string      // the issuer its discovery document names; set before use
	jwksHeader   http.Header // added to JWKS responses; set before use

	mu       sync.Mutex
	jwksPath string // the path of the jwks_uri in the discovery document
	routes   map[string]http.HandlerFunc
	hits     map[string]int
}

func newFrontIssuer(t *testing.T) *frontIssuer {
	f := &frontIssuer{
		Issuer:   testenv.NewIssuer(t, audience, "roles", "support_admin"),
		jwksPath: "/jwks",
		routes:   map[string]http.HandlerFunc{},
		hits:     map[string]int{},
	}
	f.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.URL.Path]++
		route, jwksPath := f.routes[r.URL.Path], f.jwksPath
		f.mu.Unlock()
		if route != nil {
			route(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			name := f.claimsIssuer
			if name == "" {
				name = f.server.URL
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": name, "jwks_uri": f.server.URL + jwksPath})
		case "/jwks":
			if f.jwksDown.Load() {
				http.Error(w, "down", http.StatusBadGateway)
				return
			}
			for k, vs := range f.jwksHeader {
				w.Header()[k] = vs
			}
			_ = json.NewEncoder(w).Encode(f.JWKS())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.server.Close)
	return f
}

// route serves path with h instead of the built-in handler, if any.
func (f *frontIssuer) route(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[path] = h
}

// moveJWKS makes the discovery document name path as the jwks_uri.
func (f *frontIssuer) moveJWKS(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksPath = path
}

// requests returns how many requests for path the issuer received.
func (f *frontIssuer) requests(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *frontIssuer) tenant(id string) *tenant.Tenant {
	ten := &tenant.Tenant{ID: id, OIDC: f.OIDC()}
	ten.OIDC.Issuer = f.server.URL
	return ten
}

func (f *frontIssuer) token(t *testing.T) string {
	return f.TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = f.server.URL })
}

func TestAuthenticateJWKSFailures(t *testing.T) {
	f := newFrontIssuer(t)
	clk := testenv.NewClock(time.Now())
	obs := &observer{}
	v := newVerifier(clk, auth.Options{Observer: obs, FailureBackoff: 5 * time.Second, RefetchInterval: 30 * time.Second})
	ten := f.tenant("shop")

	f.jwksDown.Store(true)
	if _, err := v.Authenticate(t.Context(), ten, f.token(t)); !errors.Is(err, auth.ErrIssuerUnavailable) {
		t.Fatalf("Authenticate(JWKS down, no keys yet) error = %v, want ErrIssuerUnavailable", err)
	}
	if _, err := v.Authenticate(t.Context(), ten, f.token(t)); !errors.Is(err, auth.ErrIssuerUnavailable) {
		t.Fatalf("Authenticate(JWKS down, within backoff) error = %v, want ErrIssuerUnavailable", err)
	}
	if got := obs.count("shop error"); got != 1 {
		t.Errorf("observed failed fetches = %d, want 1 (the second request answered from memory)", got)
	}

	f.jwksDown.Store(false)
	clk.Advance(5 * time.Second)
	if _, err := v.Authenticate(t.Context(), ten, f.token(t)); err != nil {
		t.Fatalf("Authenticate(JWKS back) error = %v", err)
	}

	// With keys cached, a failing refetch keeps them in use; an unknown key stays invalid.
	f.jwksDown.Store(true)
	if _, err := f.RotateKey("RS256"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Authenticate(t.Context(), ten, f.token(t)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Authenticate(rotated key, JWKS down) error = %v, want ErrInvalidToken", err)
	}
	cached := f.TokenWith(t, "ES256", func(c map[string]any) { c["iss"] = f.server.URL })
	if _, err := v.Authenticate(t.Context(), ten, cached); err != nil {
		t.Errorf("Authenticate(cached key, JWKS down) error = %v", err)
	}
	if got, want := obs.count("shop error"), 2; got != want {
		t.Errorf("observed failed fetches = %d, want %d", got, want)
	}
	if got, want := obs.count("shop ok"), 1+1; got != want {
		t.Errorf("observed ok fetches = %d, want %d (the discovery and one JWKS)", got, want)
	}
}

func TestAuthenticateDiscoveryNamingAnotherIssuer(t *testing.T) {
	f := newFrontIssuer(t)
	f.claimsIssuer = "https://other.example"
	obs := &observer{}
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{Observer: obs})

	_, err := v.Authenticate(t.Context(), f.tenant("shop"), f.token(t))
	if !errors.Is(err, auth.ErrIssuerUnavailable) {
		t.Fatalf("Authenticate() error = %v, want ErrIssuerUnavailable", err)
	}
	// A failed discovery counts as a failed fetch, which is what the JWKS failure alert watches.
	if got := obs.count("shop error"); got != 1 {
		t.Errorf("observed failed fetches = %d, want 1", got)
	}
}

func TestAuthenticateRejectsPlainHTTPIssuerOutsideLoopback(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	ten := tenantOf("shop", iss)
	ten.OIDC.Issuer = "http://issuer.example"
	token := iss.TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = ten.OIDC.Issuer })
	transport := &countingTransport{}
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{HTTPClient: &http.Client{Transport: transport}})

	if _, err := v.Authenticate(t.Context(), ten, token); !errors.Is(err, auth.ErrIssuerUnavailable) {
		t.Fatalf("Authenticate() error = %v, want ErrIssuerUnavailable", err)
	}
	if got := transport.n.Load(); got != 0 {
		t.Errorf("requests = %d, want 0", got)
	}
}

func TestAuthenticateFollowsReloadedTenant(t *testing.T) {
	before := testenv.NewIssuer(t, audience, "roles", "support_admin")
	after := testenv.NewIssuer(t, audience, "roles", "support_admin")
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{})

	steps := []struct {
		name    string
		issuer  *testenv.Issuer
		token   string
		wantErr error
	}{
		{"token of the first issuer", before, before.Token(t, "cust-1", false), nil},
		{"token of the new issuer after reload", after, after.Token(t, "cust-1", false), nil},
		{"token of the old issuer after reload", after, before.Token(t, "cust-1", false), auth.ErrInvalidToken},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			_, err := v.Authenticate(t.Context(), tenantOf("shop", s.issuer), s.token)
			if !errors.Is(err, s.wantErr) {
				t.Errorf("Authenticate() error = %v, want %v", err, s.wantErr)
			}
		})
	}
}

func TestAuthenticateSharesFirstDiscovery(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{})
	ten := tenantOf("shop", iss)
	token := iss.Token(t, "cust-1", false)

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := v.Authenticate(context.Background(), ten, token); err != nil {
				t.Errorf("Authenticate() error = %v", err)
			}
		})
	}
	wg.Wait()
	if got := iss.JWKSFetches(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1", got)
	}
}

func ExampleVerifier_Authenticate() {
	v := auth.New(auth.Options{Timeout: 2 * time.Second})
	shop := &tenant.Tenant{ID: "shop", OIDC: tenant.OIDC{Issuer: "https://login.shop.example", Audience: "support-chat"}}
	_, err := v.Authenticate(context.Background(), shop, "garbage")
	fmt.Println(err, errors.Is(err, auth.ErrInvalidToken))
	// Output: malformed token or disallowed algorithm: invalid token true
}

// TestCachedTokensFollowTheRoleMapping: a token verified and cached under one admin_values,
// admin_claim or name_claim maps anew once the tenant's file changes them.
func TestCachedTokensFollowTheRoleMapping(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{})
	token := iss.Token(t, "admin-1", true)
	ten := tenantOf("shop", iss)
	for range 2 { // verified, then from the cache
		if p, err := v.Authenticate(t.Context(), ten, token); err != nil || !p.Admin {
			t.Fatalf("Authenticate = %+v, %v; want an admin", p, err)
		}
	}
	for name, change := range map[string]func(o *tenant.OIDC){
		"admin_values": func(o *tenant.OIDC) { o.AdminValues = []string{"someone_else"} },
		"admin_claim":  func(o *tenant.OIDC) { o.AdminClaim = "groups" },
	} {
		reloaded := tenantOf("shop", iss)
		change(&reloaded.OIDC)
		if p, err := v.Authenticate(t.Context(), reloaded, token); err != nil || p.Admin {
			t.Errorf("after %s changed: Authenticate = %+v, %v; want a customer", name, p, err)
		}
	}
	if p, err := v.Authenticate(t.Context(), ten, token); err != nil || !p.Admin {
		t.Errorf("the first mapping again: Authenticate = %+v, %v; want an admin", p, err)
	}
}

func TestCachedTokensStopWhenTheirKeyIsDropped(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	clk := testenv.NewClock(time.Now())
	v := newVerifier(clk, auth.Options{RefetchInterval: time.Millisecond})
	ten := tenantOf("shop", iss)
	old := iss.Token(t, "cust-1", false)
	oldKid := iss.KeyID("RS256")
	for range 2 { // verified, then from the cache
		if p, err := v.Authenticate(t.Context(), ten, old); err != nil || p.Subject != "cust-1" {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}
	}
	// The same token presented for another tenant with the same issuer is not taken from the
	// cache of the first.
	other := tenantOf("other", iss)
	other.OIDC.Audience = "another-audience"
	if _, err := v.Authenticate(t.Context(), other, old); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("the token at a tenant with another audience: %v, want ErrInvalidToken", err)
	}

	// The issuer rotates and drops the old key; a token of the new key makes the verifier
	// refetch the key set, which no longer has the old key: the cached token stops working.
	if _, err := iss.RotateKey("RS256"); err != nil {
		t.Fatal(err)
	}
	if err := iss.DropKey(oldKid); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := v.Authenticate(t.Context(), ten, iss.Token(t, "cust-2", false)); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Authenticate(t.Context(), ten, old); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("a cached token of a dropped key: %v, want ErrInvalidToken", err)
	}
}
