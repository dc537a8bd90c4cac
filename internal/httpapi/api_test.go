package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTenantResolution(t *testing.T) {
	s := newStack(t)
	token := s.issuers[shop].Token(t, "cust-1", false)
	tests := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"tenant by X-Tenant-ID", map[string]string{"X-Tenant-ID": shop}, http.StatusOK},
		{"tenant by Host", map[string]string{"Host": "support.demo-shop.example"}, http.StatusOK},
		{"tenant by Host with port and capitals", map[string]string{"Host": "Support.Demo-Shop.example:8443"}, http.StatusOK},
		{"unknown X-Tenant-ID", map[string]string{"X-Tenant-ID": "nobody"}, http.StatusNotFound},
		{"no tenant at all", map[string]string{}, http.StatusNotFound},
		{"token of demo-shop sent to acme-outdoor", map[string]string{"X-Tenant-ID": outdoor}, http.StatusUnauthorized},
		{"X-Tenant-ID agreeing with the Host", map[string]string{"Host": "support.demo-shop.example", "X-Tenant-ID": shop}, http.StatusOK},
		{"X-Tenant-ID naming another tenant than the Host", map[string]string{"Host": "support.demo-shop.example", "X-Tenant-ID": outdoor}, http.StatusNotFound},
		{"X-Tenant-ID with a Host of no tenant", map[string]string{"Host": "chat.elsewhere.example", "X-Tenant-ID": shop}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": "Bearer " + token}
			for k, v := range tt.headers {
				h[k] = v
			}
			r := s.request("GET", "/api/v1/chat/list", nil, h)
			if r.Status != tt.want {
				t.Fatalf("status = %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if tt.want == http.StatusNotFound {
				if p := r.Problem(t, 404); p.Slug() != "tenant-not-found" {
					t.Errorf("problem = %s, want tenant-not-found", p.Slug())
				}
			}
		})
	}
}

func TestTokenRejections(t *testing.T) {
	s := newStack(t)
	iss := s.issuers[shop]
	for _, tt := range []struct {
		name          string
		authorization string
	}{
		{"no Authorization header", ""},
		{"another scheme", "Basic YWRhOnNlY3JldA=="},
		{"a bearer without a token", "Bearer "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"X-Tenant-ID": shop}
			if tt.authorization != "" {
				h["Authorization"] = tt.authorization
			}
			r := s.request("GET", "/api/v1/chat/list", nil, h)
			if p := r.Problem(t, http.StatusUnauthorized); p.Slug() != "invalid-token" {
				t.Errorf("problem = %s, want invalid-token", p.Slug())
			}
			// RFC 6750 §3.1: no error code when the request carries no bearer credentials.
			if got, want := r.Header.Get("WWW-Authenticate"), `Bearer realm="support-chat"`; got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}
	tests := []struct {
		name  string
		token string
	}{
		{"garbage", "not-a-jwt"},
		{"HMAC signed", iss.HS256(t, map[string]any{"sub": "x", "aud": "support-chat", "iss": iss.URL(), "exp": time.Now().Add(time.Hour).Unix()})},
		{"alg none", iss.None(t, map[string]any{"sub": "x", "aud": "support-chat", "iss": iss.URL(), "exp": time.Now().Add(time.Hour).Unix()})},
		{"expired beyond the 60 s skew", iss.TokenWith(t, "RS256", func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() })},
		{"wrong audience", iss.TokenWith(t, "ES256", func(c map[string]any) { c["aud"] = "another-app" })},
		{"wrong issuer", iss.TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = "https://evil.example" })},
		{"no subject", iss.TokenWith(t, "RS256", func(c map[string]any) { delete(c, "sub") })},
		{"not yet valid", iss.TokenWith(t, "RS256", func(c map[string]any) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() })},
		{"signed by a key not in the JWKS", iss.SignWithUnknownKey(t, map[string]any{"sub": "x", "aud": "support-chat", "iss": iss.URL(), "exp": time.Now().Add(time.Hour).Unix()})},
		{"token of another tenant's issuer", s.issuers[outdoor].Token(t, "x", true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := user{s: s, tenant: shop, token: tt.token}
			r := u.do("GET", "/api/v1/chat/list", nil)
			p := r.Problem(t, http.StatusUnauthorized)
			if p.Slug() != "invalid-token" {
				t.Errorf("problem = %s, want invalid-token", p.Slug())
			}
			if got, want := r.Header.Get("WWW-Authenticate"), `Bearer realm="support-chat", error="invalid_token"`; got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
			if strings.Contains(string(r.Body), tt.token) {
				t.Error("the token is echoed in the problem")
			}
		})
	}
	t.Run("accepted: RSA and EC tokens within the skew", func(t *testing.T) {
		for _, tok := range []string{
			iss.TokenWith(t, "RS256", func(c map[string]any) { c["exp"] = time.Now().Add(-30 * time.Second).Unix() }),
			iss.TokenWith(t, "ES256", nil),
		} {
			if r := (user{s: s, tenant: shop, token: tok}).do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
				t.Errorf("status = %d: %s", r.Status, r.Body)
			}
		}
	})
}

func TestIssuerDownAffectsOnlyItsTenant(t *testing.T) {
	s := newStack(t)
	// A token that names the down issuer: the service must ask that issuer for its keys.
	token := s.issuers[shop].TokenWith(t, "RS256", func(c map[string]any) { c["iss"] = "http://127.0.0.1:9" })
	down := user{s: s, tenant: "down-shop", token: token}
	start := time.Now()
	p := down.do("GET", "/api/v1/chat/list", nil).Problem(t, http.StatusServiceUnavailable)
	if p.Slug() != "issuer-unavailable" {
		t.Errorf("problem = %s, want issuer-unavailable", p.Slug())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("answer took %s; an unreachable issuer must fail fast", d)
	}
	s.customer(shop, "cust-1").list("")
}

func TestStartAndList(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	r := ada.do("POST", "/api/v1/chat/start", map[string]any{
		"subject": "Where is my order?",
		"message": "  It has not arrived.  ",
		"context": map[string]string{"order_id": "ord-1", "page_url": "https://shop.example/orders/ord-1"},
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	var started conversationJSON
	r.JSON(t, &started)
	if loc := r.Header.Get("Location"); loc != "/api/v1/chat/"+started.ID {
		t.Errorf("Location = %q", loc)
	}
	// The first message, and the away prompt because no admin is online.
	if started.Subject != "Where is my order?" || len(started.Messages) != 2 || started.Messages[0].Body != "It has not arrived." || started.Messages[1].Sender.Role != "system" {
		t.Errorf("started = %+v", started)
	}
	if started.Assignee != nil || strings.Contains(string(r.Body), `"assignee"`) {
		t.Errorf("customers must not see the assignee: %s", r.Body)
	}

	l := ada.list("")
	if len(l.Conversations) != 1 || l.Conversations[0].ID != started.ID {
		t.Fatalf("list = %+v", l)
	}
	if got := l.Conversations[0].Context["order_id"]; got == nil || *got != "ord-1" {
		t.Errorf("context = %v", l.Conversations[0].Context)
	}
	if l.Support.Status == "" {
		t.Error("no support block")
	}

	// Another customer of the tenant, and the admins of another tenant, see nothing of it.
	if l := s.customer(shop, "cust-bob").list(""); len(l.Conversations) != 0 {
		t.Errorf("another customer sees %d conversations", len(l.Conversations))
	}
	if l := s.admin(outdoor, "agent-1").list(""); len(l.Conversations) != 0 {
		t.Errorf("another tenant's admin sees %d conversations", len(l.Conversations))
	}
	// The tenant's admins see it, with the assignee field.
	al := s.admin(shop, "admin-1").do("GET", "/api/v1/chat/list", nil)
	if !strings.Contains(string(al.Body), `"assignee":null`) {
		t.Errorf("admin list lacks assignee: %s", al.Body)
	}

	// A subject is derived from the first line when none is given.
	c := ada.start("Do the boots run small?\nI wear 42.")
	if c.Subject != "Do the boots run small?" {
		t.Errorf("derived subject = %q", c.Subject)
	}

	// Admins do not start conversations.
	if p := s.admin(shop, "admin-1").do("POST", "/api/v1/chat/start", map[string]any{"message": "hi"}).Problem(t, 403); p.Slug() != "forbidden" {
		t.Errorf("problem = %s", p.Slug())
	}
}

func TestListBadParameters(t *testing.T) {
	s := newStack(t)
	customer := s.customer(shop, "cust-1")
	admin := s.admin(shop, "admin-1")
	tests := []struct {
		name       string
		who        user
		query      string
		status     int
		wantField  string
		wantDetail string
	}{
		{"limit zero", customer, "?limit=0", 400, "limit", "limit must be a positive integer."},
		{"limit above 100", customer, "?limit=101", 400, "limit", "limit must be between 1 and 100."},
		{"limit not a number", customer, "?limit=ten", 400, "limit", ""},
		{"messages above 20", customer, "?messages=21", 400, "messages", ""},
		{"messages negative", customer, "?messages=-1", 400, "messages", ""},
		{"limit × messages above 500", customer, "?limit=26&messages=20", 400, "messages", "messages must be at most 19 with limit 26: limit × messages is at most 500."},
		{"garbage cursor", customer, "?cursor=abc", 400, "cursor", ""},
		{"unknown parameter", customer, "?limt=5", 400, "limt", "limt is not a known query parameter."},
		{"repeated parameter", customer, "?limit=5&limit=6", 400, "limit", ""},
		{"customer filtering by status", customer, "?status=open", 403, "status", "Only admins can filter the list by status."},
		{"customer filtering by unread", customer, "?unread=true", 403, "unread", "Only admins can filter the list by unread."},
		{"customer filtering by customer", customer, "?customer_id=cust-2", 403, "customer_id", ""},
		{"bad status", admin, "?status=closed", 400, "status", "status must be open or resolved."},
		{"bad unread", admin, "?unread=yes", 400, "unread", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.who.do("GET", "/api/v1/chat/list"+tt.query, nil).Problem(t, tt.status)
			if p.Field() != tt.wantField {
				t.Errorf("field = %q, want %q (%s)", p.Field(), tt.wantField, p.Detail)
			}
			// Details are sentences: the field leads a validation error's, any other is capitalised.
			if tt.wantDetail != "" && p.Detail != tt.wantDetail {
				t.Errorf("detail = %q, want %q", p.Detail, tt.wantDetail)
			}
			if !strings.HasSuffix(p.Detail, ".") {
				t.Errorf("detail %q is not a sentence", p.Detail)
			}
		})
	}
}

func TestListPagingIsStableUnderConcurrentWrites(t *testing.T) {
	s := newStack(t)
	admin := s.admin(shop, "admin-1")
	const n = 23
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.customer(shop, fmt.Sprintf("cust-%d", i)).start(fmt.Sprintf("question %d", i)).ID
		s.clock.Advance(time.Second)
	}
	// While one admin pages through the list, another answers conversations at the same time;
	// those move to the top. Each answer starts right after a page is read and runs while the
	// next page is read; the pager waits for it before the page after that, so six answers
	// land during the pass however fast or slow the machine is.
	touched := map[string]bool{}
	answerer := s.admin(shop, "admin-2")
	answer := func(k int) chan struct{} {
		done := make(chan struct{})
		i := (k * 7) % n // six of the conversations, spread over the pass
		touched[ids[i]] = true
		s.clock.Advance(time.Millisecond)
		go func() {
			defer close(done)
			if r, err := s.send(s.srv.Client(), "POST", "/api/v1/chat/"+ids[i]+"/messages", map[string]string{"body": "on it"},
				map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + answerer.token}); err != nil || r.Status != http.StatusCreated {
				t.Errorf("concurrent answer = %d %s %v", r.Status, r.Body, err)
			}
		}()
		return done
	}
	seen := map[string]int{}
	cursor := ""
	var pending chan struct{}
	answered := 0
	for {
		q := "?limit=4"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		l := admin.list(q)
		for _, c := range l.Conversations {
			seen[c.ID]++
		}
		if pending != nil {
			<-pending
			pending = nil
		}
		if l.NextCursor == nil {
			break
		}
		cursor = *l.NextCursor
		if answered < 6 {
			pending = answer(answered)
			answered++
		}
	}
	if answered < 3 {
		t.Fatalf("only %d answers during the pass, want at least 3", answered)
	}
	for _, id := range ids {
		if seen[id] > 1 {
			t.Errorf("conversation %s listed %d times in one pass", id, seen[id])
		}
		if seen[id] == 0 && !touched[id] {
			t.Errorf("conversation %s skipped though it did not change", id)
		}
	}
	// A cursor is bound to its filters.
	l := admin.list("?limit=2")
	p := admin.do("GET", "/api/v1/chat/list?limit=2&status=open&cursor="+*l.NextCursor, nil).Problem(t, 400)
	if p.Field() != "cursor" {
		t.Errorf("field = %q", p.Field())
	}
}

func TestPresenceAndSupportStatus(t *testing.T) {
	s := newStack(t)
	cust := s.customer(shop, "cust-1")
	admin := s.admin(shop, "admin-1")

	sup := cust.list("").Support
	if sup.Status != "offline" || sup.Available || sup.Reason == nil || *sup.Reason != "no_admin_online" || sup.Prompt == nil {
		t.Errorf("no admin: support = %+v", sup)
	}
	admin.setPresence("online")
	if sup := cust.list("").Support; sup.Status != "online" || !sup.Available || sup.Prompt != nil || sup.Reason != nil {
		t.Errorf("admin online: support = %+v", sup)
	}
	// Without a heartbeat the admin lapses to offline after the TTL (60 s).
	s.clock.Advance(61 * time.Second)
	if sup := cust.list("").Support; sup.Status != "offline" {
		t.Errorf("after the TTL: support = %+v", sup)
	}
	admin.setPresence("away")
	if sup := cust.list("").Support; sup.Status != "away" || *sup.Reason != "admins_away" {
		t.Errorf("admin away: support = %+v", sup)
	}
	// Customers cannot set presence; nor can anything but online and away be set.
	if p := cust.do("PUT", "/api/v1/chat/presence", map[string]string{"status": "online"}).Problem(t, 403); p.Slug() != "forbidden" {
		t.Errorf("problem = %s", p.Slug())
	}
	if p := admin.do("PUT", "/api/v1/chat/presence", map[string]string{"status": "offline"}).Problem(t, 400); p.Field() != "status" {
		t.Errorf("field = %q", p.Field())
	}

	// Outside business hours (Saturday in Berlin) support is away whatever presence says, and
	// the next opening is Monday 09:00 Berlin = 08:00 UTC.
	s.clock.Set(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	admin.setPresence("online")
	sup = cust.list("").Support
	if sup.Status != "away" || *sup.Reason != "outside_business_hours" || sup.NextAvailableAt == nil || *sup.NextAvailableAt != "2026-11-30T08:00:00.000Z" {
		t.Errorf("Saturday: support = %+v (next %v)", sup, deref(sup.NextAvailableAt))
	}
	// A tenant without business hours is never outside them.
	if sup := s.customer(outdoor, "c").list("").Support; sup.NextAvailableAt != nil || sup.Reason == nil || *sup.Reason == "outside_business_hours" {
		t.Errorf("no hours: support = %+v", sup)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestRedisDownDegradesButServes(t *testing.T) {
	s := newStack(t)
	cust := s.customer(shop, "cust-1")
	admin := s.admin(shop, "admin-1")
	admin.setPresence("online")
	c := cust.start("hello")
	s.redis.Stop(t)

	if l := cust.list(""); len(l.Conversations) != 1 || l.Support.Status != "offline" {
		t.Errorf("with Redis down: list = %d conversations, support %s", len(l.Conversations), l.Support.Status)
	}
	cust.send(c.ID, "still there?")
	if p := admin.do("PUT", "/api/v1/chat/presence", map[string]string{"status": "online"}).Problem(t, 503); p.Slug() != "service-unavailable" {
		t.Errorf("problem = %s", p.Slug())
	}
	r := s.request("GET", "/readyz", nil, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"degraded"`) {
		t.Errorf("/readyz = %d %s, want 200 degraded", r.Status, r.Body)
	}
	s.redis.Start(t)
}

func TestHealthAndMetrics(t *testing.T) {
	s := newStack(t)
	if r := s.request("GET", "/healthz", nil, nil); r.Status != 200 {
		t.Errorf("/healthz = %d", r.Status)
	}
	if r := s.request("GET", "/readyz", nil, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"ready"`) {
		t.Errorf("/readyz = %d %s", r.Status, r.Body)
	}
	s.customer(shop, "c").list("")
	if !strings.Contains(s.scrape(), `chat_http_requests_total{method="GET",route="/api/v1/chat/list",status_class="2xx"}`) {
		t.Error("/metrics lacks the list request")
	}
	// The metrics have a listener of their own: whatever routes the API never exposes them.
	if p := s.request("GET", "/metrics", nil, nil).Problem(t, 404); p.Slug() != "not-found" {
		t.Errorf("GET /metrics on the API = %s, want not-found", p.Slug())
	}
	if p := s.request("GET", "/nope", nil, nil).Problem(t, 404); p.Slug() != "not-found" {
		t.Errorf("problem = %s", p.Slug())
	}
	if p := s.request("DELETE", "/api/v1/chat/list", nil, nil).Problem(t, 405); p.Slug() != "method-not-allowed" {
		t.Errorf("problem = %s", p.Slug())
	}
}
