package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/testenv"
)

// processEnv returns the environment of a chatd child process on the MongoDB at uri, database,
// the Redis at redisURL and the tenant files of dir. The per-caller limits are off: the tests
// load the service as a few callers.
func processEnv(uri, database, redisURL, dir string) map[string]string {
	return map[string]string{
		"CHAT_ADDR": "127.0.0.1:0", "CHAT_METRICS_ADDR": "127.0.0.1:0", "CHAT_MONGODB_URI": uri, "CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL": redisURL, "CHAT_TENANTS_DIR": dir, "OTEL_SDK_DISABLED": "true",
		"CHAT_LIMITS_REQUESTS_PER_MINUTE": "0", "CHAT_LIMITS_WRITES_PER_MINUTE": "0", "CHAT_LIMITS_EVENT_STREAMS": "0",
	}
}

// client calls the API of one tenant at a base URL that may change (a restarted replica).
type client struct {
	http   *http.Client
	tenant string
}

// post sends a JSON body to base+path as the caller of token with the headers (name, value
// pairs) and returns the status and body; wrote, when not nil, is called once the request is
// written.
func (c client) post(ctx context.Context, base, path, token string, body any, wrote func(), headers ...string) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	if wrote != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote() }})
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Tenant-ID", c.tenant)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// idOf returns the "id" field of a JSON answer.
func idOf(body []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &v)
	return v.ID
}

// storedMessage is a message entry of the log, as stored in MongoDB.
type storedMessage struct {
	ConversationID string `bson:"conversation_id"`
	Message        struct {
		ID     string `bson:"id"`
		Body   string `bson:"body"`
		Sender struct {
			Role string `bson:"role"`
		} `bson:"sender"`
	} `bson:"message"`
}

// storedMessages reads every message entry of tenantID straight from MongoDB (the log of
// docs/CONSISTENCY.md).
func storedMessages(t *testing.T, uri, database, tenantID string) []storedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mc.Disconnect(ctx) }()
	cur, err := mc.Database(database).Collection("entries").Find(ctx, bson.M{"tenant_id": tenantID, "kind": "message"})
	if err != nil {
		t.Fatalf("reading the log: %v", err)
	}
	var msgs []storedMessage
	if err := cur.All(ctx, &msgs); err != nil {
		t.Fatalf("reading the log: %v", err)
	}
	return msgs
}

// openStream opens the event stream of the caller of token at base and returns a channel
// closed when the stream ends, and whether it ended without a read error.
func openStream(t *testing.T, base, tenantID, token string) (ended <-chan struct{}, clean func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/chat/events", nil)
	req.Header.Set("X-Tenant-ID", tenantID)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /chat/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /chat/events = %d", resp.StatusCode)
	}
	done := make(chan struct{})
	var readErr error
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
		readErr = sc.Err()
	}()
	return done, func() bool { <-done; return readErr == nil }
}

// attempt is one POST of the shutdown test.
type attempt struct {
	key           string
	wrote, answer time.Time // when the request was written, and answered or failed
	status        int
	id            string
	err           error
}

// TestSIGTERMUnderLoad sends SIGTERM to the real chatd while writers post messages and event
// streams are open, with MongoDB slowed down so that writes are in flight. chatd stops
// accepting, ends the streams, finishes every request it had read (each answers 201), exits 0
// well within CHAT_SHUTDOWN_TIMEOUT, and every acknowledged message is in MongoDB afterwards.
// TestRedisLinesAreLogLines runs chatd as main does, which sets go-redis's logger for the
// process: with Redis down, the Redis client's complaints are JSON lines of the service's log
// on stdout, not plain text on stderr.
func TestRedisLinesAreLogLines(t *testing.T) {
	const tenantID = "redis-shop"
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tenantID+".yaml"), []byte(tenantYAML(tenantID, iss.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startChatd(t, processEnv(uri, database, rds.URL(), dir))
	base := "http://" + p.addr(t)
	rds.Stop(t)
	token := iss.Token(t, "cust-1", false)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(p.stdout.String(), `"msg":"redis client"`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no redis client line in the log 60s after Redis stopped\n%s", p.logs())
		}
		// Requests make the client dial.
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/chat/list", nil)
		req.Header.Set("X-Tenant-ID", tenantID)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list with Redis down = %d", resp.StatusCode)
		}
	}
	if strings.Contains(p.stderr.String(), "redis:") {
		t.Errorf("the Redis client wrote plain text to stderr:\n%s", p.stderr)
	}
}

func TestSIGTERMUnderLoad(t *testing.T) {
	const shutdownTimeout = 60 * time.Second
	// inFlight is how long before SIGTERM a request must have been written to count as read
	// by chatd: far more than reading a request takes, even on a loaded machine.
	const inFlight = 2 * time.Second
	const tenantID = "term-shop"

	uri, database := testenv.MustMongo(t)
	viaProxy, proxy := testenv.ProxyMongo(t, uri)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tenantID+".yaml"), []byte(tenantYAML(tenantID, iss.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	env := processEnv(viaProxy, database, rds.URL(), dir)
	env["CHAT_SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	env["CHAT_MONGODB_TIMEOUT"] = "30s"
	p := startChatd(t, env)
	base := "http://" + p.addr(t)
	c := client{http: &http.Client{Timeout: 2 * shutdownTimeout}, tenant: tenantID}

	// Four customers with a conversation each, two writers per conversation.
	type writer struct{ token, conv string }
	var ws []writer
	for i := range 4 {
		token := iss.Token(t, fmt.Sprintf("cust-%d", i), false)
		status, body, err := c.post(t.Context(), base, "/api/v1/chat/start", token, map[string]string{"message": "hello"}, nil)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("POST /chat/start = %d %s %v", status, body, err)
		}
		ws = append(ws, writer{token, idOf(body)}, writer{token, idOf(body)})
	}
	var streams []func() bool
	var ended []<-chan struct{}
	for _, token := range []string{iss.Token(t, "admin-1", true), ws[0].token, ws[2].token} {
		e, clean := openStream(t, base, tenantID, token)
		ended, streams = append(ended, e), append(streams, clean)
	}

	// Every MongoDB command now waits 200 ms on its way, so a write takes a second or more.
	proxy.SetDelay(200 * time.Millisecond)
	var mu sync.Mutex
	var attempts []*attempt
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			for k := 0; ; k++ {
				a := &attempt{key: fmt.Sprintf("writer-%d-%d", i, k)}
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				status, body, err := c.post(t.Context(), base, "/api/v1/chat/"+w.conv+"/messages", w.token,
					map[string]string{"body": a.key}, func() { mu.Lock(); a.wrote = time.Now(); mu.Unlock() }, "Idempotency-Key", a.key)
				mu.Lock()
				a.answer, a.status, a.err = time.Now(), status, err
				if err == nil && status == http.StatusCreated {
					a.id = idOf(body)
				}
				mu.Unlock()
				if err != nil || status != http.StatusCreated {
					return // chatd is gone (or failed, which the checks below report)
				}
			}
		})
	}

	// SIGTERM once some writes are acknowledged and one has been in flight for a while.
	var term time.Time
	for deadline := time.Now().Add(2 * time.Minute); term.IsZero(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no write was acknowledged and another in flight within 2 minutes")
		}
		mu.Lock()
		acked, old := 0, false
		for _, a := range attempts {
			if a.id != "" {
				acked++
			}
			old = old || (a.answer.IsZero() && !a.wrote.IsZero() && time.Since(a.wrote) > inFlight)
		}
		if acked >= 8 && old {
			term = time.Now()
			p.signal(t, syscall.SIGTERM)
		}
		mu.Unlock()
	}
	code, err := p.wait(shutdownTimeout)
	if err != nil {
		t.Fatalf("%v after SIGTERM\n%s", err, p.logs())
	}
	stopped := time.Now()
	wg.Wait()
	if code != 0 {
		t.Errorf("chatd exited %d after SIGTERM, want 0\n%s", code, p.logs())
	}
	if d := stopped.Sub(term); d > shutdownTimeout/2 {
		t.Errorf("chatd took %s to stop, want well within CHAT_SHUTDOWN_TIMEOUT %s (open streams must not hold it)", d, shutdownTimeout)
	}
	if !strings.Contains(p.stdout.String(), `"msg":"stopped"`) {
		t.Errorf("chatd did not log a clean stop\n%s", p.logs())
	}
	for i, e := range ended {
		select {
		case <-e:
			if !streams[i]() {
				t.Errorf("event stream %d ended with a read error, want a clean end", i)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("event stream %d still open after chatd exited", i)
		}
	}

	var acked []string
	finishedAfterTerm := 0
	for _, a := range attempts {
		switch {
		case a.id != "":
			acked = append(acked, a.id)
			if a.answer.After(term) {
				finishedAfterTerm++
			}
		case a.err == nil:
			t.Errorf("%s answered %d, want 201 (or no answer once chatd stopped)", a.key, a.status)
		case !a.wrote.IsZero() && a.wrote.Before(term.Add(-inFlight)):
			t.Errorf("%s was in flight at SIGTERM (written %s before it) but got no answer: %v", a.key, term.Sub(a.wrote), a.err)
		}
	}
	if finishedAfterTerm == 0 {
		t.Error("no write in flight at SIGTERM was answered: chatd did not finish in-flight requests")
	}
	t.Logf("%d writes acknowledged, %d of them answered after SIGTERM; chatd stopped %s after it",
		len(acked), finishedAfterTerm, stopped.Sub(term).Round(time.Millisecond))

	// Nothing acknowledged is lost: each acknowledged message is in the log once.
	stored := map[string]int{}
	for _, m := range storedMessages(t, uri, database, tenantID) {
		stored[m.Message.ID]++
	}
	for _, id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged message %s is stored %d times, want once", id, stored[id])
		}
	}
}
