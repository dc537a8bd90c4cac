package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/supportchat/supportchat/internal/netguard"
)

// TestFetchesReachLoopbackOnlyForALoopbackIssuer: through the service's checked transport, a
// document on loopback is fetched for an issuer configured on loopback, and refused, before
// connecting, for any other issuer (whose discovery document could name a local service).
func TestFetchesReachLoopbackOnlyForALoopbackIssuer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer srv.Close()
	v := New(Options{HTTPClient: &http.Client{Transport: netguard.New(nil).Transport()}})
	var doc map[string]any
	if _, err := v.fetchJSON(t.Context(), srv.URL, srv.URL+"/jwks", &doc); err != nil {
		t.Errorf("fetch from loopback for a loopback issuer: %v", err)
	}
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, u := range []string{srv.URL + "/jwks", "http://0.0.0.0" + port + "/jwks", "http://[::ffff:127.0.0.1]" + port + "/jwks"} {
		if _, err := v.fetchJSON(t.Context(), "https://issuer.example", u, &doc); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("fetch of %s for a remote issuer: %v, want ErrForbidden", u, err)
		}
	}
}
