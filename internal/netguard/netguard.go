// Package netguard checks, at connect time, the addresses the service's outbound fetches reach
// (the tenants' issuers, webhook endpoints): a name is resolved, and every address it resolves to is
// checked as the connection is made, so neither a URL's spelling (0.0.0.0, 127.1, [::],
// ::ffff:10.0.0.1) nor a DNS name that resolves, or is rebound, to an internal address gets
// past it. Only public unicast addresses are reachable, plus the networks an operator allows
// and those a request is allowed (Allow).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// ErrForbidden is a connection refused because of its address.
var ErrForbidden = errors.New("address not allowed for outbound fetches")

// notPublic are the ranges no outbound fetch reaches unless allowed: this host, private and
// shared networks, link-local (cloud metadata at 169.254.169.254 and fd00:ec2::254 included),
// multicast, and the reserved and documentation ranges. IPv4-mapped IPv6 addresses are checked
// as the IPv4 address they map.
var notPublic = prefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32",
	"2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

// Loopback are the loopback networks, for Allow.
var Loopback = prefixes("127.0.0.0/8", "::1/128")

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// Public reports whether a is a public unicast address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	return !slices.ContainsFunc(notPublic, func(p netip.Prefix) bool { return p.Contains(a) })
}

// Guard checks the addresses of outbound connections.
type Guard struct {
	allowed []netip.Prefix
	// onlyAllowed refuses public addresses too (NewWithin).
	onlyAllowed bool
}

// New returns a Guard that also lets connections reach allowed (an operator's in-cluster
// issuer, say).
func New(allowed []netip.Prefix) *Guard { return &Guard{allowed: slices.Clone(allowed)} }

// NewWithin returns a Guard that lets connections reach the allowed networks and nothing else,
// not even public addresses: for plain http, which must not cross the internet.
func NewWithin(allowed []netip.Prefix) *Guard {
	return &Guard{allowed: slices.Clone(allowed), onlyAllowed: true}
}

type allowKey struct{}

// Allow returns ctx allowing the connections made under it to reach the networks p too: a
// tenant whose configured issuer is on loopback may be fetched from loopback.
func Allow(ctx context.Context, p ...netip.Prefix) context.Context {
	prev, _ := ctx.Value(allowKey{}).([]netip.Prefix)
	return context.WithValue(ctx, allowKey{}, append(slices.Clone(prev), p...))
}

// Check returns an error matching ErrForbidden unless the connection to address (host:port,
// resolved) may be made under ctx.
func (g *Guard) Check(ctx context.Context, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not an address", ErrForbidden, address)
	}
	a := ap.Addr().Unmap()
	if Public(a) && !g.onlyAllowed {
		return nil
	}
	extra, _ := ctx.Value(allowKey{}).([]netip.Prefix)
	for _, p := range append(slices.Clone(g.allowed), extra...) {
		if p.Contains(a) {
			return nil
		}
	}
	if g.onlyAllowed {
		return fmt.Errorf("%w: %s is not in an allowed network", ErrForbidden, a)
	}
	return fmt.Errorf("%w: %s is not a public address", ErrForbidden, a)
}

// Transport returns an HTTP transport like http.DefaultTransport whose every connection is
// checked by g as it is made, after name resolution. It uses no proxy: a proxy would make the
// proxy's address the one checked. Requests whose context carries allowances (Allow) get a
// connection of their own, never kept: a pooled connection is not dialled, and so not checked,
// again, and must not carry one request's allowance over to another.
func (g *Guard) Transport() http.RoundTripper {
	return &transport{strict: g.transport(false), allowed: g.transport(true)}
}

func (g *Guard) transport(allowed bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DisableKeepAlives = allowed
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		ControlContext: func(ctx context.Context, _, address string, _ syscall.RawConn) error {
			return g.Check(ctx, address)
		},
	}
	t.DialContext = d.DialContext
	return t
}

// transport sends a request through strict, or through allowed when its context carries
// allowances.
type transport struct {
	strict, allowed *http.Transport
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if extra, _ := r.Context().Value(allowKey{}).([]netip.Prefix); len(extra) > 0 {
		return t.allowed.RoundTrip(r)
	}
	return t.strict.RoundTrip(r)
}
