// Package httpapi is the HTTP face of Support Chat: the Gin router with every route, the
// middleware chain, thin handlers, the JSON shapes and the one table of problem responses.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/widget"
)

// ChatService is what the handlers need of the chat domain (*chat.Service).
type ChatService interface {
	List(ctx context.Context, q chat.ListQuery) (*chat.ListPage, error)
	Start(ctx context.Context, in chat.StartInput) (*chat.Summary, error)
	Conversation(ctx context.Context, id string, messages *int) (*chat.Summary, error)
	History(ctx context.Context, id string, q chat.HistoryQuery) (*chat.HistoryPage, error)
	Send(ctx context.Context, id string, in chat.SendInput) (*chat.Message, error)
	MarkRead(ctx context.Context, id, messageID string) (*chat.ReadState, error)
	Update(ctx context.Context, id string, p chat.Patch) (*chat.Summary, error)
	SetPresence(ctx context.Context, status chat.AdminStatus) (*chat.PresenceState, error)
	Settings(ctx context.Context) (*chat.SettingsReport, error)
	PutSettings(ctx context.Context, o chat.Overrides) (*chat.SettingsReport, error)
	// FreshSupport returns the tenant's support block from fresh settings (for the cache).
	FreshSupport(ctx context.Context) (chat.Support, error)
	// NoteAdmin records the authenticated admin of ctx, so conversations can be assigned to them.
	NoteAdmin(ctx context.Context)
}

var _ ChatService = (*chat.Service)(nil)

// Idempotency runs the Idempotency-Key protocol (*idempotency.Keeper).
type Idempotency interface {
	Begin(ctx context.Context, r idempotency.Request) (*idempotency.Attempt, error)
	Finish(ctx context.Context, a *idempotency.Attempt, resp idempotency.Response) (*idempotency.Response, error)
}

var _ Idempotency = (*idempotency.Keeper)(nil)

// Deps are what the router is built from.
type Deps struct {
	Chat ChatService
	// Tenants resolves a request's tenant and answers which browser origins tenants allow.
	Tenants       OriginTenants
	Authenticator Authenticator
	Idempotency   Idempotency
	// Ready are the readiness checks of /readyz.
	Ready []ReadyCheck
	// Observer records request metrics; it may be nil.
	Observer Observer
	// Middleware runs first on every request (tracing).
	Middleware []gin.HandlerFunc
	Logger     *slog.Logger
	// Cache keeps rendered lists; nil lists from the chat service every time.
	Cache ListCache
	// SupportTTL bounds how long the support block is cached (default 5s; below 1ms: never).
	SupportTTL time.Duration
	// Events is the source of the event stream; nil answers 503 on /chat/events.
	Events EventSource
	// Streams counts event streams; it may be nil.
	Streams StreamObserver
	// Heartbeat is how often an idle event stream sends a comment (default 15s).
	Heartbeat time.Duration
	// StreamRecheck is how often an open event stream verifies its token again, ending when
	// it is no longer accepted (default 10s).
	StreamRecheck time.Duration
	// StreamMaxAge is the longest an event stream lives before its client must reconnect:
	// the Authenticator's key set max age (default auth.DefaultKeysMaxAge).
	StreamMaxAge time.Duration
	// Now is the service's clock (default time.Now).
	Now func() time.Time
	// MaxBodyBytes is the largest request body accepted (default 64 KiB).
	MaxBodyBytes int64
	// Erasures erase customers' data; nil serves no erasure endpoints.
	Erasures Erasures
	// RequestTimeout bounds one API request (default 15s).
	RequestTimeout time.Duration
	// Limits bounds the requests and event streams of callers and tenants; nil limits nothing.
	Limits Limiter
	// Audit is the tenants' audit trail, read at /admin/audit, where settings changes are
	// recorded; Exporter exports customers' data. Without them their routes are not
	// registered (answer 404 not-found) and settings changes are not recorded.
	Audit    AuditTrail
	Exporter Exporter
	// Webhooks manages the tenants' webhook endpoints. Without it the /admin/webhooks routes
	// are not registered and answer 404 not-found like any unknown endpoint: a server without
	// webhooks has no such API, which a 503 (retry later) would misstate.
	Webhooks Webhooks
}

// New returns the HTTP handler of the service.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 64 << 10
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 15 * time.Second
	}
	if d.SupportTTL == 0 {
		d.SupportTTL = defaultSupportTTL
	}
	if d.Heartbeat <= 0 {
		d.Heartbeat = defaultHeartbeat
	}
	if d.StreamRecheck <= 0 {
		d.StreamRecheck = defaultStreamRecheck
	}
	if d.StreamMaxAge <= 0 {
		d.StreamMaxAge = auth.DefaultKeysMaxAge
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(requestID())
	r.Use(d.Middleware...)
	r.Use(accessLog(d.Logger, d.Observer), recovery())
	r.NoRoute(func(c *gin.Context) { abortWith(c, kindNotFound, "No such endpoint.") })
	r.NoMethod(func(c *gin.Context) {
		// The preflight route below answers OPTIONS on every /api/v1 path, so to Gin any unknown
		// path there exists with another method; one that only OPTIONS matches does not exist.
		if c.Writer.Header().Get("Allow") == http.MethodOptions {
			c.Writer.Header().Del("Allow")
			abortWith(c, kindNotFound, "No such endpoint.")
			return
		}
		abortWith(c, kindMethodNotAllowed, "This endpoint does not support "+c.Request.Method+".")
	})

	r.GET("/healthz", healthz)
	r.GET("/readyz", readyz(d.Ready))
	// The storefronts' customer widget: static ES modules (support-chat.js and the modules it
	// imports), open to every origin.
	r.GET("/widget/v1/:module", serveWidget(widget.New()))

	h := &handlers{chat: d.Chat, idem: d.Idempotency, maxBody: d.MaxBodyBytes, cache: d.Cache, supportTTL: d.SupportTTL, now: d.Now, audit: d.Audit}
	r.OPTIONS("/api/v1/*path", preflight(d.Tenants))
	api := r.Group("/api/v1", withTimeout(d.RequestTimeout), resolveTenant(d.Tenants), cors, authenticate(d.Authenticator, d.Chat.NoteAdmin), limit(d.Limits))
	// Streams end at their token's exp, which the verifier checks against the wall clock.
	events := &streamer{
		source: d.Events, obs: d.Streams, limits: d.Limits, heartbeat: d.Heartbeat, now: time.Now,
		tenants: d.Tenants, auth: d.Authenticator, recheck: d.StreamRecheck, maxAge: d.StreamMaxAge,
	}
	api.GET("/chat/list", h.list)
	api.GET("/chat/events", events.serve)
	api.POST("/chat/start", h.start)
	api.PUT("/chat/presence", h.presence)
	api.GET("/chat/:id", h.conversation)
	api.PATCH("/chat/:id", h.update)
	api.GET("/chat/:id/messages", h.history)
	api.POST("/chat/:id/messages", h.send)
	api.POST("/chat/:id/read", h.read)
	api.GET("/admin/settings", h.settings)
	api.PUT("/admin/settings", h.putSettings)
	if d.Erasures != nil {
		er := &erasureHandlers{svc: d.Erasures}
		api.DELETE("/admin/customers/:customer_id", er.erase)
		api.GET("/admin/erasures/:id", er.erasure)
	}
	if d.Webhooks != nil {
		wh := &webhookHandlers{svc: d.Webhooks, handlers: h}
		api.GET("/admin/webhooks", wh.list)
		api.POST("/admin/webhooks", wh.create)
		api.GET("/admin/webhooks/:id", wh.get)
		api.PATCH("/admin/webhooks/:id", wh.update)
		api.DELETE("/admin/webhooks/:id", wh.remove)
		api.POST("/admin/webhooks/:id/rotate-secret", wh.rotate)
		api.GET("/admin/webhooks/:id/deliveries", wh.deliveries)
		api.POST("/admin/webhooks/:id/deliveries/:delivery_id/redeliver", wh.redeliver)
	}
	dr := &dataRightsHandlers{trail: d.Audit, exporter: d.Exporter}
	if d.Audit != nil {
		api.GET("/admin/audit", dr.audit)
	}
	if d.Exporter != nil {
		api.GET("/admin/customers/:customer_id/export", dr.export) // exportRoute
	}
	return r
}
