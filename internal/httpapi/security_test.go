package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The bound tenants: two storefronts whose tokens come from one issuer with one audience, told
// apart by oidc.required_claims (each requires org: <its id>).
const (
	boundA = "bound-a"
	boundB = "bound-b"
)

// writeBoundTenants writes the files of bound-a and bound-b into dir, both trusting one new
// issuer (put in issuers under both ids), and returns how many tenants it wrote.
func writeBoundTenants(t testing.TB, dir string, issuers map[string]*testenv.Issuer) int {
	t.Helper()
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	for _, id := range []string{boundA, boundB} {
		issuers[id] = iss
		file := fmt.Sprintf(tenantFile, id, id, iss.URL(), "roles", "support_admin", id, false, "")
		file = strings.Replace(file, "  name_claim: name\n", "  name_claim: name\n  required_claims:\n    org: "+id+"\n", 1)
		writeFile(t, filepath.Join(dir, id+".yaml"), file)
	}
	return 2
}

// boundToken returns a token of the bound tenants' issuer for sub, valid for an hour, whose org
// claim is org (none when org is "").
func (s *stack) boundToken(org, sub string, admin bool) string {
	s.t.Helper()
	iss := s.issuers[boundA]
	claims := iss.Claims(sub, "", admin, time.Hour)
	if org != "" {
		claims["org"] = org
	}
	token, err := iss.Sign("RS256", claims)
	if err != nil {
		s.t.Fatal(err)
	}
	return token
}

// endpoint is one operation of the API; {id} in path stands for a conversation id (a webhook
// endpoint's id on /admin/webhooks, where a token attack never gets as far as the id).
type endpoint struct {
	method, path string
	// body is a valid body: were the request let through, it would do what it asks.
	body any
}

func (e endpoint) String() string { return e.method + " " + e.path }

// on returns the endpoint's path with id for {id}.
func (e endpoint) on(id string) string { return strings.ReplaceAll(e.path, "{id}", id) }

// tenantEndpoints are all the operations of the tenant-scoped route group of routes.go
// (TestSecurityEndpointsAreEveryRoute keeps the list complete).
var tenantEndpoints = []endpoint{
	{"GET", "/api/v1/chat/list", nil},
	{"GET", "/api/v1/chat/events", nil},
	{"POST", "/api/v1/chat/start", map[string]any{"message": "let me in"}},
	{"PUT", "/api/v1/chat/presence", map[string]any{"status": "online"}},
	{"GET", "/api/v1/chat/{id}", nil},
	{"PATCH", "/api/v1/chat/{id}", map[string]any{"status": "resolved"}},
	{"GET", "/api/v1/chat/{id}/messages", nil},
	{"POST", "/api/v1/chat/{id}/messages", map[string]any{"body": "let me in"}},
	{"POST", "/api/v1/chat/{id}/read", nil},
	{"GET", "/api/v1/admin/settings", nil},
	{"PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": "let me in"}},
	{"GET", "/api/v1/admin/webhooks", nil},
	{"POST", "/api/v1/admin/webhooks", map[string]any{"url": "https://attacker.example/hook", "events": []string{"message.created"}}},
	{"GET", "/api/v1/admin/webhooks/{id}", nil},
	{"PATCH", "/api/v1/admin/webhooks/{id}", map[string]any{"url": "https://attacker.example/hook"}},
	{"DELETE", "/api/v1/admin/webhooks/{id}", nil},
	{"POST", "/api/v1/admin/webhooks/{id}/rotate-secret", nil},
	{"GET", "/api/v1/admin/webhooks/{id}/deliveries", nil},
	{"POST", "/api/v1/admin/webhooks/{id}/deliveries/:delivery_id/redeliver", nil},
	{"GET", "/api/v1/admin/audit", nil},
	{"GET", "/api/v1/admin/customers/:customer_id/export", nil},
	{"DELETE", "/api/v1/admin/customers/:customer_id", nil},
	{"GET", "/api/v1/admin/erasures/{id}", nil},
}

var (
	// routeGroupPattern finds `api := r.Group("/api/v1", ...)` in routes.go.
	routeGroupPattern = regexp.MustCompile(`(?m)^\s*(\w+)\s*:?=\s*r\.Group\("([^"]*)"`)
	// routeCallPattern finds `api.GET("/chat/list", ...)`.
	routeCallPattern = regexp.MustCompile(`(?m)^\s*(\w+)\.(GET|HEAD|POST|PUT|PATCH|DELETE|Any|Handle)\("([^"]*)"`)
)

// TestSecurityEndpointsAreEveryRoute checks that the security suite attacks every operation
// of every route group of routes.go, so a new endpoint cannot escape it.
func TestSecurityEndpointsAreEveryRoute(t *testing.T) {
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	for _, m := range routeGroupPattern.FindAllStringSubmatch(string(src), -1) {
		groups[m[1]] = m[2]
	}
	if len(groups) == 0 {
		t.Fatal("no route group in routes.go: has its form changed?")
	}
	var registered []string
	for _, m := range routeCallPattern.FindAllStringSubmatch(string(src), -1) {
		prefix, ok := groups[m[1]]
		if !ok {
			continue // the router itself: probes and the widget, outside /api
		}
		registered = append(registered, m[2]+" "+strings.ReplaceAll(prefix+m[3], ":id", "{id}"))
	}
	var attacked []string
	for _, e := range tenantEndpoints {
		attacked = append(attacked, e.String())
	}
	sort.Strings(registered)
	sort.Strings(attacked)
	if !slices.Equal(registered, attacked) {
		t.Errorf("routes.go registers\n  %s\nthe security suite attacks\n  %s", strings.Join(registered, "\n  "), strings.Join(attacked, "\n  "))
	}
}

// tokenAttack is a request whose credentials must not get through.
type tokenAttack struct {
	name string
	// tenant is the tenant the request names.
	tenant string
	// authorization is the whole Authorization header; "" leaves it out.
	authorization string
	// subject is the subject the token claims, which no answer may repeat ("" for none).
	subject string
	// bare is set for requests without bearer credentials, whose challenge has no error code
	// (RFC 6750 §3.1).
	bare bool
	// detail, when set, is the problem detail the attack must get.
	detail string
}

// tokenAttacks returns the attacks on the tokens of s's tenants. Each token claims an admin
// (the prize), under a subject of its own.
func tokenAttacks(t *testing.T, s *stack) []tokenAttack {
	iss := s.issuers[shop]
	claims := func(sub string, mutate func(c map[string]any)) map[string]any {
		c := iss.Claims(sub, "", true, time.Hour)
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	signed := func(sub string, mutate func(c map[string]any)) string {
		token, err := iss.Sign("RS256", claims(sub, mutate))
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	bearer := func(name, sub, token string) tokenAttack {
		return tokenAttack{name: name, tenant: shop, authorization: "Bearer " + token, subject: sub}
	}

	// A customer's token whose payload is swapped for an admin's, the signature kept.
	customer := signed("mallory-tampered", func(c map[string]any) { delete(c, "roles") })
	parts := strings.Split(customer, ".")
	payload, err := json.Marshal(claims("mallory-tampered", nil))
	if err != nil {
		t.Fatal(err)
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

	// A token that is valid but for its size: refused by size alone, before any parsing.
	oversized := signed("mallory-oversized", func(c map[string]any) { c["padding"] = strings.Repeat("x", auth.MaxTokenBytes) })

	outdoorToken, err := s.issuers[outdoor].Sign("RS256", s.issuers[outdoor].Claims("mallory-outdoor", "", true, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	attacks := []tokenAttack{
		{name: "no Authorization header", tenant: shop, bare: true},
		{name: "another scheme", tenant: shop, authorization: "Basic bWFsbG9yeTpzZWNyZXQ=", bare: true},
		{name: "empty bearer token", tenant: shop, authorization: "Bearer ", bare: true},
		bearer("garbage token", "", "mallory-garbage.not-a-jwt"),
		bearer("alg none", "mallory-none", iss.None(t, claims("mallory-none", nil))),
		bearer("HS256 signed with the RS256 public key", "mallory-hs256", iss.HS256(t, claims("mallory-hs256", nil))),
		bearer("expired beyond the 60 s skew", "mallory-expired", signed("mallory-expired", func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Minute).Unix()
		})),
		bearer("not yet valid beyond the 60 s skew", "mallory-early", signed("mallory-early", func(c map[string]any) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() })),
		bearer("no exp", "mallory-no-exp", signed("mallory-no-exp", func(c map[string]any) { delete(c, "exp") })),
		bearer("wrong audience", "mallory-aud", signed("mallory-aud", func(c map[string]any) { c["aud"] = "another-app" })),
		bearer("wrong issuer", "mallory-iss", signed("mallory-iss", func(c map[string]any) { c["iss"] = "https://evil.example" })),
		bearer("another tenant's token", "mallory-outdoor", outdoorToken),
		bearer("a key never published, under the published kid", "mallory-unknown-key", iss.SignWithUnknownKey(t, claims("mallory-unknown-key", nil))),
		bearer("a key never published, under an unknown kid", "mallory-unknown-kid", iss.SignWithUnknownKid(t, claims("mallory-unknown-kid", nil))),
		bearer("tampered payload", "mallory-tampered", tampered),
		bearer("no sub", "", signed("", func(c map[string]any) { delete(c, "sub") })),
		bearer("invalid sub", "mallory admin", signed("mallory admin", nil)),
		{name: "missing required claim", tenant: boundA, authorization: "Bearer " + s.boundToken("", "mallory-unbound", true), subject: "mallory-unbound"},
		{name: "required claim of another tenant of the same issuer", tenant: boundA, authorization: "Bearer " + s.boundToken(boundB, "mallory-bound-b", true), subject: "mallory-bound-b"},
	}
	big := bearer("oversized token (over 8 KiB)", "mallory-oversized", oversized)
	big.detail = fmt.Sprintf("The bearer token is larger than %d bytes.", auth.MaxTokenBytes)
	return append(attacks, big)
}

// TestSecurityTokenAttacks sends every token attack to every tenant-scoped endpoint: each
// answers 401 invalid-token with a bearer challenge, repeats neither the token nor its
// subject, and changes nothing.
func TestSecurityTokenAttacks(t *testing.T) {
	s := newStack(t, stackOptions{boundTenants: true})
	victim := s.customer(shop, "cust-victim")
	conv := victim.start("My order is late")
	admin := s.admin(shop, "admin-1")

	// The tenants' real tokens get through, so a 401 below is the attack's doing.
	for _, u := range []user{victim, admin, s.admin(outdoor, "agent-1"), {s: s, tenant: boundA, token: s.boundToken(boundA, "cust-a", false)}} {
		if r := u.do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
			t.Fatalf("a valid token of %s: list = %d %s", u.tenant, r.Status, r.Body)
		}
	}
	boundAdmin := user{s: s, tenant: boundA, id: "admin-a", token: s.boundToken(boundA, "admin-a", true)}
	state := func() string {
		return string(admin.do("GET", "/api/v1/chat/list?messages=20", nil).Body) +
			string(admin.do("GET", "/api/v1/admin/settings", nil).Body) +
			string(boundAdmin.do("GET", "/api/v1/chat/list?messages=20", nil).Body) +
			string(boundAdmin.do("GET", "/api/v1/admin/settings", nil).Body) +
			string(admin.do("GET", "/api/v1/admin/webhooks", nil).Body)
	}
	before := state()

	attacks := tokenAttacks(t, s)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			for _, e := range tenantEndpoints {
				h := map[string]string{"X-Tenant-ID": a.tenant}
				if a.authorization != "" {
					h["Authorization"] = a.authorization
				}
				r := s.request(e.method, e.on(conv.ID), e.body, h)
				p := r.Problem(t, http.StatusUnauthorized)
				if p.Slug() != "invalid-token" {
					t.Errorf("%s: problem = %s, want invalid-token", e, p.Slug())
				}
				want := `Bearer realm="support-chat", error="invalid_token"`
				if a.bare {
					want = `Bearer realm="support-chat"`
				}
				if got := r.Header.Get("WWW-Authenticate"); got != want {
					t.Errorf("%s: WWW-Authenticate = %q, want %q", e, got, want)
				}
				if a.detail != "" && p.Detail != a.detail {
					t.Errorf("%s: detail = %q, want %q", e, p.Detail, a.detail)
				}
				for _, secret := range secretsOf(a) {
					if strings.Contains(string(r.Body), secret) {
						t.Errorf("%s: the body repeats %q: %s", e, abbreviate(secret), r.Body)
					}
					for name, values := range r.Header {
						for _, v := range values {
							if strings.Contains(v, secret) {
								t.Errorf("%s: header %s repeats %q", e, name, abbreviate(secret))
							}
						}
					}
				}
			}
		})
	}
	if after := state(); after != before {
		t.Errorf("the attacks changed the tenants' state:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("token attacks: %d attacks × %d tenant-scoped endpoints = %d requests, each 401 invalid-token", len(attacks), len(tenantEndpoints), len(attacks)*len(tenantEndpoints))
}

// TestSecurityTokenSizeLimitIsExact checks the 8 KiB bound from both sides with valid tokens:
// the largest token within auth.MaxTokenBytes gets through, the smallest beyond it is refused
// by its size alone.
func TestSecurityTokenSizeLimitIsExact(t *testing.T) {
	s := newStack(t)
	iss := s.issuers[shop]
	// sized returns a valid token made larger with a padding claim of pad bytes.
	sized := func(pad int) string {
		c := iss.Claims("cust-big", "", false, time.Hour)
		c["padding"] = strings.Repeat("x", pad)
		token, err := iss.Sign("RS256", c)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	// Each byte of padding adds one or two base64 characters: walk up to the limit.
	limit := auth.MaxTokenBytes
	pad := limit - len(sized(0)) - 16
	fits := sized(pad)
	for len(fits) > limit {
		pad -= 8
		fits = sized(pad)
	}
	over := sized(pad + 1)
	for len(over) <= limit {
		pad++
		fits, over = over, sized(pad+1)
	}
	if len(fits) < limit-1 || len(over) > limit+2 {
		t.Fatalf("tokens of %d and %d bytes do not straddle the limit of %d", len(fits), len(over), limit)
	}
	if r := (user{s: s, tenant: shop, token: fits}).do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusOK {
		t.Errorf("a valid token of %d bytes: %d %s", len(fits), r.Status, r.Body)
	}
	r := (user{s: s, tenant: shop, token: over}).do("GET", "/api/v1/chat/list", nil)
	if p := r.Problem(t, http.StatusUnauthorized); p.Detail != fmt.Sprintf("The bearer token is larger than %d bytes.", limit) {
		t.Errorf("a valid token of %d bytes: detail %q, want the size refusal", len(over), p.Detail)
	}
	t.Logf("a token of %d bytes gets through, one of %d is refused (limit %d)", len(fits), len(over), limit)
}

// secretsOf returns what an answer to attack a must not repeat: the token, each of its parts
// long enough to be recognised, and the subject it claims.
func secretsOf(a tokenAttack) []string {
	var out []string
	token, ok := strings.CutPrefix(a.authorization, "Bearer ")
	if ok && token != "" {
		out = append(out, token)
		for _, part := range strings.Split(token, ".") {
			if len(part) >= 12 {
				out = append(out, part)
			}
		}
	}
	if a.subject != "" {
		out = append(out, a.subject)
	}
	return out
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// party is a caller of the access matrix.
type party struct {
	user
	name  string
	admin bool
}

// owned is a conversation of the access matrix.
type owned struct {
	id, tenant string
	// owner is the subject of the customer who started it; message is its first message.
	owner, message string
}

// sees reports whether p may read and write c: a customer their own conversations, an admin
// every conversation of their tenant.
func (p party) sees(c owned) bool { return p.tenant == c.tenant && (p.admin || p.id == c.owner) }

// conversationEndpoints are the operations on one conversation (bodyOn gives their bodies).
var conversationEndpoints = []endpoint{
	{"GET", "/api/v1/chat/{id}", nil},
	{"GET", "/api/v1/chat/{id}/messages", nil},
	{"POST", "/api/v1/chat/{id}/messages", map[string]any{"body": "This is not my conversation."}},
	{"POST", "/api/v1/chat/{id}/read", nil},
	{"PATCH", "/api/v1/chat/{id}", map[string]any{"status": "resolved"}},
}

// bodyOn returns the request body of e on conversation c: a read names c's first message.
func (e endpoint) bodyOn(c owned) any {
	if strings.HasSuffix(e.path, "/read") {
		return map[string]any{"message_id": c.message}
	}
	return e.body
}

// TestSecurityAccessMatrix tries every conversation endpoint as every party (customers A and
// B and an admin, in two tenants, the customers of both tenants with the same subjects) on
// every party's conversation. Whoever may not see a conversation gets exactly the answer a
// conversation that does not exist gets (status, problem, headers and body but for the
// request id), and nothing is written: the owners read back what they had. Then lists, event
// streams, settings, presence, start and Idempotency-Key replays are checked for leaks.
func TestSecurityAccessMatrix(t *testing.T) {
	s := newStack(t)
	tenants := []string{shop, outdoor}
	var parties []party
	admins := map[string]party{}
	for _, tn := range tenants {
		a := party{user: s.admin(tn, "admin-1"), name: "the admin of " + tn, admin: true}
		admins[tn] = a
		parties = append(parties,
			party{user: s.customer(tn, "cust-a"), name: "customer A of " + tn},
			party{user: s.customer(tn, "cust-b"), name: "customer B of " + tn},
			a)
	}
	// Every party's event stream is open before anything is written.
	streams := map[string]*eventStream{}
	for _, p := range parties {
		es := p.events(t, "")
		if ev := es.next(true); ev.Comment != "retry 2000" {
			t.Fatalf("%s: the stream starts with %+v, want retry", p.name, ev)
		}
		streams[p.name] = es
	}
	var convs []owned
	owners := map[string]party{}
	for _, p := range parties {
		if !p.admin {
			c := p.start("A question of " + p.name)
			convs = append(convs, owned{id: c.ID, tenant: p.tenant, owner: p.id, message: c.Messages[0].ID})
			owners[c.ID] = p
		}
	}
	label := func(c owned) string { return owners[c.id].name + "'s conversation" }

	// What the owners and admins read, and the tenants' settings.
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, c := range convs {
			for _, p := range []party{owners[c.id], admins[c.tenant]} {
				out[p.name+" reads "+label(c)] = string(p.do("GET", "/api/v1/chat/"+c.id+"?messages=20", nil).Body)
				out[p.name+" reads the history of "+label(c)] = string(p.do("GET", "/api/v1/chat/"+c.id+"/messages?limit=100", nil).Body)
			}
		}
		for _, p := range parties {
			out[p.name+" lists"] = string(p.do("GET", "/api/v1/chat/list?messages=20", nil).Body)
		}
		for _, tn := range tenants {
			out[tn+"'s settings"] = string(admins[tn].do("GET", "/api/v1/admin/settings", nil).Body)
		}
		return out
	}
	before := snapshot()

	cells, denied := 0, 0
	ghost := randomID() // no conversation has it
	t.Run("no access and no oracle", func(t *testing.T) {
		for _, e := range conversationEndpoints {
			for _, p := range parties {
				for _, c := range convs {
					if p.sees(c) {
						continue
					}
					cells++
					denied++
					name := fmt.Sprintf("%s: %s on %s", p.name, e, label(c))
					got := p.do(e.method, e.on(c.id), e.bodyOn(c))
					nonexistent := p.do(e.method, e.on(ghost), e.bodyOn(c))
					wantStatus, wantSlug := http.StatusNotFound, "not-found"
					if e.method == "PATCH" && !p.admin {
						wantStatus, wantSlug = http.StatusForbidden, "forbidden" // for any id
					}
					if p := got.Problem(t, wantStatus); p.Slug() != wantSlug {
						t.Errorf("%s: problem %s, want %s", name, p.Slug(), wantSlug)
					}
					if diff := sameAnswer(got, nonexistent, c.id, ghost); diff != "" {
						t.Errorf("%s answers otherwise than for a conversation that does not exist: %s", name, diff)
					}
				}
			}
		}
	})
	t.Run("nothing was written", func(t *testing.T) {
		after := snapshot()
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s changed:\nbefore %s\nafter  %s", k, v, after[k])
			}
		}
	})
	t.Run("lists show only what each party may see", func(t *testing.T) {
		for _, p := range parties {
			cells++
			var want []string
			for _, c := range convs {
				if p.sees(c) {
					want = append(want, c.id)
				}
			}
			if got := listIDs(p.list("?limit=100")); !slices.Equal(got, sorted(want)) {
				t.Errorf("%s lists %v, want %v", p.name, got, sorted(want))
			}
			if p.admin {
				cells++
				var cust []string
				for _, c := range convs {
					if c.tenant == p.tenant && c.owner == "cust-a" {
						cust = append(cust, c.id)
					}
				}
				if got := listIDs(p.list("?customer_id=cust-a")); !slices.Equal(got, cust) {
					t.Errorf("%s lists customer cust-a's conversations as %v, want %v", p.name, got, cust)
				}
			}
		}
	})
	t.Run("the owners and the tenant's admins read and write", func(t *testing.T) {
		for _, e := range conversationEndpoints {
			for _, p := range parties {
				for _, c := range convs {
					if !p.sees(c) {
						continue
					}
					cells++
					want := map[string]int{"GET": http.StatusOK, "POST": http.StatusOK, "PATCH": http.StatusOK}[e.method]
					if e.method == "POST" && strings.HasSuffix(e.path, "/messages") {
						want = http.StatusCreated
					}
					if e.method == "PATCH" && !p.admin {
						want = http.StatusForbidden // customers never patch, their own conversations neither
					}
					if r := p.do(e.method, e.on(c.id), e.bodyOn(c)); r.Status != want {
						t.Errorf("%s: %s on %s = %d %s, want %d", p.name, e, label(c), r.Status, r.Body, want)
					}
				}
			}
		}
	})
	t.Run("tenant-wide endpoints", func(t *testing.T) {
		for _, p := range parties {
			if p.admin {
				cells++
				if pr := p.do("POST", "/api/v1/chat/start", map[string]any{"message": "hi"}).Problem(t, http.StatusForbidden); pr.Slug() != "forbidden" {
					t.Errorf("%s starts a conversation: %s", p.name, pr.Slug())
				}
				continue
			}
			for _, e := range []endpoint{
				{"GET", "/api/v1/admin/settings", nil},
				{"PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": "A customer was here."}},
				{"PUT", "/api/v1/chat/presence", map[string]any{"status": "online"}},
			} {
				cells++
				if pr := p.do(e.method, e.path, e.body).Problem(t, http.StatusForbidden); pr.Slug() != "forbidden" {
					t.Errorf("%s: %s: %s, want forbidden", p.name, e, pr.Slug())
				}
			}
		}
		// Each admin changes their own tenant's settings only.
		for i, tn := range tenants {
			other := tenants[1-i]
			cells++
			prompt := "Only " + tn + " is away."
			if r := admins[tn].do("PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": prompt}); r.Status != http.StatusOK {
				t.Fatalf("%s puts settings: %d %s", tn, r.Status, r.Body)
			}
			if r := admins[other].do("GET", "/api/v1/admin/settings", nil); strings.Contains(string(r.Body), prompt) {
				t.Errorf("%s's settings show %s's away prompt: %s", other, tn, r.Body)
			}
		}
	})
	t.Run("Idempotency-Key replays stay with their caller", func(t *testing.T) {
		start := map[string]any{"message": "The same first message"}
		first := parties[0].do("POST", "/api/v1/chat/start", start, "Idempotency-Key", "same-key")
		if first.Status != http.StatusCreated {
			t.Fatalf("start = %d %s", first.Status, first.Body)
		}
		var c conversationJSON
		first.JSON(t, &c)
		convs = append(convs, owned{id: c.ID, tenant: parties[0].tenant, owner: parties[0].id})
		owners[c.ID] = parties[0]
		if r := parties[0].do("POST", "/api/v1/chat/start", start, "Idempotency-Key", "same-key"); r.Header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(r.Body), c.ID) {
			t.Fatalf("the owner's retry is not a replay: %d %s", r.Status, r.Body)
		}
		for _, p := range parties {
			if p.admin || p.name == parties[0].name {
				continue
			}
			cells++
			r := p.do("POST", "/api/v1/chat/start", start, "Idempotency-Key", "same-key")
			var mine conversationJSON
			r.JSON(t, &mine)
			if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "" || mine.ID == c.ID || strings.Contains(string(r.Body), c.ID) {
				t.Errorf("%s with %s's Idempotency-Key: %d replayed=%q %s", p.name, parties[0].name, r.Status, r.Header.Get("Idempotent-Replayed"), r.Body)
			}
			convs = append(convs, owned{id: mine.ID, tenant: p.tenant, owner: p.id})
			owners[mine.ID] = p
		}
		// A message: the customer's key does not replay for the tenant's admin.
		conv := convs[0]
		send := map[string]any{"body": "The same message"}
		mine := owners[conv.id].do("POST", "/api/v1/chat/"+conv.id+"/messages", send, "Idempotency-Key", "msg-key")
		cells++
		theirs := admins[conv.tenant].do("POST", "/api/v1/chat/"+conv.id+"/messages", send, "Idempotency-Key", "msg-key")
		if mine.Status != http.StatusCreated || theirs.Status != http.StatusCreated || theirs.Header.Get("Idempotent-Replayed") != "" || string(mine.Body) == string(theirs.Body) {
			t.Errorf("an admin reusing a customer's Idempotency-Key: %d %s / %d %s", mine.Status, mine.Body, theirs.Status, theirs.Body)
		}
	})
	t.Run("event streams carry only what each party may see", func(t *testing.T) {
		// An admin going online is the last event of each tenant: support.changed reaches
		// every stream of the tenant after all the events above.
		for _, tn := range tenants {
			admins[tn].setPresence("online")
		}
		for _, p := range parties {
			cells++
			es := streams[p.name]
			seen := map[string]bool{}
			for {
				ev := es.next(false)
				if ev.Type == "support.changed" {
					if decode[supportJSON](t, ev.Data).Status == "online" {
						break
					}
					continue
				}
				var data struct {
					ID             string `json:"id"`
					ConversationID string `json:"conversation_id"`
				}
				if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
					t.Fatalf("%s: event %s data %s: %v", p.name, ev.Type, ev.Data, err)
				}
				id := data.ID
				if ev.Type == "message.created" {
					id = data.ConversationID
				}
				owner, known := owners[id]
				if !known || !p.sees(owned{id: id, tenant: owner.tenant, owner: owner.id}) {
					t.Errorf("%s's stream carries %s of a conversation they may not see: %s", p.name, ev.Type, ev.Data)
				}
				seen[id] = true
			}
			for _, c := range convs {
				if p.sees(c) && !seen[c.id] {
					t.Errorf("%s's stream has no event of %s", p.name, label(c))
				}
			}
		}
	})
	t.Logf("access matrix: %d parties (customers A and B and an admin in each of %d tenants) × %d conversations of the customers × %d conversation endpoints = %d cells (%d refused, each compared with a conversation that does not exist), plus lists, tenant-wide endpoints, Idempotency-Key replays and event streams: %d cells in all",
		len(parties), len(tenants), len(parties)-len(tenants), len(conversationEndpoints), len(parties)*(len(parties)-len(tenants))*len(conversationEndpoints), denied, cells)
}

// sameAnswer returns how got, the answer for conversation id, differs from want, the answer for
// the nonexistent ghost, beyond the request id and the id itself; "" when it does not.
func sameAnswer(got, want response, id, ghost string) string {
	if got.Status != want.Status {
		return fmt.Sprintf("status %d, %d for none", got.Status, want.Status)
	}
	for _, h := range []http.Header{got.Header, want.Header} {
		for _, name := range []string{"Date", "X-Request-Id", "Ratelimit"} {
			// The date, the request's id and what remains of the caller's quota differ from
			// one request to the next.
			h.Del(name)
		}
	}
	if g, w := fmt.Sprint(got.Header), fmt.Sprint(want.Header); g != w {
		return fmt.Sprintf("headers %s, %s for none", g, w)
	}
	norm := func(body []byte, id string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(strings.ReplaceAll(string(body), id, "{id}")), &m); err != nil {
			return string(body)
		}
		delete(m, "request_id")
		b, _ := json.Marshal(m)
		return string(b)
	}
	if g, w := norm(got.Body, id), norm(want.Body, ghost); g != w {
		return fmt.Sprintf("body %s, %s for none", g, w)
	}
	return ""
}

// listIDs returns the sorted ids of a list's conversations.
func listIDs(l listJSON) []string {
	var ids []string
	for _, c := range l.Conversations {
		ids = append(ids, c.ID)
	}
	return sorted(ids)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
