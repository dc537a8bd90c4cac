package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// loggerKey is the Gin context key of the service's logger; requestLoggerKey that of the
// request's, made from it when a handler first logs (loggerFrom).
const (
	loggerKey        = "chat.logger"
	requestLoggerKey = "chat.request-logger"
)

// requestID takes a well-formed X-Request-ID from the caller or makes one, and returns it in
// the response and every problem.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !validRequestID(id) {
			var b [16]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Header("X-Request-ID", id)
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey, id))
		c.Next()
	}
}

// validRequestID accepts 1..128 characters of [A-Za-z0-9._:-].
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// Observer records request metrics; telemetry implements it. ctx carries the request's span
// and tenantID is the id of the tenant the request resolved, empty when none.
type Observer interface {
	ObserveRequest(ctx context.Context, method, route string, status int, d time.Duration, tenantID string)
}

// accessLog writes one line per request (method, route, status, duration, tenant, request and
// trace ids; never headers, bodies or tokens) and reports it to obs. The line is built from its
// attributes at once; a logger carrying the request's ids is made only for a handler that
// logs (loggerFrom).
func accessLog(log *slog.Logger, obs Observer) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		ctx := c.Request.Context()
		c.Set(loggerKey, log)
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		tenantID := ""
		if t, err := tenant.FromContext(c.Request.Context()); err == nil {
			tenantID = t.ID
		}
		d := time.Since(start)
		status := c.Writer.Status()
		if obs != nil {
			obs.ObserveRequest(c.Request.Context(), c.Request.Method, route, status, d, tenantID)
		}
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" {
			level = slog.LevelDebug
		}
		if !log.Enabled(ctx, level) {
			return
		}
		var buf [9]slog.Attr
		attrs := append(requestAttrs(ctx, buf[:0]),
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("tenant", tenantID),
			slog.Int("bytes", c.Writer.Size()),
		)
		log.LogAttrs(ctx, level, "request", attrs...)
	}
}

// requestAttrs appends the request id and, when ctx carries a trace, its trace and span ids.
func requestAttrs(ctx context.Context, attrs []slog.Attr) []slog.Attr {
	attrs = append(attrs, slog.String("request_id", requestIDFrom(ctx)))
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return attrs
}

// loggerFrom returns the request's logger: the service's, with the request and trace ids.
func loggerFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(requestLoggerKey); ok {
		return l.(*slog.Logger)
	}
	base, ok := c.Get(loggerKey)
	if !ok {
		return slog.New(slog.DiscardHandler)
	}
	var buf [3]slog.Attr
	attrs := requestAttrs(c.Request.Context(), buf[:0])
	args := make([]any, len(attrs))
	for i, a := range attrs {
		args[i] = a
	}
	l := base.(*slog.Logger).With(args...)
	c.Set(requestLoggerKey, l)
	return l
}

// recovery turns a panic into a 500 problem, logged once with its stack.
func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				loggerFrom(c).ErrorContext(c.Request.Context(), "panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					abortWith(c, kindInternal, "")
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// withTimeout bounds the work of one API request; the event stream lasts as long as its token,
// and an export, streamed, has exportTimeout at least.
func withTimeout(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.FullPath() == eventsRoute {
			c.Next()
			return
		}
		bound := d
		if c.FullPath() == exportRoute {
			bound = max(d, exportTimeout)
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), bound)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// Tenants finds the tenant of a request.
type Tenants interface {
	// Get returns the tenant id, or tenant.ErrNotFound.
	Get(id string) (*tenant.Tenant, error)
	// ByHost returns the tenant serving host, or tenant.ErrNotFound.
	ByHost(host string) (*tenant.Tenant, error)
}

// resolveTenant picks the tenant from X-Tenant-ID, or else from the Host, and puts it in the
// request context. Unknown or missing, or a Host of one tenant with an X-Tenant-ID naming
// another: 404 tenant-not-found.
func resolveTenant(tenants Tenants) gin.HandlerFunc {
	return func(c *gin.Context) {
		var t *tenant.Tenant
		var err error
		byHost, hostErr := tenants.ByHost(hostOnly(c.Request.Host))
		if id := c.GetHeader("X-Tenant-ID"); id != "" {
			t, err = tenants.Get(id)
			// A Host that belongs to one tenant never serves another through the header:
			// a page on one storefront's domain cannot reach another storefront's chats.
			if err == nil && hostErr == nil && byHost.ID != t.ID {
				err = tenant.ErrNotFound
			}
		} else {
			t, err = byHost, hostErr
		}
		if err != nil {
			abortWithError(c, tenant.ErrNotFound)
			return
		}
		c.Request = c.Request.WithContext(tenant.NewContext(c.Request.Context(), t))
		c.Next()
	}
}

// hostOnly strips the port from a Host header.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// Authenticator verifies bearer tokens against a tenant's issuer.
type Authenticator interface {
	// Authenticate returns the principal of token. Returns errors wrapping auth.ErrInvalidToken
	// or auth.ErrIssuerUnavailable.
	Authenticate(ctx context.Context, t *tenant.Tenant, token string) (auth.Principal, error)
}

// authenticate verifies the bearer token against the request's tenant, puts the caller in the
// request context and tells seen of it (the chat service records admins it sees).
func authenticate(a Authenticator, seen func(context.Context)) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		t, err := tenant.FromContext(ctx)
		if err != nil {
			abortWithError(c, err)
			return
		}
		token, ok := bearerToken(c.GetHeader("Authorization"))
		if !ok {
			abortWithError(c, errNoToken)
			return
		}
		if len(token) > auth.MaxTokenBytes {
			abortWithError(c, errTokenTooLarge)
			return
		}
		p, err := a.Authenticate(ctx, t, token)
		if err != nil {
			loggerFrom(c).DebugContext(ctx, "token rejected", "tenant", t.ID, "reason", err)
			abortWithError(c, err)
			return
		}
		c.Request = c.Request.WithContext(chat.WithCaller(ctx, callerOf(p)))
		seen(c.Request.Context())
		c.Next()
	}
}

// requestScope returns the tenant and the caller that resolveTenant and authenticate put in
// the request context. It answers the request with the problem and reports false when either
// is missing.
func requestScope(c *gin.Context) (*tenant.Tenant, chat.Caller, bool) {
	ctx := c.Request.Context()
	t, err := tenant.FromContext(ctx)
	if err != nil {
		abortWithError(c, err)
		return nil, chat.Caller{}, false
	}
	caller, err := chat.CallerFromContext(ctx)
	if err != nil {
		abortWithError(c, err)
		return nil, chat.Caller{}, false
	}
	return t, caller, true
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
