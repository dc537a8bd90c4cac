package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/tenant"
)

// ProblemBase is the prefix of every problem type URI; the slug after it names the problem.
const ProblemBase = "https://support-chat.dev/problems/"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail,omitempty"`
	Instance  string         `json:"instance,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Errors    []FieldProblem `json:"errors,omitempty"`
}

// FieldProblem names the request field a validation problem is about.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// problemKind is one row of the table: the status, slug and title of a kind of problem.
type problemKind struct {
	status int
	slug   string
	title  string
}

// Problem kinds. These and the chat codes below are the API's whole error vocabulary; docs/API.md and
// api/openapi.yaml list the same slugs.
var (
	kindTenantNotFound     = problemKind{http.StatusNotFound, "tenant-not-found", "Unknown tenant"}
	kindInvalidToken       = problemKind{http.StatusUnauthorized, "invalid-token", "Missing or invalid bearer token"}
	kindIssuerUnavailable  = problemKind{http.StatusServiceUnavailable, "issuer-unavailable", "The tenant's identity provider cannot be reached"}
	kindNotFound           = problemKind{http.StatusNotFound, "not-found", "Not found"}
	kindMethodNotAllowed   = problemKind{http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"}
	kindBodyTooLarge       = problemKind{http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large"}
	kindUnsupportedMedia   = problemKind{http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"}
	kindIdempotencyReused  = problemKind{http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency-Key reused with a different request"}
	kindRateLimited        = problemKind{http.StatusTooManyRequests, "rate-limited", "Too many requests"}
	kindInvalidRequest     = problemKind{http.StatusBadRequest, "invalid-request", "Invalid request"}
	kindInternal           = problemKind{http.StatusInternalServerError, "internal", "Internal server error"}
	kindServiceUnavailable = problemKind{http.StatusServiceUnavailable, "service-unavailable", "Service unavailable"}
	kindForbidden          = problemKind{http.StatusForbidden, "forbidden", "Forbidden"}
	kindConflict           = problemKind{http.StatusConflict, "conflict", "Conflict"}
)

// kindOf turns a domain error code into its problem: the only code→status table.
func kindOf(code chat.Code) problemKind {
	switch code {
	case chat.Invalid:
		return kindInvalidRequest
	case chat.Unauthenticated:
		return kindInvalidToken
	case chat.Forbidden:
		return kindForbidden
	case chat.NotFound:
		return kindNotFound
	case chat.Conflict:
		return kindConflict
	case chat.TooLarge:
		return kindBodyTooLarge
	case chat.KeyReused:
		return kindIdempotencyReused
	case chat.Unavailable:
		return kindServiceUnavailable
	}
	return kindInternal
}

// errNoToken answers a request without bearer credentials: no Authorization header, or one of
// another scheme.
var errNoToken = fmt.Errorf("no bearer token: %w", auth.ErrInvalidToken)

// errTokenTooLarge answers a bearer token over auth.MaxTokenBytes, refused before any parsing.
var errTokenTooLarge = fmt.Errorf("bearer token over %d bytes: %w", auth.MaxTokenBytes, auth.ErrInvalidToken)

// problemFor returns the problem kind of err and the detail safe to show the caller.
func problemFor(err error) (problemKind, string, string) {
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		return kindTenantNotFound, "No tenant matches the X-Tenant-ID header or the Host.", ""
	case errors.Is(err, errNoToken):
		return kindInvalidToken, "This endpoint needs a bearer token in the Authorization header.", ""
	case errors.Is(err, errTokenTooLarge):
		return kindInvalidToken, fmt.Sprintf("The bearer token is larger than %d bytes.", auth.MaxTokenBytes), ""
	case errors.Is(err, auth.ErrInvalidToken):
		return kindInvalidToken, "The bearer token is malformed, expired or not issued for this tenant.", ""
	case errors.Is(err, auth.ErrIssuerUnavailable):
		return kindIssuerUnavailable, "Tokens of this tenant cannot be verified right now; retry shortly.", ""
	case errors.Is(err, idempotency.ErrKeyReused):
		return kindIdempotencyReused, "This Idempotency-Key was used with a different request body.", "Idempotency-Key"
	case errors.Is(err, errUnsupportedMedia):
		return kindUnsupportedMedia, "The request body must be application/json.", "Content-Type"
	case errors.Is(err, idempotency.ErrBadKey):
		return kindInvalidRequest, idempotency.ErrBadKey.Error(), "Idempotency-Key"
	}
	var ce *chat.Error
	if errors.As(err, &ce) {
		kind := kindOf(ce.Code)
		if kind == kindInternal {
			return kindInternal, "", ""
		}
		if ce.Code == chat.Unavailable {
			return kind, "A service this request needs is unavailable; retry shortly.", ce.Field
		}
		return kind, detailOf(ce), ce.Field
	}
	return kindInternal, "", ""
}

// detailOf returns the problem detail of a domain error as a sentence. A validation error's
// message says what is wrong with its field ("must be between 1 and 100"), so the field leads
// the sentence; any other message is a sentence of its own.
func detailOf(e *chat.Error) string {
	msg := e.Message
	if e.Field != "" && (e.Code == chat.Invalid || e.Code == chat.TooLarge) {
		msg = e.Field + " " + msg
	} else if r, size := utf8.DecodeRuneInString(msg); r != utf8.RuneError {
		msg = string(unicode.ToUpper(r)) + msg[size:]
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// abortWithError answers the request with the problem for err. Server errors (5xx, including
// 503 for a dependency that is down) are logged once here as errors, with the request's id and
// trace; client errors are not logged beyond the request line.
func abortWithError(c *gin.Context, err error) {
	kind, detail, field := problemFor(err)
	if kind.status >= 500 {
		loggerFrom(c).ErrorContext(c.Request.Context(), "request failed", "error", err, "status", kind.status)
	}
	p := newProblem(c, kind, detail)
	if field != "" {
		p.Errors = []FieldProblem{{Field: field, Detail: detail}}
	}
	if kind.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", challenge(err))
	}
	writeProblem(c, p)
}

// challenge returns the WWW-Authenticate header of a 401 for err. RFC 6750 §3.1: a request
// without credentials gets the bare challenge, one with a bad token error="invalid_token".
func challenge(err error) string {
	if errors.Is(err, errNoToken) {
		return `Bearer realm="support-chat"`
	}
	return `Bearer realm="support-chat", error="invalid_token"`
}

// abortWith answers the request with a problem of kind.
func abortWith(c *gin.Context, kind problemKind, detail string) {
	writeProblem(c, newProblem(c, kind, detail))
}

func newProblem(c *gin.Context, kind problemKind, detail string) Problem {
	return Problem{
		Type:      ProblemBase + kind.slug,
		Title:     kind.title,
		Status:    kind.status,
		Detail:    detail,
		Instance:  c.Request.URL.Path,
		RequestID: requestIDFrom(c.Request.Context()),
	}
}

// writeProblem sends p as application/problem+json, with the headers its status calls for.
func writeProblem(c *gin.Context, p Problem) {
	if p.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
	}
	c.Abort()
	c.Render(p.Status, problemRender{p})
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
)

// requestIDFrom returns the request id of ctx, or "".
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}
