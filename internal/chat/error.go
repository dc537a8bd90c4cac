package chat

import "fmt"

// Code is the category of a domain error; the HTTP layer turns each into one status.
type Code string

// The error codes, with the HTTP status the API answers for each.
const (
	Invalid         Code = "invalid"         // 400: a parameter or body field is wrong; Field names it
	Unauthenticated Code = "unauthenticated" // 401
	Forbidden       Code = "forbidden"       // 403: the caller's role may not do this
	NotFound        Code = "not_found"       // 404: no such thing, or not the caller's to see
	Conflict        Code = "conflict"        // 409: an Idempotency-Key taken over by another request as it expired
	TooLarge        Code = "too_large"       // 413
	KeyReused       Code = "key_reused"      // 422: an Idempotency-Key reused with a different request
	Unavailable     Code = "unavailable"     // 503: a dependency the request needs is down
	Internal        Code = "internal"        // 500
)

// Error is a domain error: a code, a message safe to show the caller, and the field it is about.
// The wrapped cause is for logs only and never reaches a response.
type Error struct {
	Code    Code
	Message string
	Field   string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) true for every error of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels to compare with errors.Is; any *Error of the same code matches.
var (
	ErrNotFound    = &Error{Code: NotFound}
	ErrConflict    = &Error{Code: Conflict}
	ErrUnavailable = &Error{Code: Unavailable}
)

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an Invalid error about one request field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}
