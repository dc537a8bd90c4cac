package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/supportchat/supportchat/bench/internal/stack"
)

// A careful client's retries of a post: at most maxTries tries, retryPause apart.
const (
	maxTries   = 5
	retryPause = 100 * time.Millisecond
)

// requestTimeout bounds one request: far above any latency expected, so it only ends hangs.
const requestTimeout = time.Minute

// client is one user of the API talking to one replica over connections of its own, as a
// browser tab or an agent's inbox would.
type client struct {
	http  *http.Client
	base  string
	token string
}

// newClient returns a client of the replica at base with the bearer token.
func newClient(base, token string) *client {
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	return &client{http: &http.Client{Transport: transport, Timeout: requestTimeout}, base: base, token: token}
}

// close closes the client's idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// do sends one request with a JSON body (nil for none) and, when key is set, that
// Idempotency-Key, and returns the answer's status and body.
func (c *client) do(ctx context.Context, method, path string, body any, key string) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Tenant-ID", stack.TenantID)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// timed sends a request as do does and records its latency (until the body is read) and its
// answer into s.
func (c *client) timed(ctx context.Context, s *series, method, path string, body any, key string) (int, []byte, error) {
	t0 := time.Now()
	status, out, err := c.do(ctx, method, path, body, key)
	if err != nil {
		s.noAnswer()
		return 0, nil, err
	}
	s.answer(time.Since(t0), status)
	return status, out, nil
}

// post sends message text into conversation id and records every attempt into s. With
// withKey it sends a fresh Idempotency-Key and, like a careful client, retries a 5xx answer or
// a transport failure with the same key (maxTries tries, retryPause apart); without one it
// sends once, as a retry could post twice. It returns an error only when ctx ends.
func (c *client) post(ctx context.Context, s *series, id, text string, withKey bool) error {
	key, tries := "", 1
	if withKey {
		key, tries = newKey(), maxTries
	}
	body := map[string]string{"body": text}
	for try := 1; ; try++ {
		status, _, err := c.timed(ctx, s, http.MethodPost, "/api/v1/chat/"+id+"/messages", body, key)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && status < 500 {
			if status < 200 || status > 299 {
				s.giveUp()
			}
			return nil
		}
		if try == tries {
			s.giveUp()
			return nil
		}
		s.retry()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryPause):
		}
	}
}

// start starts a conversation with message text (with an Idempotency-Key when withKey) and
// returns its id.
func (c *client) start(ctx context.Context, text string, withKey bool) (string, error) {
	key := ""
	if withKey {
		key = newKey()
	}
	status, out, err := c.do(ctx, http.MethodPost, "/api/v1/chat/start", map[string]string{"message": text}, key)
	if err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	if status != http.StatusCreated {
		return "", fmt.Errorf("start: %d %.300s", status, out)
	}
	var conv struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &conv); err != nil || conv.ID == "" {
		return "", fmt.Errorf("start: no id in %.300s", out)
	}
	return conv.ID, nil
}

// expect sends an unmeasured request and fails unless it answers want.
func (c *client) expect(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	status, out, err := c.do(ctx, method, path, body, "")
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %.300s", method, path, status, want, out)
	}
	return out, nil
}

// history returns the bodies of every message of conversation id, following next_cursor.
func (c *client) history(ctx context.Context, id string) ([]string, error) {
	var bodies []string
	path := "/api/v1/chat/" + id + "/messages?limit=100"
	for {
		out, err := c.expect(ctx, http.MethodGet, path, nil, http.StatusOK)
		if err != nil {
			return nil, err
		}
		var page struct {
			Messages []struct {
				Body string `json:"body"`
			} `json:"messages"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(out, &page); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		for _, m := range page.Messages {
			bodies = append(bodies, m.Body)
		}
		if page.NextCursor == nil || *page.NextCursor == "" {
			return bodies, nil
		}
		path = "/api/v1/chat/" + id + "/messages?limit=100&before=" + url.QueryEscape(*page.NextCursor)
	}
}

// keepOnline sets the admin's presence online now and again every renewal until the returned
// function is called (and waits for the loop to end), so customers' messages get no away
// notices.
func (c *client) keepOnline(ctx context.Context, renewal time.Duration, log io.Writer) (func(), error) {
	online := map[string]string{"status": "online"}
	if _, err := c.expect(ctx, http.MethodPut, "/api/v1/chat/presence", online, http.StatusOK); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(renewal)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := c.expect(ctx, http.MethodPut, "/api/v1/chat/presence", online, http.StatusOK); err != nil && !errors.Is(err, context.Canceled) {
					fmt.Fprintf(log, "renewing presence: %v\n", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
