package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/testenv"
)

// soakEnv turns the soak on; soakDurationEnv sets how long its writers write (default
// defaultSoakDuration).
const (
	soakEnv             = "CHAT_SOAK"
	soakDurationEnv     = "CHAT_SOAK_DURATION"
	defaultSoakDuration = 2 * time.Minute
)

// replica is one chatd of the soak, restarted at times; base is its current URL.
type replica struct {
	t   *testing.T
	env map[string]string

	mu   sync.Mutex
	proc *chatd
	base string
}

// start runs the replica's chatd and waits until it listens.
func (r *replica) start() {
	r.t.Helper()
	p := startChatd(r.t, r.env)
	base := "http://" + p.addr(r.t)
	r.mu.Lock()
	r.proc, r.base = p, base
	r.mu.Unlock()
}

// url returns the replica's base URL.
func (r *replica) url() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.base
}

// stop ends the replica's chatd with sig and waits for it; SIGTERM must end it cleanly.
func (r *replica) stop(sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	p.signal(r.t, sig)
	code, err := p.wait(time.Minute)
	if err != nil {
		r.t.Fatalf("%v after %v\n%s", err, sig, p.logs())
	}
	if sig == syscall.SIGTERM && code != 0 {
		r.t.Errorf("chatd exited %d after SIGTERM, want 0\n%s", code, p.logs())
	}
}

// soakResult is what one writer had acknowledged, by Idempotency-Key.
type soakResult struct {
	mu      sync.Mutex
	acked   map[string]string // key -> message id
	body    map[string]string // key -> body
	retries int
	failed  []string
}

// TestSoak writes for minutes through two replicas of chatd on one database and one Redis:
// 16 writers (a customer and an admin per conversation, twice over) post messages, each
// retrying a message until it is acknowledged, with the same Idempotency-Key, on either
// replica. A third of the way in one replica is killed (SIGKILL, in the middle of writes) and
// started again; two thirds in the other is stopped with SIGTERM and started again. Afterwards
// MongoDB's log reconciles exactly with the acknowledgements: every acknowledged message is
// stored once, under the id its acknowledgement gave, and nothing else was stored.
//
// It is off by default; `make soak` runs it (CHAT_SOAK=1, CHAT_SOAK_DURATION=2m by default).
func TestSoak(t *testing.T) {
	if os.Getenv(soakEnv) == "" {
		t.Skipf("the soak runs with %s=1 (make soak)", soakEnv)
	}
	duration := defaultSoakDuration
	if v := os.Getenv(soakDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", soakDurationEnv, v, err)
		}
		duration = d
	}
	const tenantID = "soak-shop"
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	iss := testenv.NewIssuer(t, "support-chat", "roles", "support_admin")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tenantID+".yaml"), []byte(tenantYAML(tenantID, iss.URL())), 0o644); err != nil {
		t.Fatal(err)
	}
	env := processEnv(uri, database, rds.URL(), dir)
	replicas := []*replica{{t: t, env: env}, {t: t, env: env}}
	for _, r := range replicas {
		r.start()
	}
	c := client{http: &http.Client{Timeout: time.Minute}, tenant: tenantID}

	// Four conversations; per conversation its customer and an admin write, each twice at once.
	type writer struct{ name, token, conv string }
	var ws []writer
	for i := range 4 {
		customer := iss.Token(t, fmt.Sprintf("cust-%d", i), false)
		status, body, err := c.post(t.Context(), replicas[0].url(), "/api/v1/chat/start", customer, map[string]string{"message": "soak"}, nil)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("POST /chat/start = %d %s %v", status, body, err)
		}
		conv := idOf(body)
		admin := iss.Token(t, fmt.Sprintf("admin-%d", i), true)
		for j := range 2 {
			ws = append(ws,
				writer{fmt.Sprintf("cust-%d.%d", i, j), customer, conv},
				writer{fmt.Sprintf("admin-%d.%d", i, j), admin, conv})
		}
	}

	res := &soakResult{acked: map[string]string{}, body: map[string]string{}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				key := fmt.Sprintf("%s-%d", w.name, k)
				body := "soak " + key
				// The message a writer is on when the soak ends is still sent until acknowledged.
				if !sendUntilAcked(context.WithoutCancel(ctx), c, replicas, w.token, w.conv, key, body, k, res) {
					return
				}
			}
		})
	}

	began := time.Now()
	time.Sleep(duration / 3)
	t.Logf("%s: killing replica 1 (SIGKILL) in the middle of writes", time.Since(began).Round(time.Second))
	replicas[1].stop(syscall.SIGKILL)
	time.Sleep(2 * time.Second) // writers retry on replica 0 meanwhile
	replicas[1].start()
	time.Sleep(duration/3 - 2*time.Second)
	t.Logf("%s: stopping replica 0 (SIGTERM) and starting it again", time.Since(began).Round(time.Second))
	replicas[0].stop(syscall.SIGTERM)
	replicas[0].start()
	time.Sleep(duration - time.Since(began))
	stop() // each writer finishes the message it is on
	wg.Wait()

	// Lists repair views whose writers died; then both replicas stop cleanly.
	for _, r := range replicas {
		status, _, err := getStatus(c, r.url()+"/api/v1/chat/list", iss.Token(t, "admin-0", true))
		if err != nil || status != http.StatusOK {
			t.Errorf("GET /chat/list after the soak = %d %v", status, err)
		}
	}
	for _, r := range replicas {
		r.stop(syscall.SIGTERM)
	}

	res.mu.Lock()
	defer res.mu.Unlock()
	for _, f := range res.failed {
		t.Errorf("write never acknowledged: %s", f)
	}
	ids := map[string]string{} // message id -> key
	for key, id := range res.acked {
		ids[id] = key
	}
	stored := map[string][]storedMessage{} // body -> entries
	for _, m := range storedMessages(t, uri, database, tenantID) {
		if strings.HasPrefix(m.Message.Body, "soak ") {
			stored[m.Message.Body] = append(stored[m.Message.Body], m)
		}
	}
	for key, id := range res.acked {
		entries := stored[res.body[key]]
		switch {
		case len(entries) == 0:
			t.Errorf("acknowledged %s (message %s) is not stored: lost", key, id)
		case len(entries) > 1:
			t.Errorf("acknowledged %s is stored %d times: duplicated", key, len(entries))
		case entries[0].Message.ID != id:
			t.Errorf("acknowledged %s as message %s, stored as %s", key, id, entries[0].Message.ID)
		}
	}
	unacked := 0
	for body, entries := range stored {
		if _, ok := ids[entries[0].Message.ID]; !ok {
			unacked++
			t.Errorf("stored %q (message %s) was never acknowledged", body, entries[0].Message.ID)
		}
	}
	if !t.Failed() {
		t.Logf("soak: %d acknowledged writes reconciled with MongoDB (%d retries, 2 replica restarts): none lost, none duplicated, nothing unacknowledged stored", len(res.acked), res.retries)
		fmt.Printf("soak: %d acknowledged writes reconciled, %d retries, over %s\n", len(res.acked), res.retries, duration)
	}
}

// sendUntilAcked posts body into conv with key until a replica acknowledges it, switching
// replicas and backing off after each failure, and records the acknowledgement. It returns
// false when the message was refused for good or not acknowledged within two minutes.
func sendUntilAcked(ctx context.Context, c client, replicas []*replica, token, conv, key, body string, k int, res *soakResult) bool {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		base := replicas[(k+attempt)%len(replicas)].url()
		status, raw, err := c.post(ctx, base, "/api/v1/chat/"+conv+"/messages", token, map[string]string{"body": body}, nil, "Idempotency-Key", key)
		if err == nil && status == http.StatusCreated {
			res.mu.Lock()
			defer res.mu.Unlock()
			res.acked[key], res.body[key] = idOf(raw), body
			return true
		}
		if err == nil && status != http.StatusConflict && status < 500 {
			res.mu.Lock()
			defer res.mu.Unlock()
			res.failed = append(res.failed, fmt.Sprintf("%s: %d %s", key, status, raw))
			return false
		}
		if time.Now().After(deadline) {
			res.mu.Lock()
			defer res.mu.Unlock()
			res.failed = append(res.failed, fmt.Sprintf("%s: still %d %v after 2 minutes", key, status, err))
			return false
		}
		res.mu.Lock()
		res.retries++
		res.mu.Unlock()
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
	}
}

// getStatus sends a GET as the caller of token and returns the status.
func getStatus(c client, url, token string) (int, []byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Tenant-ID", c.tenant)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil, nil
}
