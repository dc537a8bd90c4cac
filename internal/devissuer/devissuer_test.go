package devissuer_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/devissuer"
	"github.com/supportchat/supportchat/internal/tenant"
)

func mustIssuer(t *testing.T, o devissuer.Options) *devissuer.Issuer {
	t.Helper()
	iss, err := devissuer.New(o)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	t.Cleanup(func() {
		if err := iss.Close(); err != nil {
			t.Errorf("Close() error = %v", err)
		}
	})
	return iss
}

func getJSON(t *testing.T, u string, dst any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	iss := mustIssuer(t, devissuer.Options{})
	if !strings.HasPrefix(iss.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:<port>", iss.URL())
	}

	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Token   string   `json:"token_endpoint"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	getJSON(t, iss.URL()+"/.well-known/openid-configuration", &doc)
	if doc.Issuer != iss.URL() || doc.JWKSURI != iss.URL()+"/jwks" || doc.Token != iss.URL()+"/token" || !slices.Equal(doc.Algs, []string{"RS256", "ES256"}) {
		t.Errorf("discovery document = %+v", doc)
	}

	kid, err := iss.RotateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Alg string `json:"alg"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	getJSON(t, iss.URL()+"/jwks", &set)
	var got []string
	for _, k := range set.Keys {
		if k.D != "" {
			t.Errorf("JWKS publishes private key %s", k.Kid)
		}
		got = append(got, k.Alg+" "+k.Kty)
	}
	if want := []string{"RS256 RSA", "ES256 EC", "ES256 EC"}; !slices.Equal(got, want) {
		t.Errorf("JWKS keys = %v, want %v", got, want)
	}
	if set.Keys[2].Kid != kid || iss.KeyID("ES256") != kid {
		t.Errorf("rotated key id = %q, JWKS last kid = %q, KeyID(ES256) = %q", kid, set.Keys[2].Kid, iss.KeyID("ES256"))
	}
	if got := iss.JWKSFetches(); got != 1 {
		t.Errorf("JWKSFetches() = %d, want 1", got)
	}
}

func TestTokenEndpoint(t *testing.T) {
	iss := mustIssuer(t, devissuer.Options{Audience: "shop-app", AdminClaim: "realm_access.roles", AdminValue: "chat-agent", NameClaim: "preferred_username"})
	ten := &tenant.Tenant{ID: "shop", OIDC: tenant.OIDC{
		Issuer: iss.URL(), Audience: "shop-app", AdminClaim: "realm_access.roles",
		AdminValues: []string{"chat-agent"}, NameClaim: "preferred_username",
	}}
	v := auth.New(auth.Options{})

	tests := []struct {
		name string
		form url.Values
		want auth.Principal
	}{
		{"customer", url.Values{"sub": {"cust-1"}, "role": {"customer"}, "name": {"Ada"}}, auth.Principal{Subject: "cust-1", Name: "Ada"}},
		{"customer by default", url.Values{"sub": {"cust-2"}}, auth.Principal{Subject: "cust-2"}},
		{"admin", url.Values{"sub": {"admin-1"}, "role": {"admin"}, "name": {"Grace"}}, auth.Principal{Subject: "admin-1", Name: "Grace", Admin: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.PostForm(iss.URL()+"/token", tt.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || body.TokenType != "Bearer" || body.ExpiresIn != 3600 {
				t.Fatalf("POST /token = %d %+v", resp.StatusCode, body)
			}
			got, err := v.Authenticate(t.Context(), ten, body.AccessToken)
			if err != nil {
				t.Fatalf("Authenticate() error = %v", err)
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

func TestTokenEndpointRejects(t *testing.T) {
	iss := mustIssuer(t, devissuer.Options{})
	tests := []struct {
		name   string
		method string
		query  string
		want   int
	}{
		{"no subject", http.MethodPost, "role=admin", http.StatusBadRequest},
		{"unknown role", http.MethodPost, "sub=x&role=root", http.StatusBadRequest},
		{"GET", http.MethodGet, "sub=x", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, iss.URL()+"/token?"+tt.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s /token?%s = %d, want %d", tt.method, tt.query, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestUnsupportedAlgorithms(t *testing.T) {
	iss := mustIssuer(t, devissuer.Options{})
	if _, err := iss.RotateKey("HS256"); err == nil {
		t.Error("RotateKey(HS256) error = nil, want an error")
	}
	if _, err := iss.Sign("PS256", map[string]any{"sub": "x"}); err == nil {
		t.Error("Sign(PS256) error = nil, want an error")
	}
}
