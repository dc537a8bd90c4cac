package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/testenv"
)

// clockTenantFile is the tenant of the support clock test: open on Sundays 09:00-17:00 in
// Berlin, with an away prompt the test changes.
const clockTenantFile = `id: %s
name: Clock
oidc:
  issuer: %s
  audience: support-chat
  admin_claim: roles
  admin_values: [support_admin]
chat:
  away_prompt: %q
  business_hours:
    timezone: Europe/Berlin
    weekly: {sun: ["09:00-17:00"]}
`

// supportBlock is the support block as events and lists show it.
type supportBlock struct {
	Status          string     `json:"status"`
	Available       bool       `json:"available"`
	Reason          string     `json:"reason"`
	Prompt          string     `json:"prompt"`
	NextAvailableAt *time.Time `json:"next_available_at"`
}

func (b supportBlock) String() string {
	return fmt.Sprintf("%s/%s %q", b.Status, b.Reason, b.Prompt)
}

// TestSupportFollowsTheClockOnThreeReplicas runs three replicas on one clock, with a customer's
// event stream open on each, through a day with every kind of support transition: an admin
// going online, their heartbeat lapsing, business hours closing (on the day daylight saving
// time ends in Berlin, so at 17:00 CET, 16:00 UTC), a lapse that changes nothing customers
// see, a tenant file changing the away prompt, and business hours opening a week later.
// Each transition reaches every stream exactly once (one replica announces it), and every
// replica's list shows the block as it stands now.
func TestSupportFollowsTheClockOnThreeReplicas(t *testing.T) {
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	file := filepath.Join(dir, faultTenant+".yaml")
	writeTenant := func(prompt string) {
		t.Helper()
		if err := os.WriteFile(file, fmt.Appendf(nil, clockTenantFile, faultTenant, iss.URL(), prompt), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const firstPrompt, secondPrompt = "We are away.", "Back on Sunday at nine."
	writeTenant(firstPrompt)
	// Sunday 2026-10-25, 16:58 in Berlin: clocks went back to CET at 03:00, so business hours
	// close at 16:00 UTC (15:00 UTC a week earlier).
	clk := testenv.NewClock(time.Date(2026, 10, 25, 15, 58, 0, 0, time.UTC))
	env := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": dir, "OTEL_SDK_DISABLED": "true",
		"CHAT_PRESENCE_TTL": "60s", "CHAT_LIMITS_REQUESTS_PER_MINUTE": "0", "CHAT_LIMITS_WRITES_PER_MINUTE": "0",
	}
	replicas := make([]*faultService, 3)
	streams := make([]*sseStream, 3)
	customer, admin := iss.Token(t, "cust-1", false), iss.Token(t, "admin-1", true)
	for i := range replicas {
		base := "http://" + runServer(t, env, server.Options{Stdout: io.Discard, Now: clk.Now}).String()
		replicas[i] = &faultService{base: base, iss: iss, client: &http.Client{Timeout: 2 * faultWaitTimeout}, customerToken: customer, adminToken: admin}
	}
	for i, r := range replicas {
		if streams[i] = r.openStream(t, customer, ""); streams[i].status != http.StatusOK {
			t.Fatalf("GET /chat/events on replica %d = %d, want 200", i, streams[i].status)
		}
	}
	list := func(r *faultService) supportBlock {
		t.Helper()
		a := r.mustCall(t, "GET", "/api/v1/chat/list", customer, nil)
		var page struct {
			Support supportBlock `json:"support"`
		}
		if a.status != http.StatusOK || json.Unmarshal(a.body, &page) != nil {
			t.Fatalf("GET /chat/list = %d %s", a.status, a.body)
		}
		return page.Support
	}
	presence := func(r *faultService) {
		t.Helper()
		if a := r.mustCall(t, "PUT", "/api/v1/chat/presence", admin, map[string]string{"status": "online"}); a.status != http.StatusOK {
			t.Fatalf("PUT /chat/presence = %d %s", a.status, a.body)
		}
	}
	// transition checks that every stream gets exactly one support.changed, showing want, and
	// that every replica's list shows want. want nil: no event within a settling time.
	transition := func(name string, want *supportBlock) {
		t.Helper()
		for i, s := range streams {
			if want != nil {
				var got supportBlock
				ev := s.expect(t, "support.changed")
				if err := json.Unmarshal([]byte(ev.Data), &got); err != nil || got.String() != want.String() {
					t.Fatalf("%s: replica %d's stream got %s, want %s", name, i, ev.Data, want)
				}
			}
		}
		// Every sweep of every replica runs in the settling time: a second announcement of
		// the same transition, or one of a transition that did not happen, arrives within it.
		time.Sleep(1500 * time.Millisecond)
		for i, s := range streams {
			for len(s.events) > 0 {
				if ev := <-s.events; ev.Type != "" {
					t.Fatalf("%s: replica %d's stream got another event %s %s", name, i, ev.Type, ev.Data)
				}
			}
		}
		if want == nil {
			return
		}
		for i, r := range replicas {
			if got := list(r); got.String() != want.String() {
				t.Fatalf("%s: replica %d's list shows %s, want %s", name, i, got, want)
			}
		}
	}
	online := &supportBlock{Status: "online"}
	offline := &supportBlock{Status: "offline", Reason: "no_admin_online", Prompt: firstPrompt}

	for i, r := range replicas {
		if got := list(r); got.String() != offline.String() {
			t.Fatalf("replica %d's list at 16:58 CET shows %s, want %s (open, nobody online)", i, got, offline)
		}
	}
	presence(replicas[0])
	transition("an admin goes online", online)

	clk.Advance(61 * time.Second) // 15:59:01 UTC: the status set at 15:58:00 lapsed
	transition("the heartbeat lapses", offline)

	presence(replicas[1]) // online until 16:00:01
	transition("the admin is back", online)
	clk.Set(time.Date(2026, 10, 25, 15, 59, 50, 0, time.UTC))
	presence(replicas[2]) // a heartbeat: online until 16:00:50
	transition("a heartbeat changes nothing", nil)

	clk.Set(time.Date(2026, 10, 25, 16, 0, 0, 300e6, time.UTC))
	closed := &supportBlock{Status: "away", Reason: "outside_business_hours", Prompt: firstPrompt}
	transition("business hours close at 17:00 CET", closed)
	if next := list(replicas[0]).NextAvailableAt; next == nil || !next.Equal(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("next_available_at = %v, want next Sunday 09:00 CET (08:00 UTC)", next)
	}

	clk.Set(time.Date(2026, 10, 25, 16, 0, 51, 0, time.UTC))
	transition("a lapse outside business hours shows nothing new", nil)

	writeTenant(secondPrompt)
	transition("the tenant file changes the away prompt", &supportBlock{Status: "away", Reason: "outside_business_hours", Prompt: secondPrompt})

	clk.Set(time.Date(2026, 11, 1, 8, 0, 0, 300e6, time.UTC))
	transition("business hours open a week later", &supportBlock{Status: "offline", Reason: "no_admin_online", Prompt: secondPrompt})
}
