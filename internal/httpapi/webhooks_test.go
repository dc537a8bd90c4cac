package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/limits"
	"github.com/supportchat/supportchat/internal/webhook"
)

// webhookJSON is a webhook endpoint as the API answers it.
type webhookJSON struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Description    string   `json:"description"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabled_reason"`
	Secret         string   `json:"secret"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
}

// deliveryPageJSON is a page of GET /admin/webhooks/{id}/deliveries.
type deliveryPageJSON struct {
	Deliveries []deliveryJSON `json:"deliveries"`
	NextCursor *string        `json:"next_cursor"`
}

type deliveryJSON struct {
	ID            string  `json:"id"`
	EventID       string  `json:"event_id"`
	Type          string  `json:"type"`
	State         string  `json:"state"`
	CreatedAt     string  `json:"created_at"`
	NextAttemptAt *string `json:"next_attempt_at"`
	Attempts      []struct {
		At         string `json:"at"`
		Status     *int   `json:"status"`
		DurationMS int64  `json:"duration_ms"`
		Error      string `json:"error"`
	} `json:"attempts"`
}

// hookBody is a valid body of POST /admin/webhooks.
func hookBody(u string) map[string]any {
	return map[string]any{"url": u, "events": []string{"message.created", "conversation.created"}, "description": "CRM sync"}
}

// createHook registers an endpoint as admin u and returns it, with its secret.
func (u user) createHook(body map[string]any) webhookJSON {
	u.s.t.Helper()
	r := u.do("POST", "/api/v1/admin/webhooks", body)
	if r.Status != http.StatusCreated {
		u.s.t.Fatalf("POST /admin/webhooks = %d %s", r.Status, r.Body)
	}
	var w webhookJSON
	r.JSON(u.s.t, &w)
	return w
}

// hooks returns the endpoints admin u lists.
func (u user) hooks() []webhookJSON {
	u.s.t.Helper()
	r := u.do("GET", "/api/v1/admin/webhooks", nil)
	if r.Status != http.StatusOK {
		u.s.t.Fatalf("GET /admin/webhooks = %d %s", r.Status, r.Body)
	}
	var l struct {
		Webhooks []webhookJSON `json:"webhooks"`
	}
	r.JSON(u.s.t, &l)
	return l.Webhooks
}

// noSecret fails the test when an answer carries a secret field or one of secrets.
func noSecret(t *testing.T, what string, body []byte, secrets ...string) {
	t.Helper()
	if bytes.Contains(body, []byte(`"secret"`)) || bytes.Contains(body, []byte("whsec_")) {
		t.Errorf("%s carries a secret: %s", what, body)
	}
	for _, s := range secrets {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("%s carries the secret %q", what, s)
		}
	}
}

func TestWebhookEndpointLifecycle(t *testing.T) {
	s := newStack(t)
	grace := s.admin(shop, "grace")

	r := grace.do("POST", "/api/v1/admin/webhooks", hookBody("https://hooks.demo-shop.example/chat"))
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /admin/webhooks = %d %s", r.Status, r.Body)
	}
	var w webhookJSON
	r.JSON(t, &w)
	if loc := r.Header.Get("Location"); loc != "/api/v1/admin/webhooks/"+w.ID {
		t.Errorf("Location = %q, want /api/v1/admin/webhooks/%s", loc, w.ID)
	}
	want := webhookJSON{
		ID: w.ID, URL: "https://hooks.demo-shop.example/chat", Events: []string{"conversation.created", "message.created"},
		Description: "CRM sync", Enabled: true, Secret: w.Secret, CreatedAt: "2026-11-25T11:00:00.000Z", UpdatedAt: "2026-11-25T11:00:00.000Z",
	}
	if fmt.Sprint(w) != fmt.Sprint(want) {
		t.Errorf("POST /admin/webhooks = %+v, want %+v", w, want)
	}
	if !strings.HasPrefix(w.Secret, "whsec_") {
		t.Fatalf("secret %q, want whsec_...", w.Secret)
	}
	first := w.Secret

	path := "/api/v1/admin/webhooks/" + w.ID
	r = grace.do("GET", path, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, r.Status, r.Body)
	}
	noSecret(t, "GET", r.Body, first)
	r = grace.do("GET", "/api/v1/admin/webhooks", nil)
	noSecret(t, "the list", r.Body, first)
	if l := grace.hooks(); len(l) != 1 || l[0].ID != w.ID {
		t.Errorf("list = %+v, want the one endpoint", l)
	}

	s.clock.Advance(time.Second)
	r = grace.do("PATCH", path, map[string]any{"enabled": false, "url": "https://crm.demo-shop.example/in"})
	if r.Status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", r.Status, r.Body)
	}
	noSecret(t, "PATCH", r.Body, first)
	var p webhookJSON
	r.JSON(t, &p)
	if p.Enabled || p.URL != "https://crm.demo-shop.example/in" || p.Description != "CRM sync" || len(p.Events) != 2 || p.UpdatedAt != "2026-11-25T11:00:01.000Z" || p.CreatedAt != w.CreatedAt {
		t.Errorf("PATCH enabled and url = %+v; want those changed, the rest kept, updated_at moved", p)
	}
	if got := grace.hooks()[0]; got.Enabled || got.URL != p.URL {
		t.Errorf("after PATCH the list shows %+v", got)
	}
	r = grace.do("PATCH", path, map[string]any{"enabled": true})
	if r.JSON(t, &p); r.Status != http.StatusOK || !p.Enabled {
		t.Errorf("PATCH enabled true = %d %s", r.Status, r.Body)
	}

	r = grace.do("POST", path+"/rotate-secret", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate-secret = %d %s", r.Status, r.Body)
	}
	var rot webhookJSON
	r.JSON(t, &rot)
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == first || rot.ID != w.ID {
		t.Errorf("rotate-secret = %+v; want a new whsec_ secret of the same endpoint", rot)
	}
	r = grace.do("GET", path, nil)
	noSecret(t, "GET after rotation", r.Body, first, rot.Secret)

	if r := grace.do("DELETE", path, nil); r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("DELETE = %d %q, want 204 and no body", r.Status, r.Body)
	}
	if p := grace.do("GET", path, nil).Problem(t, http.StatusNotFound); p.Slug() != "not-found" {
		t.Errorf("GET after DELETE: %s", p.Slug())
	}
	grace.do("DELETE", path, nil).Problem(t, http.StatusNotFound)
	if l := grace.hooks(); len(l) != 0 {
		t.Errorf("list after DELETE = %+v, want none", l)
	}
}

func TestWebhooksAreForAdminsOfTheirOwnTenant(t *testing.T) {
	s := newStack(t)
	grace := s.admin(shop, "grace")
	w := grace.createHook(hookBody("https://hooks.demo-shop.example/chat"))
	base := "/api/v1/admin/webhooks"
	path := base + "/" + w.ID
	routes := []struct{ method, path string }{
		{"GET", base},
		{"POST", base},
		{"GET", path},
		{"PATCH", path},
		{"DELETE", path},
		{"POST", path + "/rotate-secret"},
		{"GET", path + "/deliveries"},
		{"POST", path + "/deliveries/wd_0123/redeliver"},
	}
	bodyOf := func(method, p string) any {
		switch {
		case method == "POST" && p == base:
			return hookBody("https://hooks.demo-shop.example/other")
		case method == "PATCH":
			return map[string]any{"description": "taken over"}
		}
		return nil
	}
	t.Run("customers get 403", func(t *testing.T) {
		ada := s.customer(shop, "ada")
		for _, rt := range routes {
			if p := ada.do(rt.method, rt.path, bodyOf(rt.method, rt.path)).Problem(t, http.StatusForbidden); p.Slug() != "forbidden" {
				t.Errorf("%s %s as a customer: %s", rt.method, rt.path, p.Slug())
			}
		}
	})
	t.Run("another tenant's admins get 404", func(t *testing.T) {
		other := s.admin(outdoor, "olga")
		for _, rt := range routes[2:] {
			if p := other.do(rt.method, rt.path, bodyOf(rt.method, rt.path)).Problem(t, http.StatusNotFound); p.Slug() != "not-found" {
				t.Errorf("%s %s as another tenant's admin: %s", rt.method, rt.path, p.Slug())
			}
		}
		if l := other.hooks(); len(l) != 0 {
			t.Errorf("another tenant lists %+v", l)
		}
	})
	got := grace.hooks()
	if len(got) != 1 || got[0].Description != "CRM sync" {
		t.Errorf("after the refused requests the list is %+v, want the endpoint unchanged", got)
	}
}

func TestWebhookValidationNamesTheField(t *testing.T) {
	s := newStack(t)
	grace := s.admin(shop, "grace")
	with := func(field string, v any) map[string]any {
		b := hookBody("https://hooks.demo-shop.example/chat")
		if v == nil {
			delete(b, field)
		} else {
			b[field] = v
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"plain http to a public address", with("url", "http://93.184.216.34/hook"), "url"},
		{"https to a private address", with("url", "https://10.1.2.3/hook"), "url"},
		{"https to the metadata address", with("url", "https://169.254.169.254/latest"), "url"},
		{"a URL with user information", with("url", "https://shop:hunter2@hooks.demo-shop.example/chat"), "url"},
		{"a URL without a host", with("url", "https:///chat"), "url"},
		{"a relative URL", with("url", "/chat"), "url"},
		{"another scheme", with("url", "ftp://hooks.demo-shop.example/chat"), "url"},
		{"a URL over 2048 bytes", with("url", "https://hooks.demo-shop.example/"+strings.Repeat("a", 2048)), "url"},
		{"no URL", with("url", nil), "url"},
		{"an unknown event type", with("events", []string{"message.created", "message.deleted"}), "events[1]"},
		{"no event types", with("events", []string{}), "events"},
		{"no events field", with("events", nil), "events"},
		{"events not a list", with("events", "message.created"), "events"},
		{"a description over 500 characters", with("description", strings.Repeat("é", 501)), "description"},
		{"a secret chosen by the caller", with("secret", "whsec_AAAA"), "secret"},
		{"not an object", "[]", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := grace.do("POST", "/api/v1/admin/webhooks", tc.body).Problem(t, http.StatusBadRequest)
			if p.Slug() != "invalid-request" || p.Field() != tc.field {
				t.Errorf("%s names %q, want %q: %s", p.Slug(), p.Field(), tc.field, p.Detail)
			}
		})
	}
	if l := grace.hooks(); len(l) != 0 {
		t.Fatalf("refused requests stored %+v", l)
	}

	w := grace.createHook(hookBody("https://hooks.demo-shop.example/chat"))
	path := "/api/v1/admin/webhooks/" + w.ID
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"nothing to change", map[string]any{}, "body"},
		{"a private URL", map[string]any{"url": "https://192.168.1.1/"}, "url"},
		{"an unknown event type", map[string]any{"events": []string{"chat.closed"}}, "events[0]"},
		{"an unknown field", map[string]any{"secret": "whsec_AAAA"}, "secret"},
		{"enabled not a boolean", map[string]any{"enabled": "yes"}, "enabled"},
	} {
		t.Run("PATCH "+tc.name, func(t *testing.T) {
			p := grace.do("PATCH", path, tc.body).Problem(t, http.StatusBadRequest)
			if p.Field() != tc.field {
				t.Errorf("names %q, want %q: %s", p.Field(), tc.field, p.Detail)
			}
		})
	}
	if got := grace.hooks(); len(got) != 1 || got[0].URL != w.URL || got[0].UpdatedAt != w.UpdatedAt {
		t.Errorf("refused PATCHes changed the endpoint: %+v", got)
	}
	// Loopback is allowed in the stack (as chatd-dev allows it), where plain http is too.
	r := grace.do("PATCH", path, map[string]any{"url": "http://127.0.0.1:8081/hook"})
	if r.Status != http.StatusOK {
		t.Errorf("PATCH to an allowed loopback http URL = %d %s", r.Status, r.Body)
	}
}

func TestWebhookEndpointsAreCapped(t *testing.T) {
	s := newStack(t)
	grace := s.admin(shop, "grace")
	var last webhookJSON
	for i := range webhook.MaxEndpoints {
		last = grace.createHook(hookBody(fmt.Sprintf("https://hooks.demo-shop.example/%d", i)))
	}
	if p := grace.do("POST", "/api/v1/admin/webhooks", hookBody("https://hooks.demo-shop.example/over")).Problem(t, http.StatusConflict); p.Slug() != "conflict" {
		t.Errorf("endpoint %d: %s", webhook.MaxEndpoints+1, p.Slug())
	}
	if n := len(grace.hooks()); n != webhook.MaxEndpoints {
		t.Errorf("%d endpoints listed, want %d", n, webhook.MaxEndpoints)
	}
	// The cap is per tenant, and a deleted endpoint frees its place.
	s.admin(outdoor, "olga").createHook(hookBody("https://hooks.acme-outdoor.example/chat"))
	if r := grace.do("DELETE", "/api/v1/admin/webhooks/"+last.ID, nil); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", r.Status, r.Body)
	}
	grace.createHook(hookBody("https://hooks.demo-shop.example/again"))
}

// addDeliveries stores deliveries of an endpoint as the fan-out does, oldest first, a
// second apart from the stack's clock, and returns their ids.
func addDeliveries(t *testing.T, s *stack, tenantID, endpointID string, ds ...webhook.Delivery) []string {
	t.Helper()
	ids := make([]string, len(ds))
	for i := range ds {
		d := &ds[i]
		d.ID, d.TenantID, d.EndpointID = "wd_"+randomID(), tenantID, endpointID
		d.EventID, d.Body, d.Order = randomID(), []byte(`{"type":"message.created","data":{"secret":"no"}}`), fmt.Sprintf("%04d", i)
		if d.Type == "" {
			d.Type = chat.EventMessageCreated
		}
		d.CreatedAt = s.clock.Now().Add(time.Duration(i) * time.Second).Truncate(time.Millisecond)
		ids[i] = d.ID
	}
	if err := s.store.AddDeliveries(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	return ids
}

// deliveries returns a page of an endpoint's deliveries as admin u sees it.
func (u user) deliveries(endpointID, query string) (deliveryPageJSON, []byte) {
	u.s.t.Helper()
	r := u.do("GET", "/api/v1/admin/webhooks/"+endpointID+"/deliveries"+query, nil)
	if r.Status != http.StatusOK {
		u.s.t.Fatalf("GET deliveries%s = %d %s", query, r.Status, r.Body)
	}
	var p deliveryPageJSON
	r.JSON(u.s.t, &p)
	return p, r.Body
}

func TestWebhookDeliveriesArePaged(t *testing.T) {
	s := newStack(t)
	grace := s.admin(shop, "grace")
	w := grace.createHook(hookBody("https://hooks.demo-shop.example/chat"))

	_, raw := grace.deliveries(w.ID, "")
	if string(raw) != `{"deliveries":[],"next_cursor":null}` {
		t.Errorf("no deliveries: %s, want an empty list and a null cursor", raw)
	}

	now := s.clock.Now()
	ids := addDeliveries(t, s, shop, w.ID,
		webhook.Delivery{State: webhook.Dead, Attempts: []webhook.Attempt{
			{At: now, Status: 0, Duration: 10 * time.Second, Error: "timeout"},
			{At: now.Add(5 * time.Second), Status: 500, Duration: 1500 * time.Microsecond, Error: "status 500"},
		}},
		webhook.Delivery{State: webhook.Delivered, Type: chat.EventConversationCreated, Attempts: []webhook.Attempt{{At: now, Status: 204, Duration: 30 * time.Millisecond}}},
		webhook.Delivery{State: webhook.Pending, NextAt: now.Add(5 * time.Minute)},
	)

	page, raw := grace.deliveries(w.ID, "?limit=2")
	if bytes.Contains(raw, []byte(`"body"`)) || bytes.Contains(raw, []byte(`"data"`)) {
		t.Errorf("the list shows delivery bodies: %s", raw)
	}
	if len(page.Deliveries) != 2 || page.Deliveries[0].ID != ids[2] || page.Deliveries[1].ID != ids[1] || page.NextCursor == nil {
		t.Fatalf("first page = %s; want the two newest and a cursor", raw)
	}
	pending, delivered := page.Deliveries[0], page.Deliveries[1]
	if pending.State != "pending" || pending.NextAttemptAt == nil || *pending.NextAttemptAt != "2026-11-25T11:05:00.000Z" || len(pending.Attempts) != 0 {
		t.Errorf("pending delivery = %+v; want its next attempt and no attempts", pending)
	}
	if delivered.State != "delivered" || delivered.NextAttemptAt != nil || delivered.Type != "conversation.created" ||
		len(delivered.Attempts) != 1 || delivered.Attempts[0].Status == nil || *delivered.Attempts[0].Status != 204 || delivered.Attempts[0].DurationMS != 30 {
		t.Errorf("delivered delivery = %+v", delivered)
	}

	next := url.Values{"cursor": {*page.NextCursor}, "limit": {"2"}}
	page, raw = grace.deliveries(w.ID, "?"+next.Encode())
	if len(page.Deliveries) != 1 || page.Deliveries[0].ID != ids[0] || page.NextCursor != nil {
		t.Fatalf("second page = %s; want the oldest and a null cursor", raw)
	}
	dead := page.Deliveries[0]
	if dead.State != "dead" || dead.NextAttemptAt != nil || len(dead.Attempts) != 2 {
		t.Fatalf("dead delivery = %+v", dead)
	}
	if a := dead.Attempts[0]; a.Status != nil || a.Error != "timeout" || a.DurationMS != 10000 {
		t.Errorf("an attempt without an answer = %+v; want status null, the error and its duration", a)
	}
	if a := dead.Attempts[1]; a.Status == nil || *a.Status != 500 || a.Error != "status 500" || a.DurationMS != 1 {
		t.Errorf("an attempt answered 500 = %+v", a)
	}

	for _, q := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=101", "limit"},
		{"?limit=x", "limit"},
		{"?cursor=not-a-cursor!", "cursor"},
		{"?before=x", "before"},
	} {
		p := grace.do("GET", "/api/v1/admin/webhooks/"+w.ID+"/deliveries"+q.query, nil).Problem(t, http.StatusBadRequest)
		if p.Field() != q.field {
			t.Errorf("deliveries%s names %q, want %q", q.query, p.Field(), q.field)
		}
	}
	grace.do("GET", "/api/v1/admin/webhooks/ep_none/deliveries", nil).Problem(t, http.StatusNotFound)
}

func TestWebhookRedelivery(t *testing.T) {
	s := newStack(t)
	grace := s.admin(shop, "grace")
	w := grace.createHook(hookBody("https://hooks.demo-shop.example/chat"))
	other := grace.createHook(hookBody("https://hooks.demo-shop.example/other"))
	ids := addDeliveries(t, s, shop, w.ID,
		webhook.Delivery{State: webhook.Dead, Tries: 10, Attempts: []webhook.Attempt{{At: s.clock.Now(), Status: 503, Error: "status 503"}}},
		webhook.Delivery{State: webhook.Pending, NextAt: s.clock.Now().Add(time.Hour), Tries: 3},
	)
	s.clock.Advance(time.Minute)
	redeliver := func(endpointID, deliveryID string) response {
		return grace.do("POST", "/api/v1/admin/webhooks/"+endpointID+"/deliveries/"+deliveryID+"/redeliver", nil)
	}

	r := redeliver(w.ID, ids[0])
	if r.Status != http.StatusAccepted {
		t.Fatalf("redeliver a dead delivery = %d %s", r.Status, r.Body)
	}
	var d deliveryJSON
	r.JSON(t, &d)
	if d.ID != ids[0] || d.State != "pending" || d.NextAttemptAt == nil || *d.NextAttemptAt != "2026-11-25T11:01:00.000Z" || len(d.Attempts) != 1 {
		t.Errorf("redelivered = %+v; want it pending now, its attempts kept", d)
	}
	r = redeliver(w.ID, ids[1])
	if r.JSON(t, &d); r.Status != http.StatusAccepted || d.State != "pending" || *d.NextAttemptAt != "2026-11-25T12:00:00.000Z" {
		t.Errorf("redeliver a pending delivery = %d %s; want it as it was", r.Status, r.Body)
	}

	if p := redeliver(other.ID, ids[0]).Problem(t, http.StatusNotFound); p.Slug() != "not-found" {
		t.Errorf("another endpoint's delivery: %s", p.Slug())
	}
	redeliver(w.ID, "wd_unknown").Problem(t, http.StatusNotFound)
	if r := grace.do("PATCH", "/api/v1/admin/webhooks/"+w.ID, map[string]any{"enabled": false}); r.Status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", r.Status, r.Body)
	}
	if p := redeliver(w.ID, ids[0]).Problem(t, http.StatusConflict); !strings.Contains(p.Detail, "disabled") {
		t.Errorf("redeliver to a disabled endpoint: %q", p.Detail)
	}
}

func TestWebhookChangesCountAsWrites(t *testing.T) {
	s := newStack(t, stackOptions{limits: limits.Config{RequestsPerMinute: 100, WritesPerMinute: 5}})
	grace := s.admin(shop, "grace")
	w := grace.createHook(hookBody("https://hooks.demo-shop.example/chat")) // write 1
	path := "/api/v1/admin/webhooks/" + w.ID
	ids := addDeliveries(t, s, shop, w.ID, webhook.Delivery{State: webhook.Dead})
	for _, x := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"PATCH", path, map[string]any{"description": "CRM"}, http.StatusOK},              // write 2
		{"POST", path + "/rotate-secret", nil, http.StatusOK},                             // write 3
		{"POST", path + "/deliveries/" + ids[0] + "/redeliver", nil, http.StatusAccepted}, // write 4
		{"GET", path, nil, http.StatusOK},
		{"GET", path + "/deliveries", nil, http.StatusOK},
		{"GET", "/api/v1/admin/webhooks", nil, http.StatusOK},
		{"DELETE", path, nil, http.StatusNoContent}, // write 5
	} {
		if r := grace.do(x.method, x.path, x.body); r.Status != x.status {
			t.Fatalf("%s %s = %d %s, want %d", x.method, x.path, r.Status, r.Body, x.status)
		}
	}
	r := grace.do("POST", "/api/v1/admin/webhooks", hookBody("https://hooks.demo-shop.example/chat"))
	if p := r.Problem(t, http.StatusTooManyRequests); !strings.Contains(p.Detail, "5 changes") {
		t.Errorf("a sixth write: %q, want the limit of 5 changes", p.Detail)
	}
	if got := r.Header.Get("RateLimit-Policy"); got != `"writes";q=5;w=60` {
		t.Errorf("RateLimit-Policy = %q, want \"writes\";q=5;w=60", got)
	}
	if r := grace.do("GET", "/api/v1/admin/webhooks", nil); r.Status != http.StatusOK {
		t.Errorf("a read after the writes ran out = %d, want 200", r.Status)
	}
}
