package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDemoTokensOnlyForRebindSafeHosts: a page of another site that rebinds its DNS name to
// this machine sends that name as Host, and gets no token; localhost and IP addresses do.
func TestDemoTokensOnlyForRebindSafeHosts(t *testing.T) {
	s := &stack{}
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
	h := s.pages(api)
	for host, refused := range map[string]bool{
		"evil.example":        true,
		"evil.example:8080":   true,
		"localhost.evil.test": true,
		"localhost:8080":      false,
		"LOCALHOST.":          false,
		"127.0.0.1:8080":      false,
		"[::1]:8080":          false,
		"192.168.1.20:8080":   false, // an address is not a name anyone can rebind
	} {
		req := httptest.NewRequest("POST", "/demo/token", strings.NewReader(`{"tenant":"none","role":"admin"}`))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Code == http.StatusForbidden; got != refused {
			t.Errorf("Host %q: status %d, refused %v, want refused %v", host, rec.Code, got, refused)
		}
	}
}
