package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNoExistenceOracle(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	conv := ada.start("my order")
	other := s.customer(shop, "cust-bob")
	otherTenantAdmin := s.admin(outdoor, "agent-1")
	endpoints := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/chat/%s", nil},
		{"GET", "/api/v1/chat/%s/messages", nil},
		{"POST", "/api/v1/chat/%s/messages", map[string]string{"body": "hi"}},
		{"POST", "/api/v1/chat/%s/read", map[string]string{}},
		{"PATCH", "/api/v1/chat/%s", map[string]string{"status": "resolved"}},
	}
	callers := []struct {
		name string
		who  user
		id   string
	}{
		{"another customer's conversation", other, conv.ID},
		{"another tenant's conversation", otherTenantAdmin, conv.ID},
		{"a malformed id", ada, "not-an-id"},
		{"an id that does not exist", ada, "0123456789abcdef01234567"},
	}
	for _, e := range endpoints {
		for _, c := range callers {
			who := c.who
			if e.method == "PATCH" && who.tenant == shop {
				// PATCH is for admins (customers get 403 whatever the id); admins get 404 too.
				who = s.admin(shop, "admin-1")
				if c.id == conv.ID {
					continue // the tenant's admins may patch any of its conversations
				}
			}
			t.Run(e.method+" "+e.path+" for "+c.name, func(t *testing.T) {
				p := who.do(e.method, fmt.Sprintf(e.path, c.id), e.body).Problem(t, http.StatusNotFound)
				if p.Slug() != "not-found" {
					t.Errorf("problem = %s", p.Slug())
				}
			})
		}
	}
	t.Run("the owner and the tenant's admins get it", func(t *testing.T) {
		for _, who := range []user{ada, s.admin(shop, "admin-1")} {
			if r := who.do("GET", "/api/v1/chat/"+conv.ID, nil); r.Status != 200 {
				t.Errorf("%s: status %d", who.id, r.Status)
			}
		}
	})
}

func TestSendValidation(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	conv := ada.start("hello")
	path := "/api/v1/chat/" + conv.ID + "/messages"
	tests := []struct {
		name   string
		body   any
		ctype  string
		status int
		field  string
	}{
		{"empty body", map[string]string{"body": ""}, "", 400, "body"},
		{"only white space", map[string]string{"body": " \n\t "}, "", 400, "body"},
		{"4001 characters", map[string]string{"body": strings.Repeat("é", 4001)}, "", 413, "body"},
		{"unknown field", map[string]string{"body": "hi", "bodyy": "x"}, "", 400, "bodyy"},
		{"wrong type", map[string]any{"body": 5}, "", 400, "body"},
		{"not JSON", "body=hi", "", 400, "body"},
		{"not UTF-8", "{\"body\": \"\xff\"}", "", 400, "body"},
		{"form content type", "body=hi", "application/x-www-form-urlencoded", 415, "Content-Type"},
		{"request body over the limit", `{"body":"` + strings.Repeat("a", 70000) + `"}`, "", 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.ctype != "" {
				headers = []string{"Content-Type", tt.ctype}
			}
			p := ada.do("POST", path, tt.body, headers...).Problem(t, tt.status)
			if p.Field() != tt.field {
				t.Errorf("field = %q, want %q (%s)", p.Field(), tt.field, p.Detail)
			}
		})
	}
	t.Run("4000 characters are fine", func(t *testing.T) {
		ada.send(conv.ID, strings.Repeat("é", 4000))
	})
	if n := len(ada.history(conv.ID)); n != 3 { // first message, away notice, the 4000
		t.Errorf("history has %d messages; bad requests must store nothing", n)
	}
}

func TestHistoryPaging(t *testing.T) {
	s := newStack(t)
	s.admin(shop, "admin-1").setPresence("online")
	ada := s.customer(shop, "cust-ada")
	conv := ada.start("m0")
	for i := 1; i < 12; i++ {
		ada.send(conv.ID, fmt.Sprintf("m%d", i))
	}
	var got []string
	before := ""
	for pages := 0; ; pages++ {
		q := "?limit=5"
		if before != "" {
			q += "&before=" + before
		}
		r := ada.do("GET", "/api/v1/chat/"+conv.ID+"/messages"+q, nil)
		var h struct {
			Messages   []messageJSON `json:"messages"`
			NextCursor *string       `json:"next_cursor"`
		}
		r.JSON(t, &h)
		page := []string{}
		for _, m := range h.Messages {
			page = append(page, m.Body)
		}
		got = append(page, got...) // pages go back in time; each page is oldest first
		if h.NextCursor == nil {
			break
		}
		before = *h.NextCursor
	}
	want := "m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11"
	if strings.Join(got, " ") != want {
		t.Errorf("history = %v, want %s", got, want)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?before=zzz", "?after=1"} {
		if r := ada.do("GET", "/api/v1/chat/"+conv.ID+"/messages"+q, nil); r.Status != 400 {
			t.Errorf("%s: status %d", q, r.Status)
		}
	}
}

func TestReadStateAndUnreadCounts(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	grace := s.admin(shop, "admin-grace")
	alan := s.admin(shop, "admin-alan")
	grace.setPresence("online")
	conv := ada.start("one")
	ada.send(conv.ID, "two")

	if got := grace.list("").Conversations[0].Unread; got != 2 {
		t.Errorf("admin unread = %d, want 2", got)
	}
	grace.send(conv.ID, "hello Ada")
	if got := ada.list("").Conversations[0].Unread; got != 1 {
		t.Errorf("customer unread = %d, want 1", got)
	}
	// An admin's reply reads everything before it for the team; any admin reading clears the
	// team's count.
	if got := alan.list("").Conversations[0].Unread; got != 0 {
		t.Errorf("team unread after a reply = %d, want 0", got)
	}
	ada.send(conv.ID, "three")
	if got := alan.list("?unread=true").Conversations; len(got) != 1 || got[0].Unread != 1 {
		t.Errorf("unread filter = %+v", got)
	}
	r := alan.do("POST", "/api/v1/chat/"+conv.ID+"/read", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"unread_count":0`) {
		t.Errorf("read = %d %s", r.Status, r.Body)
	}
	if got := grace.list("?unread=true").Conversations; len(got) != 0 {
		t.Errorf("after alan read, grace still sees %d unread conversations", len(got))
	}
	// The customer reads up to a given message; their own messages count as read up to them.
	first := grace.send(conv.ID, "first answer")
	grace.send(conv.ID, "second answer")
	if got := ada.list("").Conversations[0].Unread; got != 2 {
		t.Errorf("customer unread = %d, want 2", got)
	}
	r = ada.do("POST", "/api/v1/chat/"+conv.ID+"/read", map[string]string{"message_id": first.ID})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"unread_count":1`) {
		t.Fatalf("read up to the first answer = %d %s", r.Status, r.Body)
	}
	if got := ada.list("").Conversations[0].Unread; got != 1 {
		t.Errorf("customer unread after reading the first answer = %d, want 1", got)
	}
	if p := ada.do("POST", "/api/v1/chat/"+conv.ID+"/read", map[string]string{"message_id": "0123456789abcdef01234567"}).Problem(t, 400); p.Field() != "message_id" {
		t.Errorf("field = %q", p.Field())
	}
}

func TestAdminWorkflowAndFilters(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	bob := s.customer(shop, "cust-bob")
	grace := s.admin(shop, "admin-grace")
	a := ada.start("a")
	b := bob.start("b")

	patch := func(who user, id string, body any) response {
		return who.do("PATCH", "/api/v1/chat/"+id, body)
	}
	if r := patch(grace, a.ID, map[string]any{"assignee": "admin-grace"}); r.Status != 200 {
		t.Fatalf("assign = %d %s", r.Status, r.Body)
	}
	if r := patch(grace, b.ID, map[string]any{"status": "resolved"}); r.Status != 200 {
		t.Fatalf("resolve = %d %s", r.Status, r.Body)
	}
	ids := func(l listJSON) string {
		var out []string
		for _, c := range l.Conversations {
			out = append(out, c.ID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct{ query, want string }{
		{"?assignee=me", a.ID},
		{"?assignee=admin-grace", a.ID},
		{"?assignee=none", b.ID},
		{"?status=resolved", b.ID},
		{"?status=open&assignee=me", a.ID},
		{"?status=resolved&assignee=me", ""},
		{"?customer_id=cust-bob", b.ID},
		{"?customer_id=cust-bob&status=open", ""},
	}
	for _, tt := range tests {
		if got := ids(grace.list(tt.query)); got != tt.want {
			t.Errorf("list%s = %q, want %q", tt.query, got, tt.want)
		}
	}
	// A customer message reopens a resolved conversation.
	bob.send(b.ID, "one more thing")
	if got := ids(grace.list("?status=open&customer_id=cust-bob")); got != b.ID {
		t.Errorf("after the customer wrote, open = %q", got)
	}
	// Unassign with null.
	if r := patch(grace, a.ID, map[string]any{"assignee": nil}); r.Status != 200 || !strings.Contains(string(r.Body), `"assignee":null`) {
		t.Errorf("unassign = %d %s", r.Status, r.Body)
	}
	for _, tt := range []struct {
		name   string
		who    user
		body   any
		status int
	}{
		{"customers cannot patch", ada, map[string]any{"status": "resolved"}, 403},
		{"unknown status", grace, map[string]any{"status": "closed"}, 400},
		{"assignee of the wrong type", grace, map[string]any{"assignee": 7}, 400},
		{"assignee that is no id", grace, map[string]any{"assignee": "x y z <script>"}, 400},
		{"assignee never seen as an admin", grace, map[string]any{"assignee": "admin-nobody"}, 400},
		{"a customer as assignee", grace, map[string]any{"assignee": "cust-bob"}, 400},
		{"unknown field", grace, map[string]any{"priority": "high"}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := patch(tt.who, a.ID, tt.body).Problem(t, tt.status)
			if tt.status == 400 && strings.HasPrefix(tt.name, "assignee") && p.Field() != "assignee" {
				t.Errorf("problem names field %q, want assignee", p.Field())
			}
		})
	}
	// "me" is the caller; an admin the service has seen (any authenticated request) can be assigned.
	if r := patch(grace, a.ID, map[string]any{"assignee": "me"}); r.Status != 200 || !strings.Contains(string(r.Body), `"assignee":"admin-grace"`) {
		t.Errorf("assign me = %d %s", r.Status, r.Body)
	}
	alan := s.admin(shop, "admin-alan")
	if r := patch(grace, a.ID, map[string]any{"assignee": "admin-alan"}); r.Status != 400 {
		t.Errorf("assign an admin before they were seen = %d %s, want 400", r.Status, r.Body)
	}
	alan.list("")
	if r := patch(grace, a.ID, map[string]any{"assignee": "admin-alan"}); r.Status != 200 || !strings.Contains(string(r.Body), `"assignee":"admin-alan"`) {
		t.Errorf("assign a seen admin = %d %s", r.Status, r.Body)
	}
	// Admins are seen per tenant: another tenant's admin of the same id is not one here.
	s.admin(outdoor, "admin-olga").list("")
	if r := patch(grace, a.ID, map[string]any{"assignee": "admin-olga"}); r.Status != 400 {
		t.Errorf("assign another tenant's admin = %d %s, want 400", r.Status, r.Body)
	}
	// An admin not seen for 30 days (demoted, or gone) is no longer assignable; the caller
	// still is.
	s.clock.Advance(30*24*time.Hour + time.Minute)
	if p := patch(grace, a.ID, map[string]any{"assignee": "admin-alan"}).Problem(t, 400); p.Field() != "assignee" {
		t.Errorf("assign an admin not seen for 30 days: problem names %q, want assignee", p.Field())
	}
	if r := patch(grace, a.ID, map[string]any{"assignee": "me"}); r.Status != 200 {
		t.Errorf("assign me after 30 days = %d %s", r.Status, r.Body)
	}
	// Customers get 403 on admin-only endpoints.
	ada.do("GET", "/api/v1/admin/settings", nil).Problem(t, 403)
}

func TestIdempotentWrites(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	body := map[string]any{"message": "Where is my parcel?"}
	first := ada.do("POST", "/api/v1/chat/start", body, "Idempotency-Key", "k-1")
	again := ada.do("POST", "/api/v1/chat/start", body, "Idempotency-Key", "k-1")
	if first.Status != 201 || again.Status != 201 || string(first.Body) != string(again.Body) {
		t.Fatalf("retry = %d %s, first %d %s", again.Status, again.Body, first.Status, first.Body)
	}
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("Location") != first.Header.Get("Location") {
		t.Errorf("replay headers = %v", again.Header)
	}
	if p := ada.do("POST", "/api/v1/chat/start", map[string]any{"message": "other"}, "Idempotency-Key", "k-1").Problem(t, 422); p.Slug() != "idempotency-key-reused" {
		t.Errorf("problem = %s", p.Slug())
	}
	// Keys are per caller: another customer's k-1 is another request.
	if r := s.customer(shop, "cust-bob").do("POST", "/api/v1/chat/start", body, "Idempotency-Key", "k-1"); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("another caller's key = %d %v", r.Status, r.Header)
	}

	// Racing retries of one message store it once and all get the same answer.
	var conv conversationJSON
	first.JSON(t, &conv)
	const racers = 8
	answers := make([]response, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			answers[i] = ada.do("POST", "/api/v1/chat/"+conv.ID+"/messages", map[string]string{"body": "are you there?"}, "Idempotency-Key", "race")
		})
	}
	wg.Wait()
	var id string
	for _, a := range answers {
		if a.Status != 201 && a.Status != 409 {
			t.Fatalf("racing send = %d %s", a.Status, a.Body)
		}
		if a.Status == 201 {
			var m messageJSON
			a.JSON(t, &m)
			if id != "" && m.ID != id {
				t.Errorf("racing sends answered different messages %s and %s", id, m.ID)
			}
			id = m.ID
		}
	}
	n := 0
	for _, m := range ada.history(conv.ID) {
		if m.Body == "are you there?" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the raced message is stored %d times", n)
	}
	if p := ada.do("POST", "/api/v1/chat/start", body, "Idempotency-Key", strings.Repeat("k", 256)).Problem(t, 400); p.Field() != "Idempotency-Key" {
		t.Errorf("field = %q", p.Field())
	}
}

func TestAwayPromptOncePerAwayPeriod(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	grace := s.admin(shop, "admin-grace")
	system := func(id string) int {
		n := 0
		for _, m := range ada.history(id) {
			if m.Sender.Role == "system" {
				n++
				if !strings.Contains(m.Body, "Demo Shop is away") {
					t.Errorf("system message = %q", m.Body)
				}
			}
		}
		return n
	}
	conv := ada.start("anyone there?")
	ada.send(conv.ID, "hello?")
	if n := system(conv.ID); n != 1 {
		t.Errorf("offline: %d system messages, want 1", n)
	}
	// System messages never count as unread for admins.
	if got := grace.list("").Conversations[0].Unread; got != 2 {
		t.Errorf("admin unread = %d, want 2 (system messages do not count)", got)
	}
	s.clock.Advance(time.Second)
	grace.setPresence("online")
	s.clock.Advance(time.Second)
	ada.send(conv.ID, "now you are here")
	grace.setPresence("away")
	s.clock.Advance(time.Second)
	ada.send(conv.ID, "gone again")
	ada.send(conv.ID, "still gone")
	if n := system(conv.ID); n != 2 {
		t.Errorf("after a second away period: %d system messages, want 2", n)
	}
}

func TestReplyExpectationsAndUnassignOnAway(t *testing.T) {
	s := newStack(t)
	ada := s.customer(outdoor, "cust-ada")
	agent := s.admin(outdoor, "agent-1")
	if got := ada.list("").Support.ExpectedReplySeconds; got != nil {
		t.Errorf("expected reply without data = %d", *got)
	}
	conv := ada.start("help")
	s.clock.Advance(90 * time.Second)
	agent.send(conv.ID, "here")
	agent.send(conv.ID, "second reply does not count")
	// The median is refreshed in the background: a list answers the one before until then.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := ada.list("").Support.ExpectedReplySeconds
		if got != nil && *got == 90 {
			break
		}
		if got != nil || time.Now().After(deadline) {
			t.Fatalf("expected reply = %v, want 90 (or none, until the refresh)", got)
		}
	}

	// assign assigns the conversation to the agent and checks that it took.
	assign := func(when string) {
		t.Helper()
		if r := agent.do("PATCH", "/api/v1/chat/"+conv.ID, map[string]any{"assignee": "agent-1"}); r.Status != http.StatusOK {
			t.Fatalf("%s: PATCH assignee = %d %s, want 200", when, r.Status, r.Body)
		}
		if got := agent.list("?assignee=none"); len(got.Conversations) != 0 {
			t.Fatalf("%s: %d unassigned conversations after assigning, want 0", when, len(got.Conversations))
		}
	}

	// acme-outdoor unassigns an admin's open conversations when they go away.
	assign("before going away")
	agent.setPresence("online")
	agent.setPresence("away")
	if got := agent.list("?assignee=none"); len(got.Conversations) != 1 {
		t.Errorf("after going away: %d unassigned conversations, want 1", len(got.Conversations))
	}
	// ... and when they lapse offline without a heartbeat.
	assign("before lapsing")
	agent.setPresence("online")
	s.clock.Advance(2 * time.Minute)
	if _, err := s.svc.SweepPresence(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := agent.list("?assignee=none"); len(got.Conversations) != 1 {
		t.Errorf("after lapsing: %d unassigned conversations, want 1", len(got.Conversations))
	}
}

func TestSettings(t *testing.T) {
	s := newStack(t)
	admin := s.admin(shop, "admin-1")
	cust := s.customer(shop, "cust-1")
	var got struct {
		AwayPrompt    string   `json:"away_prompt"`
		BusinessHours any      `json:"business_hours"`
		Overridden    []string `json:"overridden"`
	}
	if r := admin.do("GET", "/api/v1/admin/settings", nil); r.Status != http.StatusOK {
		t.Fatalf("GET settings = %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &got)
	}
	if got.BusinessHours == nil || len(got.Overridden) != 0 {
		t.Errorf("file settings = %+v", got)
	}
	r := admin.do("PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": "Back at 9.", "business_hours": nil})
	if r.Status != 200 {
		t.Fatalf("PUT = %d %s", r.Status, r.Body)
	}
	// Saturday: with business hours removed, support is no longer outside hours, and the
	// customer sees the new prompt.
	s.clock.Set(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	if sup := cust.list("").Support; *sup.Reason != "no_admin_online" || *sup.Prompt != "Back at 9." {
		t.Errorf("support = %+v", sup)
	}
	// A field left out falls back to the file.
	if r := admin.do("PUT", "/api/v1/admin/settings", map[string]any{"unassign_on_away": true}); r.Status != http.StatusOK {
		t.Fatalf("PUT of one field = %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &got)
	}
	if got.BusinessHours == nil || got.AwayPrompt == "Back at 9." || len(got.Overridden) != 1 {
		t.Errorf("after PUT of one field = %+v", got)
	}
	for _, tt := range []struct {
		name  string
		body  any
		field string
	}{
		{"bad time zone", map[string]any{"business_hours": map[string]any{"timezone": "Mars/Olympus", "weekly": map[string]any{}}}, "business_hours"},
		{"bad range", map[string]any{"business_hours": map[string]any{"timezone": "Europe/Berlin", "weekly": map[string]any{"mon": []string{"9-5"}}}}, "business_hours"},
		{"hours without weekly", map[string]any{"business_hours": map[string]any{"timezone": "Europe/Berlin"}}, "business_hours.weekly"},
		{"prompt too long", map[string]any{"away_prompt": strings.Repeat("x", 1001)}, "away_prompt"},
		{"identity settings are not settable", map[string]any{"issuer": "https://evil.example"}, "issuer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := admin.do("PUT", "/api/v1/admin/settings", tt.body).Problem(t, 400)
			if !strings.HasPrefix(p.Field(), tt.field) {
				t.Errorf("field = %q, want %q", p.Field(), tt.field)
			}
		})
	}
}
