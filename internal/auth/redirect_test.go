package auth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/testenv"
)

// issuerServer serves an issuer's discovery document and JWKS at the paths tests choose, and
// counts the requests it receives.
type issuerServer struct {
	keys     *testenv.Issuer
	issuer   string // the issuer its discovery document names
	jwksURI  string
	requests atomic.Int64
}

func (s *issuerServer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	s.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"issuer": s.issuer, "jwks_uri": s.jwksURI})
}

func (s *issuerServer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	s.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.keys.JWKS())
}

// redirectTo answers every request with a redirect to target.
func redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}
}

// tenantAt returns a tenant trusting issuer with keys' settings, and a valid token for it.
func tenantAt(t *testing.T, keys *testenv.Issuer, issuer string) (*tenant.Tenant, string) {
	t.Helper()
	ten := &tenant.Tenant{ID: "shop", OIDC: keys.OIDC()}
	ten.OIDC.Issuer = issuer
	return ten, keys.TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = issuer })
}

func TestAuthenticateRefusesRedirectsToAnotherOrigin(t *testing.T) {
	const discovery = "/.well-known/openid-configuration"
	clients := []struct {
		name   string
		client func() *http.Client
	}{
		{"the verifier's own client", func() *http.Client { return nil }},
		{"a client of the caller", func() *http.Client { return &http.Client{} }},
	}
	// Each setup routes front, the tenant's issuer, to redirect one fetch to dest, served by
	// target (another loopback server) or by front under another path. dest would answer it.
	tests := []struct {
		name  string
		setup func(front, target *http.ServeMux, frontURL, targetURL string, dest *issuerServer)
	}{
		{"discovery redirected to another host", func(front, target *http.ServeMux, frontURL, targetURL string, dest *issuerServer) {
			front.Handle(discovery, redirectTo(targetURL+discovery))
			target.HandleFunc(discovery, dest.serveDiscovery)
			front.HandleFunc("/jwks", (&issuerServer{keys: dest.keys}).serveJWKS)
		}},
		{"JWKS redirected to another host", func(front, target *http.ServeMux, frontURL, targetURL string, dest *issuerServer) {
			front.HandleFunc(discovery, (&issuerServer{issuer: dest.issuer, jwksURI: dest.jwksURI}).serveDiscovery)
			front.Handle("/jwks", redirectTo(targetURL+"/jwks"))
			target.HandleFunc("/jwks", dest.serveJWKS)
		}},
		{"discovery redirected within the same plain http origin", func(front, target *http.ServeMux, frontURL, targetURL string, dest *issuerServer) {
			front.Handle(discovery, redirectTo(frontURL+"/moved"+discovery))
			front.HandleFunc("/moved"+discovery, dest.serveDiscovery)
			front.HandleFunc("/jwks", (&issuerServer{keys: dest.keys}).serveJWKS)
		}},
	}
	for _, c := range clients {
		for _, tt := range tests {
			t.Run(c.name+": "+tt.name, func(t *testing.T) {
				keys := testenv.NewIssuer(t, audience, "roles", "support_admin")
				frontMux, targetMux := http.NewServeMux(), http.NewServeMux()
				front := httptest.NewServer(frontMux)
				t.Cleanup(front.Close)
				target := httptest.NewServer(targetMux)
				t.Cleanup(target.Close)
				dest := &issuerServer{keys: keys, issuer: front.URL, jwksURI: front.URL + "/jwks"}
				tt.setup(frontMux, targetMux, front.URL, target.URL, dest)
				ten, token := tenantAt(t, keys, front.URL)
				v := newVerifier(testenv.NewClock(time.Now()), auth.Options{HTTPClient: c.client()})

				if _, err := v.Authenticate(t.Context(), ten, token); !errors.Is(err, auth.ErrIssuerUnavailable) {
					t.Errorf("Authenticate() error = %v, want ErrIssuerUnavailable", err)
				}
				if got := dest.requests.Load(); got != 0 {
					t.Errorf("requests at the redirect's destination = %d, want 0", got)
				}
			})
		}
	}
}

func TestAuthenticateFollowsRedirectsWithinOneHTTPSOrigin(t *testing.T) {
	refuse := func(*http.Request, []*http.Request) error { return errors.New("the caller's policy refuses") }
	tests := []struct {
		name          string
		elsewhere     bool                                       // discovery redirects to another https host
		checkRedirect func(*http.Request, []*http.Request) error // the caller's policy
		wantErr       error
		wantRequests  int64 // at the redirects' destinations
	}{
		{"same scheme, host and port", false, nil, nil, 2},
		{"same origin, but refused by the caller's own policy", false, refuse, auth.ErrIssuerUnavailable, 0},
		{"to another https host", true, nil, auth.ErrIssuerUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := testenv.NewIssuer(t, audience, "roles", "support_admin")
			mux := http.NewServeMux()
			srv := httptest.NewTLSServer(mux) // its client sends example.com and its subdomains here
			t.Cleanup(srv.Close)
			dest := &issuerServer{keys: keys, issuer: srv.URL, jwksURI: srv.URL + "/jwks"}
			moved := "/v2/openid-configuration"
			if tt.elsewhere {
				moved = "https://login.example.com" + moved
			}
			mux.Handle("/.well-known/openid-configuration", redirectTo(moved))
			mux.HandleFunc("/v2/openid-configuration", dest.serveDiscovery)
			mux.Handle("/jwks", redirectTo(srv.URL+"/v2/jwks"))
			mux.HandleFunc("/v2/jwks", dest.serveJWKS)
			ten, token := tenantAt(t, keys, srv.URL)
			client := srv.Client()
			client.CheckRedirect = tt.checkRedirect
			v := newVerifier(testenv.NewClock(time.Now()), auth.Options{HTTPClient: client})

			if _, err := v.Authenticate(t.Context(), ten, token); !errors.Is(err, tt.wantErr) {
				t.Errorf("Authenticate() error = %v, want %v", err, tt.wantErr)
			}
			if got := dest.requests.Load(); got != tt.wantRequests {
				t.Errorf("requests at the redirects' destinations = %d, want %d", got, tt.wantRequests)
			}
			if tt.checkRedirect == nil && client.CheckRedirect != nil {
				t.Error("the caller's client was changed: its CheckRedirect is set")
			}
		})
	}
}

func TestAuthenticateRefusesLoopbackJWKSOfARemoteIssuer(t *testing.T) {
	// The https issuer is named login.example.com; the TLS test server's client sends it to the
	// server on loopback, so nothing leaves the machine.
	const issuer = "https://login.example.com"
	tests := []struct {
		name    string
		jwksURI func(tlsURL, plainURL string) string
		wantErr error
	}{
		{"an https jwks_uri of the issuer", func(string, string) string { return issuer + "/jwks" }, nil},
		{"a plain http jwks_uri on loopback", func(_, plainURL string) string { return plainURL + "/jwks" }, auth.ErrIssuerUnavailable},
		{"an https jwks_uri on loopback", func(tlsURL, _ string) string { return tlsURL + "/jwks" }, auth.ErrIssuerUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := testenv.NewIssuer(t, audience, "roles", "support_admin")
			local := &issuerServer{keys: keys}
			plain := httptest.NewServer(http.HandlerFunc(local.serveJWKS))
			t.Cleanup(plain.Close)
			mux := http.NewServeMux()
			srv := httptest.NewTLSServer(mux)
			t.Cleanup(srv.Close)
			remote := &issuerServer{keys: keys, issuer: issuer, jwksURI: tt.jwksURI(srv.URL, plain.URL)}
			mux.HandleFunc("/.well-known/openid-configuration", remote.serveDiscovery)
			mux.HandleFunc("/jwks", (&issuerServer{keys: keys}).serveJWKS)
			ten, token := tenantAt(t, keys, issuer)
			v := newVerifier(testenv.NewClock(time.Now()), auth.Options{HTTPClient: srv.Client()})

			if _, err := v.Authenticate(t.Context(), ten, token); !errors.Is(err, tt.wantErr) {
				t.Errorf("Authenticate() error = %v, want %v", err, tt.wantErr)
			}
			if got := local.requests.Load(); got != 0 {
				t.Errorf("requests at the plain http JWKS on loopback = %d, want 0", got)
			}
		})
	}
}
