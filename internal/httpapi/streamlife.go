package httpapi

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/chat"
)

// What ends an event stream apart from its events: its token no longer being accepted, its
// lifetime running out, and its client going away.
const (
	// defaultStreamRecheck is how often an open stream verifies its token again. With the
	// verifier's fetch timeout on top, a stream ends within 15 s of its token no longer being
	// accepted (docs/SECURITY.md "Open event streams").
	defaultStreamRecheck = 10 * time.Second
	// recheckTimeout bounds one verification of a stream's token: a fetch of the issuer's key
	// set it may cause is bounded by the verifier's own, shorter, timeout.
	recheckTimeout = 30 * time.Second
)

// errCallerChanged is why a stream ends whose token now speaks for another caller: the tenant's
// admin claim or values changed, so an admin became a customer or the other way round.
var errCallerChanged = errors.New("the token now grants another role")

// callerOf returns the caller a verified token speaks for.
func callerOf(p auth.Principal) chat.Caller {
	caller := chat.Caller{ID: p.Subject, Role: chat.RoleCustomer, Name: p.Name, Expires: p.Expires}
	if p.Admin {
		caller.Role = chat.RoleAdmin
	}
	return caller
}

// reauthorize verifies the stream's token again, as the middleware would for a new request
// now: against the tenant as loaded now (it may have been removed, or its identity settings
// changed) and the issuer's keys as the verifier holds them now (a dropped key fails once the
// key set is fetched again). It returns nil while the token still speaks for the same caller
// with the same role. The verifier's token cache is keyed by the tenant's identity settings
// and the key set, so a check that finds nothing changed costs a hash and a map lookup.
func (st *stream) reauthorize(ctx context.Context) error {
	t, err := st.tenants.Get(st.tenantID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, recheckTimeout)
	defer cancel()
	p, err := st.auth.Authenticate(ctx, t, st.token)
	if err != nil {
		return err
	}
	if now := callerOf(p); now.ID != st.caller.ID || now.Role != st.caller.Role {
		return errCallerChanged
	}
	return nil
}

// deadline returns when the stream must end at the latest, and why: at its token's exp, or
// st.maxAge after it started, the longest the verifier trusts an issuer's keys without fetching
// them again, so that every stream is authenticated afresh at least that often (the client
// reconnects with its Last-Event-ID and loses nothing).
//
// The lifetime is shortened by up to a tenth at random, so that streams opened together (after
// a deploy, or Redis coming back) do not all reconnect together again at every max age.
func (st *stream) deadline(started time.Time) (time.Time, string) {
	life := st.maxAge - time.Duration(rand.Int64N(int64(st.maxAge/10)+1)) //nolint:gosec // jitter, not a secret
	end, why := started.Add(life), "the stream reached its longest lifetime; reconnect"
	if exp := st.caller.Expires; !exp.IsZero() && exp.Before(end) {
		end, why = exp, "the token expired"
	}
	return end, why
}

// clientGone returns a channel closed when the client of a hijacked connection closes it (or
// sends anything: an event stream's client sends nothing after its request). Without it a
// client that left would be noticed only by a failed write, a keep-alive or two later, and its
// stream would hold its slot that long. The watcher ends when the connection is closed.
func clientGone(conn net.Conn) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		var b [1]byte
		_, _ = conn.Read(b[:])
	}()
	return gone
}
