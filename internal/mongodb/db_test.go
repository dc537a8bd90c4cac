package mongodb

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/supportchat/supportchat/internal/chat"
)

func TestWrapTellsUnavailableFromWrong(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want chat.Code
	}{
		{"MongoDB's time limit", mongo.CommandError{Code: 50, Name: "MaxTimeMSExpired", Message: "operation exceeded time limit"}, chat.Unavailable},
		{"FerretDB's time limit", mongo.CommandError{Code: 1, Name: "InternalError",
			Message: "[msg_find.go:344 handler.handleMaxTimeMSError] [collection.go:109 postgresql.(*collection).Query] timeout: read tcp 127.0.0.1:58592->127.0.0.1:5432: i/o timeout"}, chat.Unavailable},
		{"another internal error", mongo.CommandError{Code: 1, Name: "InternalError", Message: "something broke"}, chat.Internal},
		{"a bad query", mongo.CommandError{Code: 2, Name: "BadValue", Message: "unknown operator"}, chat.Internal},
		{"not a server error", errors.New("boom"), chat.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorCode(wrap("find", tc.err)); got != tc.want {
				t.Errorf("code of wrap(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// errorCode returns the code of err, chat.Internal for an error that is not a *chat.Error: the
// problem the API answers for it.
func errorCode(err error) chat.Code {
	if e := (*chat.Error)(nil); errors.As(err, &e) {
		return e.Code
	}
	return chat.Internal
}
