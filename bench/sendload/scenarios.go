package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// scenario is one measured workload.
type scenario struct {
	name, title string
	// replicas is how many chatd replicas it runs against.
	replicas int
	run      func(ctx context.Context, e *env) ([]*series, error)
}

// scenarioNames are what -scenarios accepts, in the order they run.
func scenarioNames() []string { return []string{"a", "a-nokey", "b", "c", "d"} }

// scenarioByName returns the scenario of -scenarios name.
func scenarioByName(name string) scenario {
	switch name {
	case "a":
		return scenario{name, "1 writer", 1, func(ctx context.Context, e *env) ([]*series, error) { return oneWriter(ctx, e, true) }}
	case "a-nokey":
		return scenario{name, "1 writer, no Idempotency-Key", 1, func(ctx context.Context, e *env) ([]*series, error) { return oneWriter(ctx, e, false) }}
	case "b":
		return scenario{name, "8 writers, 1 conversation, 1 replica", 1, eightWriters}
	case "c":
		return scenario{name, "8 writers, 1 conversation, 3 replicas", 3, eightWriters}
	default:
		return scenario{"d", "uncached list and GET", 1, uncachedReads}
	}
}

// oneWriter is scenarios a and a-nokey: a customer starts a conversation and posts -warmup
// unmeasured messages, then -posts measured ones, one after another, each with a fresh
// Idempotency-Key when withKey.
func oneWriter(ctx context.Context, e *env, withKey bool) ([]*series, error) {
	token, err := e.tenant.customer(0)
	if err != nil {
		return nil, err
	}
	c := e.client(0, token)
	defer c.close()
	id, err := c.start(ctx, "Where is my order?", withKey)
	if err != nil {
		return nil, err
	}
	warm := newSeries("warm-up")
	for i := range e.p.warmup {
		if err := c.post(ctx, warm, id, fmt.Sprintf("warm-up %d", i), withKey); err != nil {
			return nil, err
		}
	}
	s := newSeries("send")
	err = e.measure(ctx, s, func() error {
		for i := range e.p.posts {
			if err := c.post(ctx, s, id, fmt.Sprintf("message %d", i), withKey); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []*series{s}, nil
}

// writers is how many write into one conversation at once in scenarios b and c; the odd ones
// are admins, writers/2 of them.
const writers = 8

// eightWriters is scenarios b and c: writers post -posts8 messages each into one conversation
// at once, the even ones as clients of its customer, the odd ones as different admins; writer
// i talks to replica i modulo their number. It then checks that the conversation holds every
// message once.
func eightWriters(ctx context.Context, e *env) ([]*series, error) {
	clients, err := e.writerClients()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	id, err := clients[0].start(ctx, "Where is my order?", true)
	if err != nil {
		return nil, err
	}
	for _, c := range clients { // connections and the issuer's keys, before the clock runs
		if _, err := c.expect(ctx, http.MethodGet, "/api/v1/chat/"+id, nil, http.StatusOK); err != nil {
			return nil, err
		}
	}
	s := newSeries("send")
	err = e.measure(ctx, s, func() error { return postAtOnce(ctx, s, clients, id, e.p.posts8) })
	if err != nil {
		return nil, err
	}
	note, err := checkMessages(ctx, clients[0], id, e.p.posts8)
	if err != nil {
		return nil, err
	}
	s.notes = append(s.notes, note)
	return []*series{s}, nil
}

// writerClients returns the clients of the writers of eightWriters.
func (e *env) writerClients() ([]*client, error) {
	customer, err := e.tenant.customer(0)
	if err != nil {
		return nil, err
	}
	clients := make([]*client, writers)
	for i := range clients {
		token := customer
		if i%2 == 1 {
			if token, err = e.tenant.admin(i / 2); err != nil {
				return nil, err
			}
		}
		clients[i] = e.client(i, token)
	}
	return clients, nil
}

// postAtOnce has each client post n messages into conversation id, all clients at once.
func postAtOnce(ctx context.Context, s *series, clients []*client, id string, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for w, c := range clients {
		wg.Go(func() {
			for i := range n {
				if errs[w] = c.post(ctx, s, id, writerMessage(w, i), true); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// writerMessage is the text of message i of writer w.
func writerMessage(w, i int) string { return fmt.Sprintf("writer %d message %d", w, i) }

// checkMessages reads conversation id's history and says how many of the writers' messages
// it holds, how many are missing or stored twice, and how many others (the start's message,
// notices) there are.
func checkMessages(ctx context.Context, c *client, id string, perWriter int) (string, error) {
	bodies, err := c.history(ctx, id)
	if err != nil {
		return "", err
	}
	seen := map[string]int{}
	for _, b := range bodies {
		seen[b]++
	}
	var found, missing, twice int
	for w := range writers {
		for i := range perWriter {
			msg := writerMessage(w, i)
			n := seen[msg]
			switch {
			case n == 0:
				missing++
			case n > 1:
				twice++
			}
			if n > 0 {
				found++
			}
			delete(seen, msg)
		}
	}
	others := 0
	for _, n := range seen {
		others += n
	}
	return fmt.Sprintf("stored %d of %d posted messages, %d missing, %d stored more than once; %d other messages", found, writers*perWriter, missing, twice, others), nil
}

// readConversations is how many conversations the customer of scenario d has.
const readConversations = 5

// uncachedReads is scenario d: a customer with readConversations conversations lists them -reads
// times, each with a different updated_since before all of them (so the list cache never has
// the page), then reads a conversation -reads times (GET /api/v1/chat/{id}, in turn).
func uncachedReads(ctx context.Context, e *env) ([]*series, error) {
	token, err := e.tenant.customer(0)
	if err != nil {
		return nil, err
	}
	c := e.client(0, token)
	defer c.close()
	var ids []string
	for i := range readConversations {
		id, err := c.start(ctx, fmt.Sprintf("Question %d", i), true)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := checkList(ctx, c, listPath(0)); err != nil {
		return nil, err
	}
	lists, gets := newSeries("list"), newSeries("GET")
	err = e.measure(ctx, lists, func() error {
		return repeat(ctx, lists, c, e.p.reads, func(i int) string { return listPath(i + 1) })
	})
	if err != nil {
		return nil, err
	}
	err = e.measure(ctx, gets, func() error {
		return repeat(ctx, gets, c, e.p.reads, func(i int) string { return "/api/v1/chat/" + ids[i%len(ids)] })
	})
	if err != nil {
		return nil, err
	}
	return []*series{lists, gets}, nil
}

// listPath returns the list of conversations updated since 2000-01-01 plus i milliseconds: a
// distinct time for each i, before every conversation.
func listPath(i int) string {
	since := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	return "/api/v1/chat/list?updated_since=" + url.QueryEscape(since.Format("2006-01-02T15:04:05.000Z07:00"))
}

// checkList fails unless the list at path holds every conversation of scenario d.
func checkList(ctx context.Context, c *client, path string) error {
	out, err := c.expect(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return err
	}
	var list struct {
		Conversations []json.RawMessage `json:"conversations"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if len(list.Conversations) != readConversations {
		return fmt.Errorf("list: %d conversations, want %d: %.300s", len(list.Conversations), readConversations, out)
	}
	return nil
}

// repeat sends n GETs of path(i), one after another, recording them into s.
func repeat(ctx context.Context, s *series, c *client, n int, path func(i int) string) error {
	for i := range n {
		if _, _, err := c.timed(ctx, s, http.MethodGet, path(i), nil, ""); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// scenarioTitle returns "a. 1 writer" for the report.
func scenarioTitle(name string) string {
	return strings.Join([]string{name, scenarioByName(name).title}, ". ")
}
