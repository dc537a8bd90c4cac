package mongodb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/supportchat/supportchat/internal/chat"
)

// TestBreakerOpensOnlyWhenNoServerIsFound: a server selection error opens the breaker for
// openFor; a caller giving up, a slow server or a wrong operation does not.
func TestBreakerOpensOnlyWhenNoServerIsFound(t *testing.T) {
	noServer := fmt.Errorf("find: %w", topology.ServerSelectionError{Wrapped: errors.New("server selection timeout")})
	for _, tc := range []struct {
		name string
		err  error
		open bool
	}{
		{"no server to run on", noServer, true},
		{"the caller gave up", context.Canceled, false},
		{"the caller's deadline passed", context.DeadlineExceeded, false},
		{"the server's time limit", mongo.CommandError{Code: 50, Name: "MaxTimeMSExpired"}, false},
		{"a duplicate key", mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000}}}, false},
		{"no document", mongo.ErrNoDocuments, false},
		{"success", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			b := &breaker{openFor: time.Second, now: func() time.Time { return now }}
			b.observe(tc.err)
			err := b.allow("find")
			if open := err != nil; open != tc.open {
				t.Fatalf("allow after %v = %v, want open %t", tc.err, err, tc.open)
			}
			if !tc.open {
				return
			}
			if !errors.Is(err, ErrOpen) || errorCode(err) != chat.Unavailable {
				t.Errorf("allow while open = %v, want Unavailable caused by ErrOpen", err)
			}
			now = now.Add(999 * time.Millisecond)
			if err := b.allow("find"); err == nil {
				t.Errorf("allow just before openFor passed = nil, want still open")
			}
			now = now.Add(time.Millisecond)
			if err := b.allow("find"); err != nil {
				t.Errorf("allow once openFor passed = %v, want nil", err)
			}
		})
	}
}
