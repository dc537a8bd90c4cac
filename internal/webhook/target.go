package webhook

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/netguard"
)

// Targets decides which URLs endpoints may have: https to public addresses, and the networks
// an operator allows (CHAT_WEBHOOK_ALLOWED_NETWORKS), which plain http may reach too. The
// addresses a name resolves to are checked again at every connection (Sender).
type Targets struct {
	Allowed []netip.Prefix
}

// Check returns an Invalid error naming field "url" unless raw may be an endpoint's URL.
func (t Targets) Check(raw string) error {
	bad := func(format string, args ...any) error { return chat.FieldError("url", format, args...) }
	if len(raw) > MaxURL {
		return bad("must be at most %d bytes", MaxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return bad("must be an absolute https URL")
	}
	if u.User != nil {
		return bad("must not carry user information")
	}
	if u.Hostname() == "" {
		return bad("must name a host")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("must not carry a fragment")
	}
	addr, literal := hostAddr(u.Hostname())
	switch u.Scheme {
	case "https":
		if literal && !netguard.Public(addr) && !t.allows(addr) {
			return bad("must not point at a loopback, private, link-local or reserved address")
		}
	case "http":
		if len(t.Allowed) == 0 || literal && !t.allows(addr) {
			return bad("must use https; plain http reaches only the networks the operator allows")
		}
	default:
		return bad("must use https")
	}
	return nil
}

// allows reports whether a is in an allowed network.
func (t Targets) allows(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.Allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hostAddr returns the address a URL's host spells, if it is an IP literal.
func hostAddr(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return a, err == nil
}
