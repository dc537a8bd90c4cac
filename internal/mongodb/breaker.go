package mongodb

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// DefaultOpenFor is how long operations fail fast after one found no server, when
// Options.OpenFor is zero.
const DefaultOpenFor = time.Second

// ErrOpen is the cause of the Unavailable error the store returns without contacting MongoDB
// while its breaker is open.
var ErrOpen = errors.New("mongodb unreachable (circuit open)")

// breaker makes the store's operations fail fast for a while after one found no server to run
// on. A request makes several operations in a row (a look-up, then an insert; a list, then a
// refresh of the log), and while MongoDB is out of reach each would wait out its own server
// selection timeout (Options.Timeout): the first one's failure opens the breaker, so the
// request's later operations, and those of every other request, fail at once. A request
// therefore answers within one timeout, and callers do not pile up on a server that is gone.
//
// It opens only on a server selection error: the driver had no server to send the operation
// to, which a slow server under load, a duplicate key or a caller giving up do not cause.
// After OpenFor operations go through again; the first of them makes the driver check the
// server at once, so the store recovers within about OpenFor of MongoDB's return. (A
// request-wide budget of one timeout was the other choice; it would also cut short the writes
// that wait their turn on a busy conversation, and lets every request still spend a timeout.)
type breaker struct {
	openFor   time.Duration
	now       func() time.Time
	openUntil atomic.Int64 // unix nanoseconds
}

// allow returns the error of operation op while the breaker is open, else nil.
func (b *breaker) allow(op string) error {
	if b.now().UnixNano() < b.openUntil.Load() {
		return wrap(op, ErrOpen)
	}
	return nil
}

// observe opens the breaker when err says no server could be selected, unless the selection
// ended because its caller gave up (context.Canceled: a client that left is no news about
// MongoDB; the operation's own timeout, a deadline, is).
func (b *breaker) observe(err error) {
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) && !errors.Is(err, context.Canceled) {
		b.openUntil.Store(b.now().Add(b.openFor).UnixNano())
	}
}
