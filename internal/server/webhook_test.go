package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/server/servertest"
	"github.com/supportchat/supportchat/internal/testenv"
	"github.com/supportchat/supportchat/internal/webhook"
)

// The webhook tests run the whole service (server.Run) on FerretDB and a private Redis, with a
// receiver on loopback (allowed by CHAT_WEBHOOK_ALLOWED_NETWORKS, as chatd-dev allows it) and a
// shortened retry schedule.

// hookSchedule is the retry schedule of the tests: as many retries as the real one, in
// milliseconds.
var hookSchedule = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond,
	300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}

// hookStack is a tenant directory, a database and a Redis that replicas of the service share.
type hookStack struct {
	env     map[string]string
	issuers map[string]*testenv.Issuer
}

// newHookStack writes a tenant file for each of tenants, each with an issuer of its own, for
// replicas on the test database (testenv.MustMongo).
func newHookStack(t testing.TB, env map[string]string, tenants ...string) *hookStack {
	t.Helper()
	uri, database := testenv.MustMongo(t)
	return newHookStackOn(t, uri, database, env, tenants...)
}

// newHookStackOn is newHookStack on the database of uri.
func newHookStackOn(t testing.TB, uri, database string, env map[string]string, tenants ...string) *hookStack {
	t.Helper()
	rds := testenv.StartRedis(t)
	dir := t.TempDir()
	s := &hookStack{issuers: map[string]*testenv.Issuer{}, env: map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": rds.URL(), "CHAT_TENANTS_DIR": dir, "OTEL_SDK_DISABLED": "true",
		"CHAT_LIMITS_REQUESTS_PER_MINUTE": "0", "CHAT_LIMITS_WRITES_PER_MINUTE": "0",
		"CHAT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
	}}
	for k, v := range env {
		s.env[k] = v
	}
	for _, id := range tenants {
		iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
		s.issuers[id] = iss
		file := fmt.Sprintf("id: %s\nname: %s\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", id, id, iss.URL())
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// replica starts a replica of the service for tenant's callers, and returns it with a
// function that stops it.
func (s *hookStack) replica(t testing.TB, tenantID string, tuning server.WebhookTuning) (*faultService, func()) {
	t.Helper()
	if tuning.Schedule == nil {
		tuning.Schedule = hookSchedule
	}
	if tuning.Poll == 0 {
		tuning.Poll = 50 * time.Millisecond
	}
	addrs, stop := servertest.StartStoppable(t, s.env, server.Options{Stdout: io.Discard, Webhooks: tuning}, 30*time.Second)
	iss := s.issuers[tenantID]
	f := &faultService{base: "http://" + addrs.API.String(), iss: iss, client: &http.Client{Timeout: 2 * faultWaitTimeout},
		customerToken: iss.Token(t, "cust-1", false), adminToken: iss.Token(t, "admin-1", true)}
	return f.forTenant(tenantID), stop
}

// forTenant returns f calling as tenantID (faultService sends X-Tenant-ID: fault-shop).
func (f *faultService) forTenant(tenantID string) *faultService {
	if tenantID != faultTenant {
		f.client = &http.Client{Timeout: f.client.Timeout, Transport: tenantHeader{tenantID}}
	}
	return f
}

// tenantHeader replaces the X-Tenant-ID of every request.
type tenantHeader struct{ id string }

func (h tenantHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Tenant-ID", h.id)
	return http.DefaultTransport.RoundTrip(r)
}

// received is a request the receiver took.
type received struct {
	id, timestamp, signature string
	body                     []byte
	at                       time.Time
	status                   int
}

// payload is a delivery's body.
func (r received) payload(t testing.TB) (typ string, data map[string]any) {
	t.Helper()
	var p struct {
		Type      string         `json:"type"`
		Timestamp string         `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Type == "" || p.Timestamp == "" || p.Data == nil {
		t.Fatalf("delivery body %s: %v", r.body, err)
	}
	return p.Type, p.Data
}

// receiver is a webhook receiver on loopback whose answers the test decides.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	// answer decides the status of request n (from 0); 0 resets the connection, and a
	// negative status -d sleeps d seconds first, then answers 200.
	answer func(n int, r *http.Request, w http.ResponseWriter) int
	got    []received
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request, w http.ResponseWriter) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rec := received{id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
			signature: r.Header.Get("webhook-signature"), body: body, at: time.Now()}
		rc.got = append(rc.got, rec)
		rc.mu.Unlock()
		status := http.StatusNoContent
		if rc.answer != nil {
			status = rc.answer(n, r, w)
		}
		if status == 0 {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
				}
			}
			return
		}
		rc.mu.Lock()
		rc.got[n].status = status
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// requests returns what the receiver took so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// accepted returns the requests the receiver answered 2xx, each delivery once (the first).
func (rc *receiver) accepted() []received {
	var out []received
	seen := map[string]bool{}
	for _, r := range rc.requests() {
		if r.status >= 200 && r.status < 300 && !seen[r.id] {
			seen[r.id] = true
			out = append(out, r)
		}
	}
	return out
}

// endpoint creates a webhook endpoint of url for events as f's admin, returning its id and
// secret.
func (f *faultService) endpoint(t testing.TB, url string, events ...string) (id, secret string) {
	t.Helper()
	a := f.mustCall(t, "POST", "/api/v1/admin/webhooks", f.adminToken, map[string]any{"url": url, "events": events})
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &ep) != nil || ep.ID == "" || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("POST /admin/webhooks = %d %s", a.status, a.body)
	}
	return ep.ID, ep.Secret
}

// deliveryView is a delivery as GET .../deliveries lists it.
type deliveryView struct {
	ID       string `json:"id"`
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Attempts []struct {
		Status     *int   `json:"status"`
		DurationMS int64  `json:"duration_ms"`
		Error      string `json:"error"`
	} `json:"attempts"`
}

// deliveries lists the endpoint's deliveries, newest first.
func (f *faultService) deliveries(t *testing.T, endpointID string) []deliveryView {
	t.Helper()
	a := f.mustCall(t, "GET", "/api/v1/admin/webhooks/"+endpointID+"/deliveries?limit=100", f.adminToken, nil)
	var page struct {
		Deliveries []deliveryView `json:"deliveries"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &page) != nil {
		t.Fatalf("GET deliveries = %d %s", a.status, a.body)
	}
	return page.Deliveries
}

// send sends a message as the customer.
func (f *faultService) mustSend(t testing.TB, conv, body string) {
	t.Helper()
	if a := f.mustCall(t, "POST", "/api/v1/chat/"+conv+"/messages", f.customerToken, map[string]string{"body": body}); a.status != http.StatusCreated {
		t.Fatalf("POST messages = %d %s", a.status, a.body)
	}
}

// verified reports whether every signature of r verifies with secret.
func verified(r received, secret string) bool {
	return webhook.Verify(secret, r.id, r.timestamp, r.body, r.signature)
}

// messageBodies returns the bodies of the customer's messages among the message.created
// deliveries of rs, in order.
func messageBodies(t testing.TB, rs []received) []string {
	var out []string
	for _, r := range rs {
		if typ, data := r.payload(t); typ == "message.created" {
			msg, _ := data["message"].(map[string]any)
			sender, _ := msg["sender"].(map[string]any)
			body, _ := msg["body"].(string)
			if sender["role"] == "customer" { // not the away notice
				out = append(out, body)
			}
		}
	}
	return out
}

// numbered returns "prefix 0" … "prefix n-1".
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return out
}

// TestWebhooksArriveSignedAndInOrder: a customer's conversation and an admin's changes reach the
// receiver as signed deliveries, in the order of the log, each once; a support transition is
// delivered once; after a rotation both secrets sign, and the old one alone no longer does
// once the new one is in use... for 24 hours both verify.
func TestWebhooksArriveSignedAndInOrder(t *testing.T) {
	s := newHookStack(t, nil, faultTenant)
	f, _ := s.replica(t, faultTenant, server.WebhookTuning{})
	rc := newReceiver(t, nil)
	epID, secret := f.endpoint(t, rc.srv.URL+"/hooks", "conversation.created", "conversation.updated", "message.created", "support.changed")

	conv := f.mustStart(t, "first")
	want := append([]string{"first"}, numbered("message", 10)...)
	for _, b := range want[1:] {
		f.mustSend(t, conv, b)
	}
	if a := f.mustCall(t, "PATCH", "/api/v1/chat/"+conv, f.adminToken, map[string]string{"status": "resolved"}); a.status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", a.status, a.body)
	}
	if a := f.mustCall(t, "PUT", "/api/v1/chat/presence", f.adminToken, map[string]string{"status": "online"}); a.status != http.StatusOK {
		t.Fatalf("PUT presence = %d %s", a.status, a.body)
	}
	waitUntil(t, "every delivery", func() bool {
		var types []string
		for _, r := range rc.accepted() {
			typ, _ := r.payload(t)
			types = append(types, typ)
		}
		return len(messageBodies(t, rc.accepted())) == len(want) && slices.Contains(types, "conversation.updated") && slices.Contains(types, "support.changed")
	})

	got := rc.accepted()
	var types []string
	for _, r := range got {
		if !verified(r, secret) {
			t.Errorf("delivery %s does not verify with the endpoint's secret", r.id)
		}
		typ, _ := r.payload(t)
		types = append(types, typ)
	}
	if b := messageBodies(t, got); !slices.Equal(b, want) {
		t.Errorf("messages arrived as %q, want %q", b, want)
	}
	if types[0] != "conversation.created" || types[1] != "message.created" {
		t.Errorf("the conversation's deliveries start with %q", types[:2])
		for _, r := range rc.requests() {
			t.Logf("%s %s %d %.150s", r.at.Format("15:04:05.000000"), r.id, r.status, r.body)
		}
	}
	if n := count(types, "support.changed"); n != 1 {
		t.Errorf("%d support.changed deliveries, want 1", n)
	}
	if n := count(types, "conversation.updated"); n < 1 {
		t.Errorf("no conversation.updated delivery")
	}
	time.Sleep(500 * time.Millisecond) // a delivery made twice would arrive by now
	if n := len(rc.requests()); n != len(got) {
		t.Errorf("the receiver took %d requests for %d deliveries", n, len(got))
	}

	// Rotation: the new secret signs, and so does the old one for 24 hours.
	a := f.mustCall(t, "POST", "/api/v1/admin/webhooks/"+epID+"/rotate-secret", f.adminToken, nil)
	var rot struct {
		Secret string `json:"secret"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &rot) != nil || rot.Secret == "" || rot.Secret == secret {
		t.Fatalf("rotate-secret = %d %s", a.status, a.body)
	}
	f.mustSend(t, conv, "after rotation")
	var last received
	waitUntil(t, "the delivery after the rotation", func() bool {
		for _, r := range rc.accepted() {
			if strings.Contains(string(r.body), "after rotation") {
				last = r
				return true
			}
		}
		return false
	})
	if !verified(last, rot.Secret) || !verified(last, secret) {
		t.Errorf("after a rotation the delivery verifies with new: %v, old: %v; want both", verified(last, rot.Secret), verified(last, secret))
	}
	if strings.Count(last.signature, "v1,") != 2 {
		t.Errorf("webhook-signature %q: want two signatures", last.signature)
	}
	if verified(last, webhook.NewSecret()) {
		t.Error("a delivery verifies with an unrelated secret")
	}
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestWebhooksRetryUntilTheReceiverRecovers: the receiver fails in every way a receiver fails
// (500s, a reset connection, a timeout, 429 with Retry-After, then down for a while) while
// the customer keeps writing; every message is delivered once it recovers, in order, each
// with the webhook-id of its first attempt, and the 429's Retry-After is honoured.
func TestWebhooksRetryUntilTheReceiverRecovers(t *testing.T) {
	s := newHookStack(t, map[string]string{"CHAT_WEBHOOK_TIMEOUT": "1s"}, faultTenant)
	f, _ := s.replica(t, faultTenant, server.WebhookTuning{})
	var mu sync.Mutex
	down := true
	rc := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) int {
		switch n {
		case 0, 1:
			return http.StatusInternalServerError
		case 2:
			return 0 // connection reset
		case 3:
			time.Sleep(1500 * time.Millisecond) // beyond CHAT_WEBHOOK_TIMEOUT
			return http.StatusOK
		case 4:
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		}
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	epID, _ := f.endpoint(t, rc.srv.URL, "message.created")
	conv := f.mustStart(t, "first")
	want := append([]string{"first"}, numbered("while failing", 6)...)
	for _, b := range want[1:] {
		f.mustSend(t, conv, b)
	}
	waitUntil(t, "the receiver's failures", func() bool { return len(rc.requests()) >= 7 })
	defer func() {
		if t.Failed() {
			for _, r := range rc.requests() {
				t.Logf("%s %s %d %s", r.at.Format("15:04:05.000"), r.id, r.status, r.body)
			}
		}
	}()
	mu.Lock()
	down = false
	mu.Unlock()
	waitUntil(t, "every message", func() bool { return len(messageBodies(t, rc.accepted())) >= len(want) })

	all := rc.requests()
	if b := messageBodies(t, rc.accepted()); !slices.Equal(b, want) {
		t.Errorf("messages arrived as %q, want %q", b, want)
	}
	// The first delivery took every failure: one webhook-id throughout.
	for i := range 6 {
		if all[i].id != all[0].id {
			t.Errorf("attempt %d of the first delivery has webhook-id %s, the first had %s", i, all[i].id, all[0].id)
		}
	}
	if wait := all[5].at.Sub(all[4].at); wait < time.Second {
		t.Errorf("the attempt after a 429 with Retry-After: 1 came %s later", wait)
	}
	var first deliveryView
	for _, d := range f.deliveries(t, epID) {
		if d.ID == all[0].id {
			first = d
		}
	}
	if first.State != "delivered" || len(first.Attempts) < 6 {
		t.Fatalf("the first delivery is %s after %d attempts", first.State, len(first.Attempts))
	}
	var seen []string
	for _, a := range first.Attempts {
		code := 0
		if a.Status != nil {
			code = *a.Status
		}
		seen = append(seen, fmt.Sprintf("%d:%s", code, a.Error))
	}
	for _, want := range []string{"500:status 500", "0:timeout", "429:status 429"} {
		if !slices.Contains(seen, want) {
			t.Errorf("attempts %q lack %q", seen, want)
		}
	}
}

// TestWebhookDiesAfterItsScheduleAndIsRedelivered: a receiver that always fails makes the
// delivery dead after the last attempt; a redelivery, once it recovers, delivers it with the
// same webhook-id. A 410 disables the endpoint.
func TestWebhookDiesAfterItsScheduleAndIsRedelivered(t *testing.T) {
	s := newHookStack(t, nil, faultTenant)
	f, _ := s.replica(t, faultTenant, server.WebhookTuning{})
	var mu sync.Mutex
	status := http.StatusBadGateway
	rc := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int {
		mu.Lock()
		defer mu.Unlock()
		return status
	})
	epID, _ := f.endpoint(t, rc.srv.URL, "conversation.created")
	f.mustStart(t, "hello")
	var d deliveryView
	waitUntil(t, "a dead delivery", func() bool {
		ds := f.deliveries(t, epID)
		if len(ds) == 1 {
			d = ds[0]
		}
		return d.State == "dead"
	})
	if n := len(d.Attempts); n != len(hookSchedule)+1 {
		t.Errorf("dead after %d attempts, want %d", n, len(hookSchedule)+1)
	}
	if n := len(rc.requests()); n != len(hookSchedule)+1 {
		t.Errorf("the receiver took %d requests", n)
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	if a := f.mustCall(t, "POST", "/api/v1/admin/webhooks/"+epID+"/deliveries/"+d.ID+"/redeliver", f.adminToken, nil); a.status != http.StatusAccepted {
		t.Fatalf("redeliver = %d %s", a.status, a.body)
	}
	waitUntil(t, "the redelivery", func() bool { return len(rc.accepted()) == 1 })
	if got := rc.accepted()[0].id; got != d.ID {
		t.Errorf("redelivered with webhook-id %s, want %s", got, d.ID)
	}

	mu.Lock()
	status = http.StatusGone
	mu.Unlock()
	f.mustStart(t, "again")
	waitUntil(t, "the endpoint disabled", func() bool {
		a := f.mustCall(t, "GET", "/api/v1/admin/webhooks/"+epID, f.adminToken, nil)
		var ep struct {
			Enabled bool   `json:"enabled"`
			Reason  string `json:"disabled_reason"`
		}
		return a.status == http.StatusOK && json.Unmarshal(a.body, &ep) == nil && !ep.Enabled && strings.Contains(ep.Reason, "410")
	})
	before := len(rc.requests())
	f.mustStart(t, "to a disabled endpoint")
	time.Sleep(time.Second)
	if n := len(rc.requests()); n != before {
		t.Errorf("a disabled endpoint took %d more requests", n-before)
	}
}

// TestWebhooksSurviveTheWritersAndSendersDeath: a replica that runs no webhook workers writes
// and dies; another replica's sender is stopped while its request is in flight; a third
// delivers everything, nothing lost and in order. The marks in the log, written by the
// commits themselves, are what carries the events over.
func TestWebhooksSurviveTheWritersAndSendersDeath(t *testing.T) {
	s := newHookStack(t, nil, faultTenant)
	writer, stopWriter := s.replica(t, faultTenant, server.WebhookTuning{Off: true})
	release := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n == 0 {
			<-release // the first request hangs until its sender is gone
		}
		return http.StatusOK
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	writer.endpoint(t, rc.srv.URL, "message.created")
	conv := writer.mustStart(t, "first")
	want := append([]string{"first"}, numbered("written", 5)...)
	for _, b := range want[1:] {
		writer.mustSend(t, conv, b)
	}
	stopWriter()

	lease := server.WebhookTuning{LeaseTTL: 2 * time.Second}
	_, stopSender := s.replica(t, faultTenant, lease)
	waitUntil(t, "the first request", func() bool { return len(rc.requests()) == 1 })
	_, _ = s.replica(t, faultTenant, lease)
	stopSender()
	once.Do(func() { close(release) })
	waitUntil(t, "every message", func() bool { return len(messageBodies(t, rc.accepted())) >= len(want) })
	if b := messageBodies(t, rc.accepted()); !slices.Equal(b, want) {
		t.Errorf("messages arrived as %q, want %q", b, want)
	}
}

// TestWebhooksRefuseAddressesAtConnectTime: with no network allowed, a URL whose name resolves
// to loopback passes validation but is refused when the connection is made: the receiver on
// loopback never gets a request, and the delivery is dead with the reason.
func TestWebhooksRefuseAddressesAtConnectTime(t *testing.T) {
	s := newHookStack(t, map[string]string{"CHAT_WEBHOOK_ALLOWED_NETWORKS": ""}, faultTenant)
	f, _ := s.replica(t, faultTenant, server.WebhookTuning{})
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())
	epID, _ := f.endpoint(t, "https://localhost:"+port+"/hooks", "conversation.created")
	for _, u := range []string{rc.srv.URL, "https://127.0.0.1:" + port, "https://[::1]:" + port, "https://[::ffff:127.0.0.1]:" + port, "https://169.254.169.254/latest"} {
		if a := f.mustCall(t, "POST", "/api/v1/admin/webhooks", f.adminToken, map[string]any{"url": u, "events": []string{"message.created"}}); a.status != http.StatusBadRequest {
			t.Errorf("POST /admin/webhooks with %s = %d, want 400", u, a.status)
		}
	}
	f.mustStart(t, "hello")
	var d deliveryView
	waitUntil(t, "the refused delivery", func() bool {
		ds := f.deliveries(t, epID)
		if len(ds) == 1 {
			d = ds[0]
		}
		return d.State == "dead"
	})
	if len(d.Attempts) != 1 || d.Attempts[0].Error != "address not allowed" {
		t.Errorf("attempts %+v, want one refused", d.Attempts)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the receiver on loopback took %d requests", n)
	}
}

// TestOneTenantsStuckEndpointHoldsUpNoOther: tenant A's receiver never answers; tenant B's
// deliveries all arrive while A's first request still hangs, and B's receiver sees nothing of
// A's.
func TestOneTenantsStuckEndpointHoldsUpNoOther(t *testing.T) {
	const tenantA, tenantB = "stuck-shop", "fine-shop"
	s := newHookStack(t, map[string]string{"CHAT_WEBHOOK_TIMEOUT": "30s"}, tenantA, tenantB)
	a, _ := s.replica(t, tenantA, server.WebhookTuning{})
	b := (&faultService{base: a.base, client: &http.Client{Timeout: 2 * faultWaitTimeout}, iss: s.issuers[tenantB],
		customerToken: s.issuers[tenantB].Token(t, "cust-1", false), adminToken: s.issuers[tenantB].Token(t, "admin-1", true)}).forTenant(tenantB)
	hang := make(chan struct{})
	stuck := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int { <-hang; return http.StatusOK })
	t.Cleanup(func() { close(hang) }) // before the receiver closes, which waits for its requests
	fine := newReceiver(t, nil)
	for i := range 3 { // a tenant with several stuck endpoints
		a.endpoint(t, fmt.Sprintf("%s/%d", stuck.srv.URL, i), "message.created")
	}
	b.endpoint(t, fine.srv.URL, "message.created")
	convA := a.mustStart(t, "from A")
	convB := b.mustStart(t, "from B")
	want := []string{"from B"}
	for i := range 10 {
		a.mustSend(t, convA, fmt.Sprintf("A %d", i))
		b.mustSend(t, convB, fmt.Sprintf("B %d", i))
		want = append(want, fmt.Sprintf("B %d", i))
	}
	waitUntil(t, "B's deliveries", func() bool { return len(messageBodies(t, fine.accepted())) >= len(want) })
	if got := messageBodies(t, fine.accepted()); !slices.Equal(got, want) {
		t.Errorf("B's receiver got %q, want %q", got, want)
	}
	if n := len(stuck.accepted()); n != 0 {
		t.Errorf("A's stuck receiver answered %d", n)
	}
}

// TestWebhooksDoNotFollowRedirects: a receiver that redirects ends the delivery (a 3xx is not
// a 2xx), and the redirect's target, on an address the check would allow, gets no request.
func TestWebhooksDoNotFollowRedirects(t *testing.T) {
	s := newHookStack(t, nil, faultTenant)
	f, _ := s.replica(t, faultTenant, server.WebhookTuning{})
	target := newReceiver(t, nil)
	redirector := newReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) int {
		w.Header().Set("Location", target.srv.URL+"/elsewhere")
		return http.StatusTemporaryRedirect
	})
	epID, _ := f.endpoint(t, redirector.srv.URL, "conversation.created")
	f.mustStart(t, "hello")
	var d deliveryView
	waitUntil(t, "the redirected delivery", func() bool {
		ds := f.deliveries(t, epID)
		if len(ds) == 1 {
			d = ds[0]
		}
		return d.State == "dead"
	})
	if len(d.Attempts) != 1 || d.Attempts[0].Status == nil || *d.Attempts[0].Status != http.StatusTemporaryRedirect {
		t.Errorf("attempts %+v, want one answered 307", d.Attempts)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect's target took %d requests", n)
	}
}
