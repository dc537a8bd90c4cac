package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/testenv"
)

// exportJSON is an export as the tests read it.
type exportJSON struct {
	CustomerID    string `json:"customer_id"`
	ExportedAt    string `json:"exported_at"`
	Conversations []struct {
		ID       string `json:"id"`
		Subject  string `json:"subject"`
		Status   string `json:"status"`
		Assignee *string
		Context  map[string]*string `json:"context"`
		Customer struct {
			ID   string  `json:"id"`
			Name *string `json:"name"`
		} `json:"customer"`
		CreatedAt    string  `json:"created_at"`
		UpdatedAt    string  `json:"updated_at"`
		FirstReplyAt *string `json:"first_reply_at"`
		ReadMarks    struct {
			CustomerReadSeq int64 `json:"customer_read_seq"`
			TeamReadSeq     int64 `json:"team_read_seq"`
		} `json:"read_marks"`
		History []struct {
			Seq  int64  `json:"seq"`
			Kind string `json:"kind"`
			At   string `json:"at"`
			By   struct {
				ID   string `json:"id"`
				Role string `json:"role"`
			} `json:"by"`
			Message *struct {
				ID   string `json:"id"`
				Body string `json:"body"`
			} `json:"message"`
			ReadSeq  *int64  `json:"read_seq"`
			Status   string  `json:"status"`
			Assignee *string `json:"assignee"`
		} `json:"history"`
	} `json:"conversations"`
}

// export returns u's export of customerID.
func (u user) export(customerID string) (exportJSON, response) {
	u.s.t.Helper()
	r := u.do("GET", "/api/v1/admin/customers/"+url.PathEscape(customerID)+"/export", nil)
	if r.Status != http.StatusOK {
		u.s.t.Fatalf("GET export of %s = %d %s", customerID, r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		u.s.t.Errorf("export Content-Type = %q, want application/json", ct)
	}
	var x exportJSON
	r.JSON(u.s.t, &x)
	return x, r
}

// TestExportCustomer exports a customer with two conversations: messages of both sides, read
// marks, a status change and an assignment are all there, in order, and nothing of another
// customer; an unknown customer gets an empty export, a customer 403.
func TestExportCustomer(t *testing.T) {
	s := newStack(t)
	ada, bob := s.customer(shop, "cust-ada"), s.customer(shop, "cust-bob")
	grace := s.admin(shop, "admin-grace")
	grace.setPresence("online") // no away notices

	r := ada.do("POST", "/api/v1/chat/start", map[string]any{"message": "My order is late", "context": map[string]any{"order_id": "A-1001"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("start = %d %s", r.Status, r.Body)
	}
	var first conversationJSON
	r.JSON(t, &first)
	reply := grace.send(first.ID, "It ships tomorrow.")
	if r := ada.do("POST", "/api/v1/chat/"+first.ID+"/read", nil); r.Status != http.StatusOK {
		t.Fatalf("read = %d %s", r.Status, r.Body)
	}
	if r := grace.do("PATCH", "/api/v1/chat/"+first.ID, map[string]any{"status": "resolved", "assignee": "me"}); r.Status != http.StatusOK {
		t.Fatalf("patch = %d %s", r.Status, r.Body)
	}
	s.clock.Advance(10 * time.Second)
	second := ada.start("Another question")
	ada.send(second.ID, "About sizes, too.")
	bob.start("Bob's private matter")

	x, raw := grace.export("cust-ada")
	if strings.Contains(string(raw.Body), "Bob's private matter") || strings.Contains(string(raw.Body), "cust-bob") {
		t.Errorf("the export of cust-ada shows cust-bob's data: %s", raw.Body)
	}
	if raw.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("export Cache-Control = %q, want no-store", raw.Header.Get("Cache-Control"))
	}
	if x.CustomerID != "cust-ada" || len(x.Conversations) != 2 {
		t.Fatalf("export = %+v, want cust-ada's 2 conversations", x)
	}
	byID := map[string]int{}
	for i, c := range x.Conversations {
		byID[c.ID] = i
	}
	c1 := x.Conversations[byID[first.ID]]
	if c1.Status != "resolved" || c1.Customer.ID != "cust-ada" || c1.Context["order_id"] == nil || *c1.Context["order_id"] != "A-1001" || c1.FirstReplyAt == nil {
		t.Errorf("first conversation = %+v, want resolved, cust-ada's, order A-1001, answered", c1)
	}
	var kinds []string
	for i, e := range c1.History {
		if e.Seq != int64(i+1) {
			t.Errorf("history entry %d has seq %d", i, e.Seq)
		}
		kinds = append(kinds, e.Kind)
	}
	if got, want := strings.Join(kinds, ","), "message,message,read,update"; got != want {
		t.Fatalf("first conversation's history kinds = %s, want %s: %+v", got, want, c1.History)
	}
	h := c1.History
	if h[0].Message == nil || h[0].Message.Body != "My order is late" || h[0].By.ID != "cust-ada" || h[0].By.Role != "customer" {
		t.Errorf("entry 1 = %+v, want the customer's first message", h[0])
	}
	if h[1].Message == nil || h[1].Message.ID != reply.ID || h[1].Message.Body != "It ships tomorrow." || h[1].By.Role != "admin" {
		t.Errorf("entry 2 = %+v, want the admin's reply", h[1])
	}
	if h[2].By.ID != "cust-ada" || h[2].ReadSeq == nil || *h[2].ReadSeq != 2 {
		t.Errorf("entry 3 = %+v, want the customer reading up to seq 2", h[2])
	}
	if h[3].Status != "resolved" || h[3].Assignee == nil || *h[3].Assignee != "admin-grace" {
		t.Errorf("entry 4 = %+v, want resolved and assigned to admin-grace", h[3])
	}
	// The customer has read the admin's reply (seq 2); the team the customer's message (seq 1):
	// writing a reply reads what came before.
	if c1.ReadMarks.CustomerReadSeq != 2 || c1.ReadMarks.TeamReadSeq != 1 {
		t.Errorf("read marks = %+v, want customer 2, team 1", c1.ReadMarks)
	}
	c2 := x.Conversations[byID[second.ID]]
	if c2.Status != "open" || len(c2.History) != 2 || c2.History[1].Message == nil || c2.History[1].Message.Body != "About sizes, too." || c2.FirstReplyAt != nil {
		t.Errorf("second conversation = %+v, want open with two messages", c2)
	}

	// Nothing held: an empty export, not 404.
	if x, _ := grace.export("cust-nobody"); len(x.Conversations) != 0 || x.CustomerID != "cust-nobody" {
		t.Errorf("export of an unknown customer = %+v, want empty", x)
	}
	// Another tenant's admin finds nothing of the customer.
	if x, _ := s.admin(outdoor, "agent-1").export("cust-ada"); len(x.Conversations) != 0 {
		t.Errorf("another tenant's export of cust-ada = %+v, want empty", x)
	}
	// A customer, even of themselves, gets what other admin-only routes answer.
	ada.do("GET", "/api/v1/admin/customers/cust-ada/export", nil).Problem(t, http.StatusForbidden)
	if p := grace.do("GET", "/api/v1/admin/customers/bad%20id/export", nil).Problem(t, http.StatusBadRequest); p.Field() != "customer_id" {
		t.Errorf("an id that cannot be a user id: problem names %q, want customer_id", p.Field())
	}
	if p := grace.do("GET", "/api/v1/admin/customers/cust-ada/export?format=csv", nil).Problem(t, http.StatusBadRequest); p.Field() != "format" {
		t.Errorf("an unknown query parameter: problem names %q, want format", p.Field())
	}
}

// TestExportLargeConversation exports a conversation of 520 messages, past a page of the log,
// stored through the store rather than the API: every message is there, in order, on every
// MongoDB wire server (the store pages the log by _id on FerretDB).
func TestExportLargeConversation(t *testing.T) {
	forEachServer(t, testExportLargeConversation)
}

func testExportLargeConversation(t *testing.T, srv testenv.MongoServer) {
	s := newStack(t, stackOptions{server: &srv})
	ada := s.customer(shop, "cust-ada")
	s.admin(shop, "admin-grace").setPresence("online") // no away notice
	conv := ada.start("message 1")
	ctx := context.Background()
	firsts, err := s.store.EntriesPage(ctx, shop, conv.ID, 0, 1)
	if err != nil || len(firsts) != 1 {
		t.Fatalf("EntriesPage = %v, %v", firsts, err)
	}
	const total = 520 // past one page of the log (500 entries)
	customer := chat.Participant{ID: "cust-ada", Role: chat.RoleCustomer}
	admin := chat.Participant{ID: "admin-grace", Role: chat.RoleAdmin}
	st := firsts[0].State
	at := firsts[0].At
	var batch []chat.Entry
	for seq := int64(2); seq <= total; seq++ {
		at = at.Add(time.Second)
		by := customer
		if seq%2 == 0 {
			by = admin
			st.AdminCount++
		} else {
			st.CustomerCount++
		}
		st.Seq, st.UpdatedAt = seq, at
		m := &chat.Message{ID: randomID(), ConversationID: conv.ID, Seq: seq, Sender: by, Body: fmt.Sprintf("message %d", seq),
			CreatedAt: at, CustomerN: st.CustomerCount, AdminN: st.AdminCount}
		batch = append(batch, chat.Entry{ID: m.ID, TenantID: shop, ConversationID: conv.ID, CustomerID: "cust-ada", Seq: seq,
			Kind: chat.EntryMessage, At: at, By: by, Message: m, State: st})
		if len(batch) == 100 || seq == total {
			if n, err := s.store.Append(ctx, batch); err != nil || n != len(batch) {
				t.Fatalf("Append = %d, %v", n, err)
			}
			batch = batch[:0]
		}
	}

	x, _ := s.admin(shop, "admin-grace").export("cust-ada")
	if len(x.Conversations) != 1 {
		t.Fatalf("export has %d conversations, want 1", len(x.Conversations))
	}
	h := x.Conversations[0].History
	if len(h) != total {
		t.Fatalf("export has %d entries, want %d", len(h), total)
	}
	for i, e := range h {
		if want := fmt.Sprintf("message %d", i+1); e.Seq != int64(i+1) || e.Message == nil || e.Message.Body != want {
			t.Fatalf("entry %d = %+v, want seq %d, %q", i, e, i+1, want)
		}
	}
}

// auditPage is a page of the audit trail as the tests read it.
type auditPage struct {
	Entries []struct {
		ID    string `json:"id"`
		At    string `json:"at"`
		Actor struct {
			ID   string `json:"id"`
			Role string `json:"role"`
		} `json:"actor"`
		Action  string           `json:"action"`
		Subject string           `json:"subject"`
		Target  string           `json:"target"`
		Counts  map[string]int64 `json:"counts"`
		Fields  []string         `json:"fields"`
	} `json:"entries"`
	NextCursor *string `json:"next_cursor"`
}

// auditTrail returns a page of u's tenant's audit trail for the query q.
func (u user) auditTrail(q string) auditPage {
	u.s.t.Helper()
	r := u.do("GET", "/api/v1/admin/audit"+q, nil)
	if r.Status != http.StatusOK {
		u.s.t.Fatalf("GET /admin/audit%s = %d %s", q, r.Status, r.Body)
	}
	var p auditPage
	r.JSON(u.s.t, &p)
	return p
}

// TestAuditTrail records an export and a settings change, lists them newest first a page at a
// time, never shows them to another tenant, and sweeps them once expired.
func TestAuditTrail(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	grace := s.admin(shop, "admin-grace")
	agent := s.admin(outdoor, "agent-1")
	grace.setPresence("online") // no away notice
	ada.start("My order is late")

	grace.export("cust-ada")
	s.clock.Advance(time.Second)
	if r := grace.do("PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": "Back at 9.", "unassign_on_away": true}); r.Status != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", r.Status, r.Body)
	}
	s.clock.Advance(time.Second)
	if r := agent.do("PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": "Gone fishing."}); r.Status != http.StatusOK {
		t.Fatalf("PUT settings of %s = %d %s", outdoor, r.Status, r.Body)
	}

	p1 := grace.auditTrail("?limit=1")
	if len(p1.Entries) != 1 || p1.NextCursor == nil {
		t.Fatalf("first page = %+v, want one entry and a cursor", p1)
	}
	e := p1.Entries[0]
	if e.Action != "settings.changed" || e.Actor.ID != "admin-grace" || e.Actor.Role != "admin" || strings.Join(e.Fields, ",") != "away_prompt,unassign_on_away" || e.Subject != "" {
		t.Errorf("newest entry = %+v, want admin-grace's settings change of away_prompt and unassign_on_away", e)
	}
	p2 := grace.auditTrail("?limit=1&cursor=" + url.QueryEscape(*p1.NextCursor))
	if len(p2.Entries) != 1 || p2.NextCursor != nil {
		t.Fatalf("second page = %+v, want the last entry", p2)
	}
	e = p2.Entries[0]
	if e.Action != "customer.exported" || e.Actor.ID != "admin-grace" || e.Subject != audit.Subject(shop, "cust-ada") ||
		e.Counts["conversations"] != 1 || e.Counts["messages"] != 1 || e.At != start.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("older entry = %+v, want admin-grace's export of cust-ada's 1 conversation and 1 message", e)
	}
	all := grace.do("GET", "/api/v1/admin/audit", nil)
	if strings.Contains(string(all.Body), "cust-ada") || strings.Contains(string(all.Body), "Back at 9.") || strings.Contains(string(all.Body), "Gone fishing") {
		t.Errorf("the audit trail holds a customer id or a setting's value: %s", all.Body)
	}
	// The other tenant sees its own entry alone.
	if p := agent.auditTrail(""); len(p.Entries) != 1 || p.Entries[0].Action != "settings.changed" || p.Entries[0].Actor.ID != "agent-1" {
		t.Errorf("%s's audit trail = %+v, want its own settings change alone", outdoor, p)
	}
	ada.do("GET", "/api/v1/admin/audit", nil).Problem(t, http.StatusForbidden)
	if p := grace.do("GET", "/api/v1/admin/audit?cursor=bogus", nil).Problem(t, http.StatusBadRequest); p.Field() != "cursor" {
		t.Errorf("a bad cursor: problem names %q, want cursor", p.Field())
	}
	if p := grace.do("GET", "/api/v1/admin/audit?limit=101", nil).Problem(t, http.StatusBadRequest); p.Field() != "limit" {
		t.Errorf("limit 101: problem names %q, want limit", p.Field())
	}

	// Kept for CHAT_AUDIT_RETENTION (400 days): a sweep a day early deletes nothing, one after
	// deletes all three.
	ctx := context.Background()
	if n, err := s.store.SweepAudit(ctx, start.Add(399*24*time.Hour)); err != nil || n != 0 {
		t.Errorf("SweepAudit after 399 days = %d, %v; want 0", n, err)
	}
	if n, err := s.store.SweepAudit(ctx, start.Add(401*24*time.Hour)); err != nil || n != 3 {
		t.Errorf("SweepAudit after 401 days = %d, %v; want 3", n, err)
	}
	if p := grace.auditTrail(""); len(p.Entries) != 0 || p.NextCursor != nil {
		t.Errorf("the audit trail after the sweep = %+v, want empty", p)
	}
	var left []json.RawMessage
	cur, err := s.raw.Collection("audit").Find(ctx, map[string]any{})
	if err != nil || cur.All(ctx, &left) != nil || len(left) != 0 {
		t.Errorf("audit collection after the sweep: %d documents (%v), want none", len(left), err)
	}
}
