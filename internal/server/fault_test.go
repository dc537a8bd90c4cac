package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The fault tests run the whole service (server.Run on 127.0.0.1:0) against the embedded
// FerretDB and a private redis-server, break one dependency for real (the redis-server process
// is killed; MongoDB is cut off behind a testenv.Proxy), and check what clients see while it is
// broken and after it is back. Other faults are covered elsewhere:
//   - Redis down, one request of each kind: TestRedisDownDegradesButServes (internal/httpapi);
//     event streams across a Redis restart on three replicas, also on a Redis Cluster:
//     TestEventStreamsSurviveARedisRestart (internal/httpapi); the breaker:
//     TestBreakerFailsFastWhileRedisIsDown (internal/redisconn).
//   - A process dying between any two steps of a write: TestConsistencyCrashBetweenWriteSteps;
//     a lost answer: TestConsistencyRetryAfterALostAnswer (internal/httpapi).
//   - SIGTERM of the real binary under load: TestSIGTERMUnderLoad (cmd/chatd); a replica killed
//     and restarted under writers with retries: TestSoak (cmd/chatd, make soak).
//   - A tenant's issuer down, slow or rotating keys: internal/auth.

// faultTenant is the one tenant of the fault tests.
const faultTenant = "fault-shop"

// faultWaitTimeout bounds every wait of the fault tests for something that must happen: wide,
// for -race on a loaded two-core machine.
const faultWaitTimeout = 30 * time.Second

// faultService is the service under a fault test and what it runs on.
type faultService struct {
	base          string
	iss           *testenv.Issuer
	redis         *testenv.Redis
	mongoURI      string // the server's own address, not the proxy's
	database      string
	client        *http.Client
	customerToken string
	adminToken    string
}

// startFaultService runs the service against a fresh database and a private redis-server.
// mongoURI, when not nil, turns the server's MongoDB URI into the one the service uses (a
// proxy's); env adds or overrides variables.
func startFaultService(t *testing.T, mongoURI func(string) string, env map[string]string) *faultService {
	t.Helper()
	f := &faultService{client: &http.Client{Timeout: 2 * faultWaitTimeout}}
	f.mongoURI, f.database = testenv.MustMongo(t)
	f.redis = testenv.StartRedis(t)
	f.iss = testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	file := fmt.Sprintf("id: %s\nname: Fault\noidc:\n  issuer: %s\n  audience: support-chat\n  admin_claim: roles\n  admin_values: [support_admin]\n", faultTenant, f.iss.URL())
	if err := os.WriteFile(filepath.Join(dir, faultTenant+".yaml"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	uri := f.mongoURI
	if mongoURI != nil {
		uri = mongoURI(uri)
	}
	all := map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": f.database,
		"CHAT_REDIS_URL": f.redis.URL(), "CHAT_TENANTS_DIR": dir, "OTEL_SDK_DISABLED": "true",
		// A few callers write as fast as they can here: the per-caller limits are not under test.
		"CHAT_LIMITS_REQUESTS_PER_MINUTE": "0", "CHAT_LIMITS_WRITES_PER_MINUTE": "0", "CHAT_LIMITS_EVENT_STREAMS": "0",
	}
	for k, v := range env {
		all[k] = v
	}
	f.base = "http://" + runServer(t, all, server.Options{Stdout: io.Discard}).String()
	f.customerToken = f.iss.Token(t, "cust-1", false)
	f.adminToken = f.iss.Token(t, "admin-1", true)
	return f
}

// answer is a response of the service.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// problemType returns the slug of a problem answer's type, or "" when it is not a problem.
func (a answer) problemType() string {
	if a.header.Get("Content-Type") != "application/problem+json" {
		return ""
	}
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(a.body, &p)
	return p.Type[strings.LastIndex(p.Type, "/")+1:]
}

// call sends a request as the caller of token (none when ""), with a JSON body unless body is
// nil and headers as name, value pairs. It may run on any goroutine: it returns errors.
func (f *faultService) call(method, path, token string, body any, headers ...string) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("X-Tenant-ID", faultTenant)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// mustCall is call on the test's goroutine: a request without an answer fails the test.
func (f *faultService) mustCall(t testing.TB, method, path, token string, body any, headers ...string) answer {
	t.Helper()
	a, err := f.call(method, path, token, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

// mustStart starts a conversation as the customer and returns its id.
func (f *faultService) mustStart(t testing.TB, message string) string {
	t.Helper()
	a := f.mustCall(t, "POST", "/api/v1/chat/start", f.customerToken, map[string]string{"message": message})
	if a.status != http.StatusCreated {
		t.Fatalf("POST /chat/start = %d %s, want 201", a.status, a.body)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(a.body, &c); err != nil || c.ID == "" {
		t.Fatalf("POST /chat/start answered %s", a.body)
	}
	return c.ID
}

// waitUntil polls cond until it holds, failing the test with what after faultWaitTimeout.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(faultWaitTimeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", faultWaitTimeout, what)
		}
	}
}

// sseEvent is one event of an event stream; a comment has only Comment.
type sseEvent = testenv.SSEEvent

// sseStream is an open GET /api/v1/chat/events.
type sseStream struct {
	status int
	events chan sseEvent
	ended  chan struct{} // closed when the service ends the stream
	cancel context.CancelFunc
}

// openStream opens the event stream of the caller of token, resuming after lastID unless "".
// It returns the stream whatever its status; the test closes it when it ends.
func (f *faultService) openStream(t *testing.T, token, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/api/v1/chat/events", nil)
	req.Header.Set("X-Tenant-ID", faultTenant)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req) // no client timeout: the stream lasts
	if err != nil {
		cancel()
		t.Fatalf("GET /chat/events: %v", err)
	}
	s := &sseStream{status: resp.StatusCode, events: make(chan sseEvent, 10000), ended: make(chan struct{}), cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		defer close(s.ended)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		testenv.ReadSSE(resp.Body, s.events)
	}()
	return s
}

// next returns the next event that is not a comment, or ok false when the stream ended first.
func (s *sseStream) next(t *testing.T) (ev sseEvent, ok bool) {
	t.Helper()
	timeout := time.After(faultWaitTimeout)
	for {
		select {
		case ev := <-s.events:
			if ev.Type != "" {
				return ev, true
			}
		case <-s.ended:
			for {
				select {
				case ev := <-s.events:
					if ev.Type != "" {
						return ev, true
					}
				default:
					return sseEvent{}, false
				}
			}
		case <-timeout:
			t.Fatalf("no event and no end of the stream within %s", faultWaitTimeout)
		}
	}
}

// expect reads events until one of type typ, failing on any other type not in skip and on the
// end of the stream.
func (s *sseStream) expect(t *testing.T, typ string, skip ...string) sseEvent {
	t.Helper()
	for {
		ev, ok := s.next(t)
		if !ok {
			t.Fatalf("the event stream ended while waiting for %s", typ)
		}
		if ev.Type == typ {
			return ev
		}
		known := false
		for _, k := range skip {
			known = known || ev.Type == k
		}
		if !known {
			t.Fatalf("got event %s %s, want %s", ev.Type, ev.Data, typ)
		}
	}
}

// writers post messages into one conversation from several goroutines until stopped, and keep
// what was acknowledged in which phase of the test, and what was refused.
type writers struct {
	f    *faultService
	conv string
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	phase    string
	acked    map[string][]string // phase -> message ids
	refused  []string            // what a refused post answered
	attempts int
}

// startWriters starts n customer writers posting into conv, each with an Idempotency-Key per
// message, as fast as they are answered.
func (f *faultService) startWriters(t *testing.T, conv string, n int, phase string) *writers {
	t.Helper()
	w := &writers{f: f, conv: conv, stop: make(chan struct{}), phase: phase, acked: map[string][]string{}}
	for i := range n {
		w.wg.Go(func() { w.write(i) })
	}
	t.Cleanup(w.halt)
	return w
}

// write is one writer's loop.
func (w *writers) write(writer int) {
	for k := 0; ; k++ {
		select {
		case <-w.stop:
			return
		default:
		}
		key := fmt.Sprintf("writer-%d-message-%d", writer, k)
		a, err := w.f.call("POST", "/api/v1/chat/"+w.conv+"/messages", w.f.customerToken,
			map[string]string{"body": fmt.Sprintf("message %d of writer %d", k, writer)}, "Idempotency-Key", key)
		w.mu.Lock()
		w.attempts++
		var m struct {
			ID string `json:"id"`
		}
		switch {
		case err != nil:
			w.refused = append(w.refused, fmt.Sprintf("%s in %s: %v", key, w.phase, err))
		case a.status != http.StatusCreated || json.Unmarshal(a.body, &m) != nil || m.ID == "":
			w.refused = append(w.refused, fmt.Sprintf("%s in %s: %d %s", key, w.phase, a.status, a.body))
		default:
			w.acked[w.phase] = append(w.acked[w.phase], m.ID)
		}
		w.mu.Unlock()
	}
}

// enter starts a phase: acknowledgements from now on count for it.
func (w *writers) enter(phase string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phase = phase
}

// waitAcked waits until n writes were acknowledged in the current phase.
func (w *writers) waitAcked(t *testing.T, n int) {
	t.Helper()
	w.mu.Lock()
	phase := w.phase
	w.mu.Unlock()
	waitUntil(t, fmt.Sprintf("%d writes acknowledged while %s", n, phase), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked[phase]) >= n
	})
}

// halt stops the writers and waits for them.
func (w *writers) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// finish stops the writers, fails the test for every refused write, and returns the ids of
// all acknowledged messages.
func (w *writers) finish(t *testing.T) []string {
	t.Helper()
	w.halt()
	for _, r := range w.refused {
		t.Errorf("write refused: %s", r)
	}
	var ids []string
	for phase, acked := range w.acked {
		t.Logf("%d writes acknowledged while %s", len(acked), phase)
		ids = append(ids, acked...)
	}
	return ids
}

// messagesInLog counts the message entries of conversation conv in the database by message
// id, read straight from MongoDB (the log of docs/CONSISTENCY.md).
func messagesInLog(t *testing.T, uri, database, conv string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultWaitTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	cur, err := client.Database(database).Collection("entries").Find(ctx,
		bson.M{"tenant_id": faultTenant, "conversation_id": conv, "kind": "message"})
	if err != nil {
		t.Fatalf("reading the log: %v", err)
	}
	var entries []struct {
		Message struct {
			ID string `bson:"id"`
		} `bson:"message"`
	}
	if err := cur.All(ctx, &entries); err != nil {
		t.Fatalf("reading the log: %v", err)
	}
	n := map[string]int{}
	for _, e := range entries {
		n[e.Message.ID]++
	}
	return n
}

// checkAllStoredOnce fails the test unless every acknowledged message is in the log exactly once.
func checkAllStoredOnce(t *testing.T, acked []string, stored map[string]int) {
	t.Helper()
	for _, id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged message %s is stored %d times, want once", id, stored[id])
		}
	}
}

// TestRedisOutageMidTrafficAndMidStream kills the redis-server while customers write and an
// admin watches the event stream, then restarts it. Redis is a cache and a bus: every write is
// still acknowledged and stored while it is down, /readyz says degraded (not unready), the open
// stream ends cleanly (its client reconnects), and a reconnect after the restart is told to
// resync and then gets live events again.
func TestRedisOutageMidTrafficAndMidStream(t *testing.T) {
	f := startFaultService(t, nil, nil)
	conv := f.mustStart(t, "Where is my order?")
	stream := f.openStream(t, f.adminToken, "")
	if stream.status != http.StatusOK {
		t.Fatalf("GET /chat/events = %d, want 200", stream.status)
	}
	w := f.startWriters(t, conv, 3, "Redis is up")
	last := stream.expect(t, "message.created", "conversation.updated", "conversation.created")
	w.waitAcked(t, 3)

	f.redis.Stop(t)
	w.enter("Redis is down")
	// The open stream ends (or is told to resync) instead of hanging on a dead bus.
	for {
		ev, ok := stream.next(t)
		if !ok || ev.Type == "resync" {
			break
		}
		last = ev
	}
	w.waitAcked(t, 6)
	if a := f.mustCall(t, "GET", "/readyz", "", nil); a.status != http.StatusOK || !strings.Contains(string(a.body), `"degraded"`) {
		t.Errorf("/readyz with Redis down = %d %s, want 200 degraded", a.status, a.body)
	}

	f.redis.Start(t)
	w.enter("Redis is back")
	// A client reconnects with the last id it saw: 503 until the service reaches Redis again,
	// then resync (events of the outage are lost), then live events.
	var again *sseStream
	waitUntil(t, "the event stream to open again", func() bool {
		again = f.openStream(t, f.adminToken, last.ID)
		if again.status != http.StatusOK {
			again.cancel()
			if again.status != http.StatusServiceUnavailable {
				t.Fatalf("reconnect = %d, want 200 or 503", again.status)
			}
		}
		return again.status == http.StatusOK
	})
	again.expect(t, "resync", "message.created", "conversation.updated")
	w.waitAcked(t, 3)
	again.expect(t, "message.created", "conversation.updated", "resync")

	acked := w.finish(t)
	checkAllStoredOnce(t, acked, messagesInLog(t, f.mongoURI, f.database, conv))
}

// TestMongoDBUnreachable cuts the service off from MongoDB (a network partition: no answers,
// no refusals) and restores it. While cut, /readyz answers 503, and API calls answer 503
// service-unavailable problems within CHAT_MONGODB_TIMEOUT, each kind of call and writes queued
// behind others of the same conversation on its lock alike, although each makes several
// operations (the store's breaker fails the later ones at once); the service does not pile up
// goroutines; once MongoDB is back, it is ready, writes and reads again.
func TestMongoDBUnreachable(t *testing.T) {
	const timeout = 3 * time.Second // CHAT_MONGODB_TIMEOUT
	// slack is what a request may take beyond its bound on a loaded machine: less than the
	// timeout, so a call that waited out two MongoDB timeouts in a row fails the test.
	const slack = timeout * 5 / 6
	var proxy *testenv.Proxy
	f := startFaultService(t, func(uri string) string {
		var viaProxy string
		viaProxy, proxy = testenv.ProxyMongo(t, uri)
		return viaProxy
	}, map[string]string{"CHAT_MONGODB_TIMEOUT": timeout.String()})
	// Writes spread over a few conversations, so that they do not all queue on one's lock.
	var convs []string
	for range 4 {
		convs = append(convs, f.mustStart(t, "Before the outage"))
	}
	conv := convs[0]

	// request is one API call of the test, by the customer unless admin.
	type request struct {
		method, path string
		body         any
		headers      []string
		admin        bool
	}
	// timed sends r and returns its answer and how long it took.
	timed := func(r request) (answer, time.Duration, error) {
		token := f.customerToken
		if r.admin {
			token = f.adminToken
		}
		began := time.Now()
		a, err := f.call(r.method, r.path, token, r.body, r.headers...)
		return a, time.Since(began), err
	}
	// traffic is n calls of every kind that does not wait on a conversation's lock when MongoDB
	// fails: history reads, messages with a key (the key's record is the first thing stored),
	// new conversations.
	traffic := func(n int) []request {
		var rs []request
		for i := range n {
			c := convs[i%len(convs)]
			rs = append(rs,
				request{"GET", "/api/v1/chat/" + c + "/messages", nil, nil, false},
				request{"POST", "/api/v1/chat/" + c + "/messages", map[string]string{"body": "with a key"}, []string{"Idempotency-Key", fmt.Sprintf("key-%d-%d", time.Now().UnixNano(), i)}, false},
				request{"POST", "/api/v1/chat/start", map[string]string{"message": "a new one"}, nil, false})
		}
		return rs
	}
	// burst sends rs, 20 at once, and returns the answers, the errors and the slowest call.
	burst := func(rs []request) ([]answer, []error, time.Duration) {
		var mu sync.Mutex
		var answers []answer
		var errs []error
		var slowest time.Duration
		sem := make(chan struct{}, 20)
		var wg sync.WaitGroup
		for _, r := range rs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				a, d, err := timed(r)
				mu.Lock()
				defer mu.Unlock()
				slowest = max(slowest, d)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s %s: %w", r.method, r.path, err))
					return
				}
				answers = append(answers, a)
			})
		}
		wg.Wait()
		return answers, errs, slowest
	}
	// The same traffic while MongoDB is up warms the pools the outage must not grow.
	answers, errs, _ := burst(traffic(20))
	for _, err := range errs {
		t.Fatalf("before the outage: %v", err)
	}
	for _, a := range answers {
		if a.status/100 != 2 {
			t.Fatalf("before the outage: %d %s", a.status, a.body)
		}
	}
	f.client.CloseIdleConnections()
	before := settledGoroutines()

	proxy.Cut()
	waitUntil(t, "/readyz to answer 503", func() bool {
		return f.mustCall(t, "GET", "/readyz", "", nil).status == http.StatusServiceUnavailable
	})
	a := f.mustCall(t, "GET", "/readyz", "", nil)
	var ready struct {
		Status string `json:"status"`
		Checks map[string]struct {
			Status string `json:"status"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(a.body, &ready); err != nil || ready.Status != "unavailable" || ready.Checks["mongodb"].Status != "error" || a.header.Get("Retry-After") == "" {
		t.Errorf("/readyz with MongoDB cut = %d %s (Retry-After %q), want 503 unavailable, mongodb error, Retry-After",
			a.status, a.body, a.header.Get("Retry-After"))
	}
	unavailable := func(what string, a answer) {
		t.Helper()
		if a.status != http.StatusServiceUnavailable || a.problemType() != "service-unavailable" {
			t.Errorf("%s with MongoDB cut = %d %s %s, want a 503 service-unavailable problem", what, a.status, a.header.Get("Content-Type"), a.body)
		}
	}

	// every is one call of each kind that reads or writes MongoDB, each of several operations
	// in a row (a list query and a log refresh, a look-up and an insert, ...); the admin's first
	// call also records the admin.
	every := []request{
		{"GET", "/api/v1/chat/list", nil, nil, true},
		{"GET", "/api/v1/chat/list", nil, nil, false},
		{"GET", "/api/v1/chat/" + conv, nil, nil, false},
		{"GET", "/api/v1/chat/" + conv + "/messages", nil, nil, false},
		{"POST", "/api/v1/chat/" + conv + "/messages", map[string]string{"body": "with a key"}, []string{"Idempotency-Key", "every-call"}, false},
		{"POST", "/api/v1/chat/" + conv + "/messages", map[string]string{"body": "without a key"}, nil, false},
		{"POST", "/api/v1/chat/start", map[string]string{"message": "a new one"}, nil, false},
		{"POST", "/api/v1/chat/" + conv + "/read", nil, nil, false},
		{"PATCH", "/api/v1/chat/" + conv, map[string]string{"status": "resolved"}, nil, true},
		{"GET", "/api/v1/admin/settings", nil, nil, true},
		{"PUT", "/api/v1/admin/settings", map[string]string{"away_prompt": "Back soon"}, nil, true},
		{"PUT", "/api/v1/chat/presence", map[string]string{"status": "away"}, nil, true},
		{"GET", "/api/v1/admin/webhooks", nil, nil, true},
		// A receiver on loopback, which this service may not reach: nothing leaves the machine.
		{"POST", "/api/v1/admin/webhooks", map[string]any{"url": "https://localhost:1/in", "events": []string{"support.changed"}}, nil, true},
	}
	t.Run("every call answers within CHAT_MONGODB_TIMEOUT", func(t *testing.T) {
		for _, r := range every {
			a, d, err := timed(r)
			if err != nil {
				t.Fatalf("%s %s with MongoDB cut: %v", r.method, r.path, err)
			}
			unavailable(r.method+" "+r.path, a)
			if d > timeout+slack {
				t.Errorf("%s %s with MongoDB cut took %s, want at most CHAT_MONGODB_TIMEOUT %s (+%s)", r.method, r.path, d, timeout, slack)
			}
			t.Logf("%s %s (admin %t) with MongoDB cut: %d in %s", r.method, r.path, r.admin, a.status, d.Round(time.Millisecond))
		}
	})
	t.Run("writes queued on one conversation's lock answer within CHAT_MONGODB_TIMEOUT", func(t *testing.T) {
		var rs []request
		for range 3 {
			rs = append(rs, request{"POST", "/api/v1/chat/" + conv + "/messages", map[string]string{"body": "queued"}, nil, false})
		}
		answers, errs, slowest := burst(rs)
		for _, err := range errs {
			t.Errorf("with MongoDB cut, no answer: %v", err)
		}
		for _, a := range answers {
			unavailable("a queued write", a)
		}
		// Each waits for the one before it, which opened the breaker when it failed: the
		// writes behind it fail at once rather than after a timeout each.
		if slowest > timeout+slack {
			t.Errorf("the slowest of 3 writes into one conversation took %s, want at most CHAT_MONGODB_TIMEOUT %s (+%s)", slowest, timeout, slack)
		}
		t.Logf("3 writes into one conversation with MongoDB cut: the slowest answered in %s", slowest)
	})
	// 60 calls fail; if each left even one goroutine behind, the margin would not cover them.
	// It covers the driver's reconnection attempts and the runtime's own.
	const margin = 15
	answers, errs, slowest := burst(traffic(20))
	for _, err := range errs {
		t.Errorf("with MongoDB cut, no answer: %v", err)
	}
	for _, a := range answers {
		unavailable("a call of 20 at once", a)
	}
	t.Logf("with MongoDB cut: %d calls, 20 at once, answered; the slowest in %s", len(answers), slowest)
	f.client.CloseIdleConnections()
	during := checkGoroutines(t, fmt.Sprintf("with MongoDB cut, after %d failed calls", len(answers)), before, margin)

	proxy.Restore()
	restored := time.Now()
	waitUntil(t, "/readyz to answer 200 once MongoDB is back", func() bool {
		return f.mustCall(t, "GET", "/readyz", "", nil).status == http.StatusOK
	})
	waitUntil(t, "a write to succeed once MongoDB is back", func() bool {
		a := f.mustCall(t, "POST", "/api/v1/chat/"+conv+"/messages", f.customerToken, map[string]string{"body": "after"})
		return a.status == http.StatusCreated
	})
	t.Logf("MongoDB back: ready and writing again after %s", time.Since(restored).Round(time.Millisecond))
	for _, r := range every {
		if r.method != "GET" {
			continue
		}
		if a, _, err := timed(r); err != nil || a.status != http.StatusOK {
			t.Errorf("%s %s after the outage = %d %s (%v), want 200", r.method, r.path, a.status, a.body, err)
		}
	}
	answers, errs, _ = burst(traffic(4))
	for _, err := range errs {
		t.Errorf("after the outage: %v", err)
	}
	for _, a := range answers {
		if a.status/100 != 2 {
			t.Errorf("after the outage: %d %s", a.status, a.body)
		}
	}
	f.client.CloseIdleConnections()
	after := checkGoroutines(t, "after the outage", before, margin)
	t.Logf("goroutines of the service: %d before the outage, %d during, %d after", before, during, after)
}

// serviceGoroutines counts the goroutines of this test binary but those of the embedded
// FerretDB and of the proxy, whose number follows the connections to MongoDB, not the service's
// health; the dump of the counted ones comes with it.
func serviceGoroutines() (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var n int
	var counted strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/FerretDB/") || strings.Contains(g, "testenv.(*Proxy)") {
			continue
		}
		n++
		counted.WriteString(g + "\n\n")
	}
	return n, counted.String()
}

// settledGoroutines returns serviceGoroutines once it stops falling: connections just closed
// take a moment to end their goroutines.
func settledGoroutines() int {
	n, _ := serviceGoroutines()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m, _ := serviceGoroutines()
		if m >= n {
			return n
		}
		n = m
	}
	return n
}

// checkGoroutines waits until at most before+margin goroutines of the service run, failing the
// test with a dump of them when they do not fall that far, and returns their number.
func checkGoroutines(t *testing.T, when string, before, margin int) int {
	t.Helper()
	for deadline := time.Now().Add(faultWaitTimeout); ; time.Sleep(100 * time.Millisecond) {
		n, dump := serviceGoroutines()
		if n <= before+margin {
			return n
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d goroutines, want at most %d (%d before + %d); goroutines:\n%s", when, n, before+margin, before, margin, dump)
			return n
		}
	}
}
