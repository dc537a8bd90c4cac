package netguard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/supportchat/supportchat/internal/netguard"
)

func TestPublic(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700:4700::1111": true, "::ffff:8.8.8.8": true,
		"0.0.0.0": false, "0.1.2.3": false, "127.0.0.1": false, "127.0.0.2": false, "10.1.2.3": false,
		"172.16.0.1": false, "192.168.1.1": false, "100.64.0.1": false, "169.254.169.254": false,
		"224.0.0.1": false, "255.255.255.255": false, "198.18.0.1": false,
		"::": false, "::1": false, "fe80::1": false, "fc00::1": false, "fd00:ec2::254": false,
		"ff02::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:169.254.169.254": false,
		"64:ff9b::a00:1": false, "2002:a00:1::": false,
	} {
		if got := netguard.Public(netip.MustParseAddr(addr)); got != public {
			t.Errorf("Public(%s) = %v, want %v", addr, got, public)
		}
	}
}

// TestTransportChecksEveryConnection connects only to a listener on loopback: the checks refuse
// before connecting, whatever the URL's spelling, unless loopback is allowed.
func TestTransportChecksEveryConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	get := func(ctx context.Context, g *netguard.Guard, u string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: g.Transport()}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	ctx := context.Background()
	closed := netguard.New(nil)
	for _, u := range []string{srv.URL, "http://localhost" + port, "http://0.0.0.0" + port, "http://[::ffff:127.0.0.1]" + port} {
		if err := get(ctx, closed, u); !errors.Is(err, netguard.ErrForbidden) {
			t.Errorf("GET %s = %v, want ErrForbidden", u, err)
		}
	}
	if err := get(netguard.Allow(ctx, netguard.Loopback...), closed, srv.URL); err != nil {
		t.Errorf("GET %s allowed loopback by the request: %v", srv.URL, err)
	}
	if err := get(ctx, netguard.New(netguard.Loopback), srv.URL); err != nil {
		t.Errorf("GET %s allowed loopback by the operator: %v", srv.URL, err)
	}
	if err := get(ctx, netguard.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}), srv.URL); !errors.Is(err, netguard.ErrForbidden) {
		t.Errorf("GET %s with only 10.0.0.0/8 allowed = %v, want ErrForbidden", srv.URL, err)
	}
}
