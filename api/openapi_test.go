package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/httpapi"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/webhook"
)

const (
	docFile      = "openapi.yaml"
	routesFile   = "../internal/httpapi/routes.go"
	problemsFile = "../internal/httpapi/problem.go"
)

func init() {
	openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.PlainBodyDecoder)
}

// loadDoc loads and validates api/openapi.yaml.
func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(docFile)
	if err != nil {
		t.Fatalf("loading %s: %v", docFile, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", docFile, err)
	}
	return doc
}

func readSource(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDocumentIsValid(t *testing.T) {
	doc := loadDoc(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Error("the document does not load as OpenAPI 3.1")
	}
}

var (
	// groupPattern finds `api := r.Group("/api/v1", ...)`.
	groupPattern = regexp.MustCompile(`(?m)^\s*(\w+)\s*:?=\s*r\.Group\("([^"]*)"`)
	// routePattern finds `api.GET("/chat/list", ...)` and `r.GET("/healthz", ...)`.
	routePattern = regexp.MustCompile(`(?m)^\s*(\w+)\.(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|Any|Handle)\("([^"]*)"`)
	// paramPattern finds gin path parameters (:id, *rest).
	paramPattern = regexp.MustCompile(`[:*](\w+)`)
)

// registeredRoutes returns the "METHOD /path" of every route routes.go registers, in OpenAPI
// path syntax.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	src := readSource(t, routesFile)
	prefixes := map[string]string{"r": ""}
	for _, m := range groupPattern.FindAllStringSubmatch(src, -1) {
		prefixes[m[1]] = m[2]
	}
	var routes []string
	for _, m := range routePattern.FindAllStringSubmatch(src, -1) {
		prefix, ok := prefixes[m[1]]
		if !ok {
			t.Fatalf("routes.go registers %s %s on %q, a router group this test does not know", m[2], m[3], m[1])
		}
		if m[2] == "OPTIONS" && m[3] == "/api/v1/*path" {
			// The CORS preflight answers every API path; the document describes it in its
			// info section rather than as an operation of each path.
			continue
		}
		if m[2] == "Any" || m[2] == "Handle" {
			t.Fatalf("routes.go registers %q with %s: extend this test to name its methods", m[3], m[2])
		}
		path := paramPattern.ReplaceAllString(prefix+m[3], "{$1}")
		routes = append(routes, m[2]+" "+path)
	}
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in routes.go (%v): has its form changed?", len(routes), routes)
	}
	sort.Strings(routes)
	return routes
}

// documentedRoutes returns the "METHOD /path" of every operation of doc.
func documentedRoutes(doc *openapi3.T) []string {
	var routes []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			routes = append(routes, method+" "+path)
		}
	}
	sort.Strings(routes)
	return routes
}

func TestEveryRouteIsDocumented(t *testing.T) {
	doc := loadDoc(t)
	code, documented := registeredRoutes(t), documentedRoutes(doc)
	for _, r := range code {
		if !slices.Contains(documented, r) {
			t.Errorf("routes.go registers %s, which api/openapi.yaml does not document", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(code, r) {
			t.Errorf("api/openapi.yaml documents %s, which routes.go does not register", r)
		}
	}
}

// TestRoutesResolve checks that a request of each route finds its own operation in the
// document (literal segments such as /chat/list and /chat/presence before /chat/{id}).
func TestRoutesResolve(t *testing.T) {
	doc := loadDoc(t)
	doc.Servers = openapi3.Servers{{URL: "http://example.test"}}
	router, err := legacyrouter.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range registeredRoutes(t) {
		method, path, _ := strings.Cut(r, " ")
		url := "http://example.test" + strings.ReplaceAll(path, "{id}", "6745c2aa0123456789abcdef")
		req := httptest.NewRequest(method, url, nil)
		route, _, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			continue
		}
		if route.Path != path || route.Method != method {
			t.Errorf("%s %s resolves to %s %s", method, url, route.Method, route.Path)
		}
	}
}

var (
	problemBasePattern = regexp.MustCompile(`ProblemBase\s*=\s*"([^"]+)"`)
	problemKindPattern = regexp.MustCompile(`problemKind\{http\.Status(\w+),\s*"([^"]+)"`)
)

// statusCodes are the net/http constants problem.go uses.
var statusCodes = map[string]int{
	"BadRequest":            http.StatusBadRequest,
	"Unauthorized":          http.StatusUnauthorized,
	"Forbidden":             http.StatusForbidden,
	"NotFound":              http.StatusNotFound,
	"MethodNotAllowed":      http.StatusMethodNotAllowed,
	"Conflict":              http.StatusConflict,
	"RequestEntityTooLarge": http.StatusRequestEntityTooLarge,
	"UnsupportedMediaType":  http.StatusUnsupportedMediaType,
	"UnprocessableEntity":   http.StatusUnprocessableEntity,
	"TooManyRequests":       http.StatusTooManyRequests,
	"InternalServerError":   http.StatusInternalServerError,
	"ServiceUnavailable":    http.StatusServiceUnavailable,
}

// enumStrings returns the string values of a schema's enum.
func enumStrings(s *openapi3.Schema) []string {
	var out []string
	for _, v := range s.Enum {
		if str, ok := v.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// problemVariant returns the type and status enums of a component response built as
// allOf [Problem, {type, status}].
func problemVariant(t *testing.T, resp *openapi3.Response) (types []string, statuses []int) {
	t.Helper()
	mt := resp.Content.Get("application/problem+json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil, nil
	}
	for _, part := range mt.Schema.Value.AllOf {
		if part.Ref != "" {
			continue
		}
		if ts := part.Value.Properties["type"]; ts != nil {
			types = append(types, enumStrings(ts.Value)...)
		}
		if ss := part.Value.Properties["status"]; ss != nil {
			for _, v := range ss.Value.Enum {
				if f, ok := v.(float64); ok {
					statuses = append(statuses, int(f))
				}
			}
		}
	}
	return types, statuses
}

func TestEveryProblemIsDocumented(t *testing.T) {
	doc := loadDoc(t)
	src := readSource(t, problemsFile)
	base := problemBasePattern.FindStringSubmatch(src)
	if base == nil {
		t.Fatal("no ProblemBase in problem.go")
	}
	if base[1] != httpapi.ProblemBase {
		t.Fatalf("ProblemBase parsed as %q, want %q", base[1], httpapi.ProblemBase)
	}
	problem := doc.Components.Schemas["Problem"]
	if problem == nil {
		t.Fatal("no Problem schema")
	}
	typeEnum := enumStrings(problem.Value.Properties["type"].Value)
	var statusEnum []int
	for _, v := range problem.Value.Properties["status"].Value.Enum {
		statusEnum = append(statusEnum, int(v.(float64)))
	}
	kinds := problemKindPattern.FindAllStringSubmatch(src, -1)
	if len(kinds) < 10 {
		t.Fatalf("found only %d problem kinds in problem.go: has its form changed?", len(kinds))
	}
	slugs := map[string]bool{}
	for _, k := range kinds {
		code, ok := statusCodes[k[1]]
		if !ok {
			t.Errorf("problem %q has status http.Status%s: add it to statusCodes", k[2], k[1])
			continue
		}
		uri := base[1] + k[2]
		slugs[uri] = true
		if !slices.Contains(typeEnum, uri) {
			t.Errorf("problem type %s is not in the enum of Problem.type", uri)
		}
		if !strings.Contains(problem.Value.Description, "`"+k[2]+"`") {
			t.Errorf("the Problem description does not list the slug %s", k[2])
		}
		if !slices.Contains(statusEnum, code) {
			t.Errorf("status %d of problem %s is not in the enum of Problem.status", code, k[2])
		}
		// The component response for the status lists the type.
		found := false
		for name, ref := range doc.Components.Responses {
			types, statuses := problemVariant(t, ref.Value)
			if slices.Contains(statuses, code) {
				found = true
				if !slices.Contains(types, uri) {
					t.Errorf("response %s (status %d) does not list problem type %s", name, code, uri)
				}
			}
		}
		if !found {
			t.Errorf("no component response describes status %d (problem %s)", code, k[2])
		}
	}
	for _, uri := range typeEnum {
		if !slugs[uri] {
			t.Errorf("Problem.type lists %s, which problem.go does not define", uri)
		}
	}
}

// TestErrorResponsesAreProblems checks every documented error of the API is a problem response
// with the headers its status calls for.
func TestErrorResponsesAreProblems(t *testing.T) {
	doc := loadDoc(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !strings.HasPrefix(path, "/api/") {
				continue
			}
			for _, code := range []string{"401", "404", "429", "500", "503"} {
				if op.Responses.Value(code) == nil {
					t.Errorf("%s %s does not document %s", method, path, code)
				}
			}
			for code, ref := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				resp := ref.Value
				if resp.Content.Get("application/problem+json") == nil || len(resp.Content) != 1 {
					t.Errorf("%s %s → %s is not only application/problem+json", method, path, code)
				}
				want := map[string][]string{"401": {"WWW-Authenticate"}, "429": {"Retry-After", "RateLimit-Policy", "RateLimit"}, "503": {"Retry-After"}}[code]
				for _, h := range want {
					if resp.Headers[h] == nil || !resp.Headers[h].Value.Required {
						t.Errorf("%s %s → %s does not require the %s header", method, path, code, h)
					}
				}
			}
		}
	}
}

// The fakes below drive the real router and encoders of internal/httpapi, so the test checks
// the document against what the code writes, not against what we think it writes.

type fakeTenants struct{ t *tenant.Tenant }

func (f fakeTenants) Get(id string) (*tenant.Tenant, error) {
	if id == f.t.ID {
		return f.t, nil
	}
	return nil, tenant.ErrNotFound
}

func (f fakeTenants) ByHost(string) (*tenant.Tenant, error) { return nil, tenant.ErrNotFound }

func (f fakeTenants) All() []*tenant.Tenant { return []*tenant.Tenant{f.t} }

type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, _ *tenant.Tenant, token string) (auth.Principal, error) {
	switch token {
	case "admin":
		return auth.Principal{Subject: "admin-7", Name: "Grace", Admin: true}, nil
	case "customer":
		return auth.Principal{Subject: "cust-42"}, nil
	case "down":
		return auth.Principal{}, auth.ErrIssuerUnavailable
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

// fakeIdem keeps the first answer of each key, so a second request with a key is a replay.
type fakeIdem struct {
	mu      sync.Mutex
	answers map[string]*idempotency.Response
}

func (f *fakeIdem) Begin(_ context.Context, r idempotency.Request) (*idempotency.Attempt, error) {
	if r.Key == "" || len(r.Key) > idempotency.MaxKeyLength || strings.IndexFunc(r.Key, func(c rune) bool { return c < 0x20 || c > 0x7e }) >= 0 {
		return nil, idempotency.ErrBadKey
	}
	if r.Key == "reused" {
		return nil, idempotency.ErrKeyReused
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rec := f.answers[r.Route+" "+r.Key]; rec != nil {
		return &idempotency.Attempt{Seed: "s", Replay: rec}, nil
	}
	return &idempotency.Attempt{Seed: r.Route + " " + r.Key}, nil
}

func (f *fakeIdem) Finish(_ context.Context, a *idempotency.Attempt, resp idempotency.Response) (*idempotency.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answers == nil {
		f.answers = map[string]*idempotency.Response{}
	}
	r := &resp
	f.answers[a.Seed] = r
	return r, nil
}

const (
	convID = "6745c2aa0123456789abcdef"
	msgID  = "6745c2aa0123456789abcde0"
	sysID  = "6745c2aa0123456789abcde1"
)

type fakeChat struct {
	now   time.Time
	hours *tenant.BusinessHours
}

// failFor returns the error a magic conversation id asks for.
func failFor(id string) error {
	switch id {
	case "conflict":
		return chat.Errorf(chat.Conflict, "request with this idempotency key is in progress; try again")
	case "unavailable":
		return chat.ErrUnavailable
	case "boom":
		return errors.New("driver exploded")
	case convID:
		return nil
	}
	return chat.Errorf(chat.NotFound, "conversation not found")
}

func (f *fakeChat) conversation(admin bool, withContext bool) *chat.Summary {
	customer := chat.Participant{ID: "cust-42", Role: chat.RoleCustomer}
	admin7 := chat.Participant{ID: "admin-7", Role: chat.RoleAdmin, Name: "Grace"}
	c := &chat.Conversation{
		Header: chat.Header{ID: convID, TenantID: "demo-shop", Subject: "Where is my order?", Customer: customer, CreatedAt: f.now.Add(-time.Hour)},
		State:  chat.State{Status: chat.StatusOpen, Admins: []chat.Participant{admin7}, Assignee: "admin-7", UpdatedAt: f.now},
	}
	if withContext {
		c.Context = &chat.ShopContext{OrderID: "o-1", PageURL: "https://shop.example/o/1"}
	}
	msgs := []chat.Message{
		{ID: msgID, ConversationID: convID, Sender: customer, Body: "Where is it?", CreatedAt: f.now.Add(-time.Hour)},
		{ID: sysID, ConversationID: convID, Sender: chat.Participant{ID: "system", Role: chat.RoleSystem, Name: "Demo Shop"}, Body: "We are away.", CreatedAt: f.now.Add(-time.Hour)},
	}
	return &chat.Summary{Conversation: c, Messages: msgs, UnreadCount: 1, ShowAssignee: admin}
}

func (f *fakeChat) support(online bool) chat.Support {
	if online {
		return chat.Support{Status: chat.SupportOnline, Available: true}
	}
	next, secs := f.now.Add(20*time.Hour), int64(5400)
	return chat.Support{Status: chat.SupportAway, Reason: chat.ReasonOutsideBusinessHours, Prompt: "We are away.", NextAvailableAt: &next, ExpectedReplySeconds: &secs}
}

func isAdmin(ctx context.Context) bool {
	c, _ := chat.CallerFromContext(ctx)
	return c.IsAdmin()
}

func (f *fakeChat) List(ctx context.Context, q chat.ListQuery) (*chat.ListPage, error) {
	if q.Limit > 100 {
		return nil, chat.FieldError("limit", "must be between 1 and 100")
	}
	if q.Status != "" && !isAdmin(ctx) {
		return nil, &chat.Error{Code: chat.Forbidden, Field: "status", Message: "only admins can filter conversations"}
	}
	page := &chat.ListPage{Conversations: []chat.Summary{*f.conversation(isAdmin(ctx), true), *f.conversation(isAdmin(ctx), false)}, Support: f.support(isAdmin(ctx))}
	if q.Cursor == "" {
		page.NextCursor = "AQAAAZNo"
	}
	return page, nil
}

func (f *fakeChat) Start(ctx context.Context, in chat.StartInput) (*chat.Summary, error) {
	if isAdmin(ctx) {
		return nil, chat.Errorf(chat.Forbidden, "only customers start conversations")
	}
	return f.conversation(false, in.Context != nil), nil
}

func (f *fakeChat) Conversation(ctx context.Context, id string, _ *int) (*chat.Summary, error) {
	if err := failFor(id); err != nil {
		return nil, err
	}
	return f.conversation(isAdmin(ctx), false), nil
}

func (f *fakeChat) History(_ context.Context, id string, _ chat.HistoryQuery) (*chat.HistoryPage, error) {
	if err := failFor(id); err != nil {
		return nil, err
	}
	return &chat.HistoryPage{Messages: f.conversation(false, false).Messages, NextCursor: "AQAAAAAAAAAB"}, nil
}

func (f *fakeChat) Send(_ context.Context, id string, in chat.SendInput) (*chat.Message, error) {
	if err := failFor(id); err != nil {
		return nil, err
	}
	if len(in.Body) > 4000 {
		return nil, &chat.Error{Code: chat.TooLarge, Field: "body", Message: "must be at most 4000 characters"}
	}
	m := f.conversation(false, false).Messages[0]
	return &m, nil
}

func (f *fakeChat) MarkRead(_ context.Context, id, _ string) (*chat.ReadState, error) {
	if err := failFor(id); err != nil {
		return nil, err
	}
	return &chat.ReadState{ConversationID: id}, nil
}

func (f *fakeChat) Update(ctx context.Context, id string, _ chat.Patch) (*chat.Summary, error) {
	if !isAdmin(ctx) {
		return nil, chat.Errorf(chat.Forbidden, "only admins can do this")
	}
	if err := failFor(id); err != nil {
		return nil, err
	}
	v := f.conversation(true, true)
	v.Assignee = ""
	return v, nil
}

func (f *fakeChat) SetPresence(_ context.Context, s chat.AdminStatus) (*chat.PresenceState, error) {
	return &chat.PresenceState{Status: s, ExpiresAt: f.now.Add(time.Minute), Support: f.support(s == chat.AdminOnline)}, nil
}

func (f *fakeChat) NoteAdmin(context.Context) {}

func (f *fakeChat) FreshSupport(ctx context.Context) (chat.Support, error) {
	return f.support(isAdmin(ctx)), nil
}

func (f *fakeChat) Settings(context.Context) (*chat.SettingsReport, error) {
	return &chat.SettingsReport{Settings: chat.Settings{AwayPrompt: "We are away.", BusinessHours: f.hours}, Overridden: []string{}}, nil
}

func (f *fakeChat) PutSettings(_ context.Context, o chat.Overrides) (*chat.SettingsReport, error) {
	at := f.now
	v := &chat.SettingsReport{Settings: chat.Settings{AwayPrompt: "We are away.", BusinessHours: o.BusinessHours, UnassignOnAway: true},
		Overridden: []string{"away_prompt", "business_hours"}, UpdatedAt: &at, UpdatedBy: "admin-7"}
	if o.Retention != nil {
		v.Retention = *o.Retention
		v.Overridden = append(v.Overridden, "retention")
	}
	return v, nil
}

// fakeWebhooks manages one endpoint, hookID, whose deliveries are a pending and a dead one;
// hookDisabled is a disabled endpoint.
type fakeWebhooks struct{ now time.Time }

const (
	hookID       = "ep_0123456789abcdef01234567"
	hookDisabled = "ep_disabled"
)

func (f *fakeWebhooks) endpoint(id string) (*webhook.Endpoint, error) {
	e := &webhook.Endpoint{ID: id, TenantID: "demo-shop", URL: "https://hooks.shop.example/chat", Events: []chat.EventType{chat.EventMessageCreated},
		Enabled: true, CreatedAt: f.now.Add(-time.Hour), UpdatedAt: f.now, Secrets: []webhook.Secret{{Value: webhook.NewSecret()}}}
	switch id {
	case hookID:
		return e, nil
	case hookDisabled:
		e.Enabled, e.DisabledReason = false, "the receiver answered 410 Gone"
		return e, nil
	}
	return nil, chat.Errorf(chat.NotFound, "no such webhook")
}

func (f *fakeWebhooks) check(ctx context.Context, id string) (*webhook.Endpoint, error) {
	if !isAdmin(ctx) {
		return nil, chat.Errorf(chat.Forbidden, "only the tenant's admins manage webhooks")
	}
	return f.endpoint(id)
}

func (f *fakeWebhooks) Create(ctx context.Context, in webhook.Input) (*webhook.Endpoint, string, error) {
	e, err := f.check(ctx, hookID)
	if err != nil {
		return nil, "", err
	}
	if in.URL == nil || !strings.HasPrefix(*in.URL, "https://") {
		return nil, "", chat.FieldError("url", "must use https")
	}
	if *in.URL == "https://full.example/" {
		return nil, "", chat.Errorf(chat.Conflict, "the tenant has 20 webhook endpoints, the most allowed")
	}
	return e, e.Secrets[0].Value, nil
}

func (f *fakeWebhooks) List(ctx context.Context) ([]webhook.Endpoint, error) {
	a, err := f.check(ctx, hookID)
	if err != nil {
		return nil, err
	}
	b, _ := f.endpoint(hookDisabled)
	return []webhook.Endpoint{*a, *b}, nil
}

func (f *fakeWebhooks) Get(ctx context.Context, id string) (*webhook.Endpoint, error) {
	return f.check(ctx, id)
}

func (f *fakeWebhooks) Update(ctx context.Context, id string, _ webhook.Input) (*webhook.Endpoint, error) {
	return f.check(ctx, id)
}

func (f *fakeWebhooks) Delete(ctx context.Context, id string) error {
	_, err := f.check(ctx, id)
	return err
}

func (f *fakeWebhooks) Rotate(ctx context.Context, id string) (*webhook.Endpoint, string, error) {
	e, err := f.check(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return e, webhook.NewSecret(), nil
}

func (f *fakeWebhooks) deliveries() []webhook.Delivery {
	return []webhook.Delivery{
		{ID: "wd_2", EventID: "ev_2", Type: chat.EventMessageCreated, State: webhook.Pending, CreatedAt: f.now, NextAt: f.now.Add(5 * time.Second),
			Attempts: []webhook.Attempt{{At: f.now, Status: 503, Duration: 12 * time.Millisecond, Error: "status 503"}}},
		{ID: "wd_1", EventID: "ev_1", Type: chat.EventSupportChanged, State: webhook.Dead, CreatedAt: f.now.Add(-time.Minute),
			Attempts: []webhook.Attempt{{At: f.now, Duration: 10 * time.Second, Error: "timeout"}}},
	}
}

func (f *fakeWebhooks) Deliveries(ctx context.Context, id, cursor string, limit int) (*webhook.Page, error) {
	if _, err := f.check(ctx, id); err != nil {
		return nil, err
	}
	if limit > webhook.MaxPageSize {
		return nil, chat.FieldError("limit", "must be between 1 and %d", webhook.MaxPageSize)
	}
	if cursor != "" {
		return &webhook.Page{}, nil
	}
	return &webhook.Page{Deliveries: f.deliveries(), Next: "MTc2NDA2Mjg2MjEyM3x3ZF8x"}, nil
}

func (f *fakeWebhooks) Redeliver(ctx context.Context, id, deliveryID string) (*webhook.Delivery, error) {
	e, err := f.check(ctx, id)
	if err != nil {
		return nil, err
	}
	if deliveryID != "wd_1" {
		return nil, chat.Errorf(chat.NotFound, "no such delivery")
	}
	if !e.Enabled {
		return nil, chat.Errorf(chat.Conflict, "the endpoint is disabled; enable it first")
	}
	d := f.deliveries()[1]
	d.State, d.NextAt = webhook.Pending, f.now
	return &d, nil
}

// apiServer runs the real router of internal/httpapi over the fakes.
func apiServer(t *testing.T, checks []httpapi.ReadyCheck) http.Handler {
	t.Helper()
	return loggingAPIServer(t, checks, nil)
}

// loggingAPIServer is apiServer logging to log.
func loggingAPIServer(t *testing.T, checks []httpapi.ReadyCheck, log *slog.Logger) http.Handler {
	t.Helper()
	hours, err := tenant.ParseBusinessHours("Europe/Berlin", map[string][]string{"mon": {"09:00-18:00"}, "fri": {"22:00-24:00", "09:00-17:00"}})
	if err != nil {
		t.Fatal(err)
	}
	return httpapi.New(httpapi.Deps{
		Chat:          &fakeChat{now: time.Date(2026, 11, 24, 10, 1, 2, 123456789, time.UTC), hours: hours},
		Tenants:       fakeTenants{&tenant.Tenant{ID: "demo-shop", Name: "Demo Shop"}},
		Authenticator: fakeAuth{},
		Idempotency:   &fakeIdem{},
		Webhooks:      &fakeWebhooks{now: time.Date(2026, 11, 24, 10, 1, 2, 123456789, time.UTC)},
		Ready:         checks,
		MaxBodyBytes:  1 << 10,
		Logger:        log,
	})
}

// TestServerErrorsAreLoggedAsErrors checks what deploy/README.md's runbook promises: each 5xx
// answer is logged once, as an error, with the request id the client saw; a 4xx is not.
func TestServerErrorsAreLoggedAsErrors(t *testing.T) {
	var logs bytes.Buffer
	h := loggingAPIServer(t, nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	for _, tc := range []struct {
		path   string
		status int
		logged bool
	}{
		{"/api/v1/chat/boom", 500, true},
		{"/api/v1/chat/unavailable", 503, true},
		{"/api/v1/chat/" + strings.Repeat("f", 24), 404, false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			logs.Reset()
			req := httptest.NewRequest("GET", tc.path, nil)
			req.Header.Set("X-Tenant-ID", "demo-shop")
			req.Header.Set("Authorization", "Bearer admin")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d", rec.Code, tc.status)
			}
			var failures []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["msg"] == "request failed" {
					failures = append(failures, rec)
				}
			}
			if !tc.logged {
				if len(failures) != 0 {
					t.Errorf("a %d was logged as a failure: %v", tc.status, failures)
				}
				return
			}
			if len(failures) != 1 {
				t.Fatalf("%d 'request failed' lines, want 1:\n%s", len(failures), logs.String())
			}
			if f := failures[0]; f["level"] != "ERROR" || f["request_id"] != rec.Header().Get("X-Request-ID") {
				t.Errorf("logged %v; want level ERROR and request_id %q", f, rec.Header().Get("X-Request-ID"))
			}
		})
	}
}

func openAPIRouter(t *testing.T) routers.Router {
	t.Helper()
	doc := loadDoc(t)
	doc.Servers = openapi3.Servers{{URL: "http://example.test"}}
	r, err := legacyrouter.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// exchange is one request to the API and what the test expects of its answer.
type exchange struct {
	method, path string
	token        string
	body         string
	headers      map[string]string
	status       int
	slug         string
	replayed     bool
}

func (x exchange) request() *http.Request {
	var body io.Reader
	if x.body != "" {
		body = strings.NewReader(x.body)
	}
	req := httptest.NewRequest(x.method, "http://example.test"+x.path, body)
	req.Header.Set("X-Tenant-ID", "demo-shop")
	if x.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if x.token != "" {
		req.Header.Set("Authorization", "Bearer "+x.token)
	}
	for k, v := range x.headers {
		req.Header.Set(k, v)
	}
	return req
}

// validateResponse checks one response against the document the way the stack test does.
func validateResponse(router routers.Router, req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := router.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

// validateRequest checks a request the test sends as valid is valid by the document too.
func validateRequest(router routers.Router, req *http.Request) error {
	route, params, err := router.FindRoute(req)
	if err != nil {
		return err
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	})
	req.Body = io.NopCloser(bytes.NewReader(body))
	return err
}

func TestHandlersMatchDocument(t *testing.T) {
	checks := []httpapi.ReadyCheck{
		{Name: "mongodb", Critical: true, Check: func(context.Context) error { return nil }},
		{Name: "redis", Check: func(context.Context) error { return errors.New("unreachable") }},
	}
	handler, router := apiServer(t, checks), openAPIRouter(t)
	unready := apiServer(t, []httpapi.ReadyCheck{{Name: "mongodb", Critical: true, Check: func(context.Context) error { return errors.New("unreachable") }}})
	chatPath := "/api/v1/chat/" + convID
	hours := `{"timezone":"Europe/Berlin","weekly":{"mon":["09:00-18:00"],"sat":["22:00-02:00","10:00-12:00"]}}`
	tests := []exchange{
		{method: "GET", path: "/healthz", status: 200},
		{method: "GET", path: "/readyz", status: 200},
		{method: "GET", path: "/widget/v1/support-chat.js", status: 200},
		{method: "GET", path: "/widget/v1/api.js?v=older", status: 200},
		{method: "GET", path: "/widget/v1/nope.js", status: 404, slug: "not-found"},
		{method: "GET", path: "/api/v1/chat/list", token: "customer", status: 200},
		{method: "GET", path: "/api/v1/chat/list?limit=25&messages=20&status=open&assignee=me&unread=true&customer_id=c&cursor=abc", token: "admin", status: 200},
		{method: "GET", path: "/api/v1/chat/list?limit=abc", token: "admin", status: 400, slug: "invalid-request"},
		{method: "GET", path: "/api/v1/chat/list?limit=500", token: "admin", status: 400, slug: "invalid-request"},
		{method: "GET", path: "/api/v1/chat/list?typo=1", token: "admin", status: 400, slug: "invalid-request"},
		{method: "GET", path: "/api/v1/chat/list?status=open", token: "customer", status: 403, slug: "forbidden"},
		{method: "GET", path: "/api/v1/chat/list", status: 401, slug: "invalid-token"},
		{method: "GET", path: "/api/v1/chat/list", token: "down", status: 503, slug: "issuer-unavailable"},
		{method: "GET", path: "/api/v1/chat/list", token: "customer", headers: map[string]string{"X-Tenant-ID": "nobody"}, status: 404, slug: "tenant-not-found"},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"subject":"Order","message":"Where is it?","context":{"order_id":"o-1","page_url":"https://shop.example/o/1"}}`, status: 201},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":"Where is it?"}`, headers: map[string]string{"Idempotency-Key": "k1"}, status: 201},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":"Where is it?"}`, headers: map[string]string{"Idempotency-Key": "k1"}, status: 201, replayed: true},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":"Where is it?"}`, headers: map[string]string{"Idempotency-Key": "reused"}, status: 422, slug: "idempotency-key-reused"},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":"Where is it?"}`, headers: map[string]string{"Idempotency-Key": "bad\u00e9"}, status: 400, slug: "invalid-request"},
		{method: "POST", path: "/api/v1/chat/start", token: "admin", body: `{"message":"Hi"}`, status: 403, slug: "forbidden"},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":1}`, status: 400, slug: "invalid-request"},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":"Hi","extra":1}`, status: 400, slug: "invalid-request"},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `{"message":"` + strings.Repeat("x", 2000) + `"}`, status: 413, slug: "body-too-large"},
		{method: "POST", path: "/api/v1/chat/start", token: "customer", body: `message=hi`, headers: map[string]string{"Content-Type": "text/plain"}, status: 415, slug: "unsupported-media-type"},
		{method: "GET", path: chatPath, token: "customer", status: 200},
		{method: "GET", path: chatPath + "?messages=0", token: "admin", status: 200},
		{method: "GET", path: chatPath + "?messages=-1", token: "admin", status: 400, slug: "invalid-request"},
		{method: "GET", path: "/api/v1/chat/nope", token: "admin", status: 404, slug: "not-found"},
		{method: "GET", path: "/api/v1/chat/unavailable", token: "admin", status: 503, slug: "service-unavailable"},
		{method: "GET", path: "/api/v1/chat/boom", token: "admin", status: 500, slug: "internal"},
		{method: "PATCH", path: chatPath, token: "admin", body: `{"status":"resolved","assignee":null}`, status: 200},
		{method: "PATCH", path: chatPath, token: "admin", body: `{"assignee":"admin-7"}`, status: 200},
		{method: "PATCH", path: chatPath, token: "customer", body: `{"status":"resolved"}`, status: 403, slug: "forbidden"},
		{method: "PATCH", path: chatPath, token: "admin", body: `{"assignee":7}`, status: 400, slug: "invalid-request"},
		{method: "GET", path: chatPath + "/messages", token: "customer", status: 200},
		{method: "GET", path: chatPath + "/messages?limit=100&before=AQAAAAAAAAAB", token: "customer", status: 200},
		{method: "GET", path: chatPath + "/messages?limit=0", token: "customer", status: 400, slug: "invalid-request"},
		{method: "POST", path: chatPath + "/messages", token: "customer", body: `{"body":"Thanks"}`, status: 201},
		{method: "POST", path: chatPath + "/messages", token: "admin", body: `{"body":"Thanks"}`, headers: map[string]string{"Idempotency-Key": "k2"}, status: 201},
		{method: "POST", path: chatPath + "/messages", token: "admin", body: `{"body":"Thanks"}`, headers: map[string]string{"Idempotency-Key": "k2"}, status: 201, replayed: true},
		{method: "POST", path: "/api/v1/chat/conflict/messages", token: "customer", body: `{"body":"Thanks"}`, status: 409, slug: "conflict"},
		{method: "POST", path: chatPath + "/read", token: "customer", status: 200},
		{method: "POST", path: chatPath + "/read", token: "customer", body: `{"message_id":"` + msgID + `"}`, status: 200},
		{method: "POST", path: chatPath + "/read", token: "customer", body: `[]`, status: 400, slug: "invalid-request"},
		{method: "PUT", path: "/api/v1/chat/presence", token: "admin", body: `{"status":"online"}`, status: 200},
		{method: "PUT", path: "/api/v1/chat/presence", token: "admin", body: `{"status":"away"}`, status: 200},
		{method: "PUT", path: "/api/v1/chat/presence", token: "admin", body: ``, status: 400, slug: "invalid-request"},
		{method: "GET", path: "/api/v1/admin/settings", token: "admin", status: 200},
		{method: "PUT", path: "/api/v1/admin/settings", token: "admin", body: `{"away_prompt":"Back at 9.","business_hours":` + hours + `,"unassign_on_away":true}`, status: 200},
		{method: "PUT", path: "/api/v1/admin/settings", token: "admin", body: `{"business_hours":null}`, status: 200},
		{method: "PUT", path: "/api/v1/admin/settings", token: "admin", body: `{"business_hours":{"timezone":"Mars/Base","weekly":{}}}`, status: 400, slug: "invalid-request"},
		{method: "PUT", path: "/api/v1/admin/settings", token: "admin", body: `{"retention":{"resolved_after_days":365}}`, status: 200},
		{method: "PUT", path: "/api/v1/admin/settings", token: "admin", body: `{"retention":{"resolved_after_days":null}}`, status: 200},
		{method: "PUT", path: "/api/v1/admin/settings", token: "admin", body: `{"retention":{"resolved_after_days":0}}`, status: 400, slug: "invalid-request"},
		{method: "GET", path: "/api/v1/admin/webhooks", token: "admin", status: 200},
		{method: "GET", path: "/api/v1/admin/webhooks", token: "customer", status: 403, slug: "forbidden"},
		{method: "POST", path: "/api/v1/admin/webhooks", token: "admin", body: `{"url":"https://hooks.shop.example/chat","events":["message.created","support.changed"],"description":"CRM","enabled":true}`, status: 201},
		{method: "POST", path: "/api/v1/admin/webhooks", token: "admin", body: `{"url":"http://hooks.shop.example/chat","events":["message.created"]}`, status: 400, slug: "invalid-request"},
		{method: "POST", path: "/api/v1/admin/webhooks", token: "admin", body: `{"url":"https://full.example/","events":["message.created"]}`, status: 409, slug: "conflict"},
		{method: "GET", path: "/api/v1/admin/webhooks/" + hookID, token: "admin", status: 200},
		{method: "GET", path: "/api/v1/admin/webhooks/" + hookDisabled, token: "admin", status: 200},
		{method: "GET", path: "/api/v1/admin/webhooks/ep_nope", token: "admin", status: 404, slug: "not-found"},
		{method: "PATCH", path: "/api/v1/admin/webhooks/" + hookID, token: "admin", body: `{"enabled":false,"events":["conversation.updated"]}`, status: 200},
		{method: "PATCH", path: "/api/v1/admin/webhooks/" + hookID, token: "admin", body: `{}`, status: 400, slug: "invalid-request"},
		{method: "DELETE", path: "/api/v1/admin/webhooks/" + hookID, token: "admin", status: 204},
		{method: "POST", path: "/api/v1/admin/webhooks/" + hookID + "/rotate-secret", token: "admin", status: 200},
		{method: "GET", path: "/api/v1/admin/webhooks/" + hookID + "/deliveries", token: "admin", status: 200},
		{method: "GET", path: "/api/v1/admin/webhooks/" + hookID + "/deliveries?limit=100&cursor=abc", token: "admin", status: 200},
		{method: "GET", path: "/api/v1/admin/webhooks/" + hookID + "/deliveries?limit=101", token: "admin", status: 400, slug: "invalid-request"},
		{method: "POST", path: "/api/v1/admin/webhooks/" + hookID + "/deliveries/wd_1/redeliver", token: "admin", status: 202},
		{method: "POST", path: "/api/v1/admin/webhooks/" + hookID + "/deliveries/wd_9/redeliver", token: "admin", status: 404, slug: "not-found"},
		{method: "POST", path: "/api/v1/admin/webhooks/" + hookDisabled + "/deliveries/wd_1/redeliver", token: "admin", status: 409, slug: "conflict"},
	}
	for _, x := range tests {
		name := x.method + " " + x.path
		t.Run(name, func(t *testing.T) {
			req := x.request()
			if x.status < 300 {
				if err := validateRequest(router, x.request()); err != nil {
					t.Errorf("the request is not valid by the document: %v", err)
				}
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != x.status {
				t.Fatalf("status = %d, want %d: %s", rec.Code, x.status, rec.Body)
			}
			if got := rec.Header().Get("Idempotent-Replayed") == "true"; got != x.replayed {
				t.Errorf("Idempotent-Replayed: %v, want %v", got, x.replayed)
			}
			if x.slug != "" {
				var p struct {
					Type string `json:"type"`
				}
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				if p.Type != httpapi.ProblemBase+x.slug {
					t.Fatalf("problem type = %q, want %s", p.Type, x.slug)
				}
			}
			if err := validateResponse(router, req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
				t.Errorf("the response does not match the document: %v\nheaders: %v\nbody: %s", err, rec.Header(), rec.Body)
			}
		})
	}
	t.Run("GET /readyz unavailable", func(t *testing.T) {
		req := httptest.NewRequest("GET", "http://example.test/readyz", nil)
		rec := httptest.NewRecorder()
		unready.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d", rec.Code)
		}
		if err := validateResponse(router, req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("the response does not match the document: %v\nbody: %s", err, rec.Body)
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		req := httptest.NewRequest("DELETE", "http://example.test/api/v1/chat/list", nil)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("status = %d", rec.Code)
		}
		doc := loadDoc(t)
		schema := doc.Components.Responses["MethodNotAllowed"].Value.Content.Get("application/problem+json").Schema.Value
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
			t.Errorf("405 problem does not match MethodNotAllowed: %v\nbody: %s", err, rec.Body)
		}
	})
}

// TestDriftFails checks the validation is strict enough to catch drift: an extra field, a
// missing one, a time without milliseconds and an undocumented status all fail.
func TestDriftFails(t *testing.T) {
	handler, router := apiServer(t, nil), openAPIRouter(t)
	req := exchange{method: "GET", path: "/api/v1/chat/list", token: "admin"}.request()
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	good := rec.Body.String()
	if err := validateResponse(router, req, 200, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Fatalf("the unchanged response fails: %v", err)
	}
	mutations := map[string]func(map[string]any){
		"extra top-level field": func(m map[string]any) { m["total"] = 3 },
		"extra conversation field": func(m map[string]any) {
			m["conversations"].([]any)[0].(map[string]any)["version"] = 4
		},
		"extra message field": func(m map[string]any) {
			c := m["conversations"].([]any)[0].(map[string]any)
			c["messages"].([]any)[0].(map[string]any)["seq"] = 1
		},
		"missing support field": func(m map[string]any) { delete(m["support"].(map[string]any), "prompt") },
		"context left out": func(m map[string]any) {
			delete(m["conversations"].([]any)[0].(map[string]any), "context")
		},
		"time without milliseconds": func(m map[string]any) {
			m["conversations"].([]any)[0].(map[string]any)["created_at"] = "2026-11-24T10:01:02Z"
		},
		"unknown status": func(m map[string]any) {
			m["conversations"].([]any)[0].(map[string]any)["status"] = "closed"
		},
		"non-null participant name missing": func(m map[string]any) {
			c := m["conversations"].([]any)[0].(map[string]any)
			delete(c["participants"].([]any)[0].(map[string]any), "name")
		},
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal([]byte(good), &m); err != nil {
				t.Fatal(err)
			}
			mutate(m)
			b, _ := json.Marshal(m)
			if err := validateResponse(router, req, 200, rec.Header(), b); err == nil {
				t.Errorf("a response with %s passes validation", name)
			}
		})
	}
	t.Run("undocumented status", func(t *testing.T) {
		if err := validateResponse(router, req, http.StatusTeapot, rec.Header(), rec.Body.Bytes()); err == nil {
			t.Error("status 418 passes validation")
		}
	})
	t.Run("missing X-Request-ID", func(t *testing.T) {
		h := rec.Header().Clone()
		h.Del("X-Request-ID")
		if err := validateResponse(router, req, 200, h, rec.Body.Bytes()); err == nil {
			t.Error("a response without X-Request-ID passes validation")
		}
	})
}
