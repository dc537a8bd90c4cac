package auth

import (
	"net/http"
	"net/url"
	"testing"
)

// These tables check addresses only: no request is made, so they may name hosts outside loopback.

func TestCheckRedirect(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		hops     int // requests made so far
		ok       bool
	}{
		{"same https origin", "https://login.example/a", "https://login.example/b", 1, true},
		{"same https origin, default port spelled out", "https://login.example/a", "https://login.example:443/b", 1, true},
		{"same https origin, host in other case", "https://login.example/a", "https://LOGIN.example/b", 1, true},
		{"another https host", "https://login.example/a", "https://evil.example/a", 1, false},
		{"another https port", "https://login.example/a", "https://login.example:8443/a", 1, false},
		{"a subdomain", "https://example.com/a", "https://login.example.com/a", 1, false},
		{"https to plain http on the same host", "https://login.example/a", "http://login.example/a", 1, false},
		{"plain http on loopback to the same origin", "http://127.0.0.1:5556/a", "http://127.0.0.1:5556/b", 1, false},
		{"plain http to https on the same host", "http://login.example/a", "https://login.example/a", 1, false},
		{"https to loopback", "https://login.example/a", "https://127.0.0.1/a", 1, false},
		{"the fifth redirect of one fetch", "https://login.example/a", "https://login.example/b", maxRedirects, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			via := make([]*http.Request, tt.hops)
			for i := range via {
				via[i] = &http.Request{URL: mustParse(t, tt.from)}
			}
			err := checkRedirect(mustParse(t, tt.to), via)
			if (err == nil) != tt.ok {
				t.Errorf("checkRedirect(%s after %d requests from %s) = %v, want ok %v", tt.to, tt.hops, tt.from, err, tt.ok)
			}
		})
	}
}

func TestFetchClientLeavesTheCallersClientAlone(t *testing.T) {
	var asked int
	caller := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { asked++; return nil }}
	before := *caller
	c := fetchClient(caller, 0)
	if c == caller {
		t.Fatal("fetchClient returned the caller's client, want a copy")
	}
	from := &http.Request{URL: mustParse(t, "https://login.example/a")}
	if err := c.CheckRedirect(&http.Request{URL: mustParse(t, "https://evil.example/")}, []*http.Request{from}); err == nil {
		t.Error("the copy followed a redirect to another origin")
	}
	if err := c.CheckRedirect(&http.Request{URL: mustParse(t, "https://login.example/b")}, []*http.Request{from}); err != nil {
		t.Errorf("the copy refused a same-origin redirect: %v", err)
	}
	if asked != 1 {
		t.Errorf("the caller's CheckRedirect was asked %d times, want 1 (for the allowed redirect)", asked)
	}
	if caller.Transport != before.Transport || caller.Timeout != before.Timeout || caller.Jar != before.Jar {
		t.Error("the caller's client was changed")
	}
}

func TestCheckJWKSURL(t *testing.T) {
	tests := []struct {
		name, issuer, jwksURI string
		ok                    bool
	}{
		{"https on the issuer's host", "https://login.example", "https://login.example/jwks", true},
		{"https on another host", "https://login.example", "https://keys.example/jwks", true},
		{"plain http outside loopback", "https://login.example", "http://keys.example/jwks", false},
		{"plain http on loopback for a remote issuer", "https://login.example", "http://127.0.0.1:8080/jwks", false},
		{"plain http on localhost for a remote issuer", "https://login.example", "http://localhost/jwks", false},
		{"https on loopback for a remote issuer", "https://login.example", "https://[::1]/jwks", false},
		{"plain http on loopback for a loopback issuer", "http://127.0.0.1:5556", "http://127.0.0.1:5557/jwks", true},
		{"plain http on loopback for a localhost issuer", "http://localhost:5556", "http://127.0.0.1:5556/jwks", true},
		{"another scheme", "https://login.example", "ftp://login.example/jwks", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkJWKSURL(tt.issuer, tt.jwksURI)
			if (err == nil) != tt.ok {
				t.Errorf("checkJWKSURL(%s, %s) = %v, want ok %v", tt.issuer, tt.jwksURI, err, tt.ok)
			}
		})
	}
}

func mustParse(tb testing.TB, raw string) *url.URL {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
