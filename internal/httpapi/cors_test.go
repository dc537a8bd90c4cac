package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// preflight sends a CORS preflight for a POST with the Authorization header, as a browser does
// before a storefront page's script calls the API, and returns the answer.
func (s *stack) preflight(t *testing.T, origin, host string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, s.srv.URL+"/api/v1/chat/start", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-tenant-id, idempotency-key")
	if host != "" {
		req.Host = host
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCORSPreflight(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name, origin, host string
		allowed            bool
	}{
		{"an origin demo-shop allows", "https://www.demo-shop.example", "", true},
		{"an origin demo-shop allows, on demo-shop's host", "https://www.demo-shop.example", "support.demo-shop.example", true},
		{"an origin no tenant allows", "https://evil.example", "", false},
		{"a lookalike origin", "https://www.demo-shop.example.evil.example", "", false},
		{"the allowed host over http", "http://www.demo-shop.example", "", false},
		{"the string null", "null", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.preflight(t, tt.origin, tt.host)
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status = %d, want 204", resp.StatusCode)
			}
			got := resp.Header.Get("Access-Control-Allow-Origin")
			if !tt.allowed {
				if got != "" || resp.Header.Get("Access-Control-Allow-Headers") != "" {
					t.Fatalf("Access-Control-Allow-Origin = %q, headers %q; want no CORS headers", got, resp.Header.Get("Access-Control-Allow-Headers"))
				}
				return
			}
			if got != tt.origin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.origin)
			}
			if h := resp.Header.Get("Access-Control-Allow-Headers"); h == "" || !containsToken(h, "Authorization") || !containsToken(h, "X-Tenant-ID") {
				t.Errorf("Access-Control-Allow-Headers = %q, want Authorization and X-Tenant-ID", h)
			}
			if m := resp.Header.Get("Access-Control-Allow-Methods"); !containsToken(m, "POST") || !containsToken(m, "PATCH") {
				t.Errorf("Access-Control-Allow-Methods = %q, want POST and PATCH", m)
			}
			if c := resp.Header.Get("Access-Control-Allow-Credentials"); c != "" {
				t.Errorf("Access-Control-Allow-Credentials = %q, want none: cookies are never allowed", c)
			}
		})
	}

	t.Run("a Host of a tenant that does not allow the origin", func(t *testing.T) {
		// acme-outdoor has no hosts in the test stack; demo-shop's Host with an origin that only
		// another tenant could allow must not pass. Here no tenant allows it at all.
		resp := s.preflight(t, "https://shop.acme-outdoor.example", "support.demo-shop.example")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
		}
	})
}

func TestCORSOnRequests(t *testing.T) {
	s := newStack(t)
	token := s.issuers[shop].Token(t, "cust-1", false)
	outdoorToken := s.issuers[outdoor].Token(t, "cust-1", false)
	tests := []struct {
		name    string
		headers map[string]string
		status  int
		allowed bool
	}{
		{"demo-shop's origin at demo-shop", map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + token}, http.StatusOK, true},
		{"demo-shop's origin reading a 401 at demo-shop", map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer expired"}, http.StatusUnauthorized, true},
		{"demo-shop's origin at acme-outdoor, which does not allow it", map[string]string{"X-Tenant-ID": outdoor, "Authorization": "Bearer " + outdoorToken}, http.StatusOK, false},
		{"demo-shop's origin with an unknown tenant", map[string]string{"X-Tenant-ID": "nobody", "Authorization": "Bearer " + token}, http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Origin": "https://www.demo-shop.example"}
			for k, v := range tt.headers {
				h[k] = v
			}
			r := s.request("GET", "/api/v1/chat/list", nil, h)
			if r.Status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			got := r.Header.Get("Access-Control-Allow-Origin")
			switch {
			case tt.allowed && got != "https://www.demo-shop.example":
				t.Errorf("Access-Control-Allow-Origin = %q, want the origin", got)
			case tt.allowed && !containsToken(r.Header.Get("Access-Control-Expose-Headers"), "Location"):
				t.Errorf("Access-Control-Expose-Headers = %q, want Location among them", r.Header.Get("Access-Control-Expose-Headers"))
			case !tt.allowed && got != "":
				t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
			}
			if r.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("Access-Control-Allow-Credentials is set; cookies are never allowed")
			}
		})
	}
}

// containsToken reports whether the comma-separated header value list holds token
// (case-insensitive).
func containsToken(list, token string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(f), token) {
			return true
		}
	}
	return false
}

// TestCORSOnTheEventStream checks the event stream, which writes its own response head on a
// connection taken from net/http, keeps the CORS headers: a widget on a storefront's own
// domain reads live events with fetch, and the browser hides a response without them.
func TestCORSOnTheEventStream(t *testing.T) {
	s := newStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+"/api/v1/chat/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "https://www.demo-shop.example")
	req.Header.Set("X-Tenant-ID", shop)
	req.Header.Set("Authorization", "Bearer "+s.issuers[shop].Token(t, "cust-1", false))
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /chat/events = %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://www.demo-shop.example" {
		t.Errorf("Access-Control-Allow-Origin = %q, want the storefront's origin", got)
	}
	if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("headers %v: want an X-Request-ID and never Access-Control-Allow-Credentials", resp.Header)
	}
}
