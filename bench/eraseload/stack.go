package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/internal/datarights"
	"github.com/supportchat/supportchat/internal/server"
)

// bench is the service under load with its seeded tenant and tokens.
type bench struct {
	p   params
	url string
	// tokens are the listing customers'; want how many conversations each one's list has.
	tokens []string
	want   []int
	// erased are the customers erased, one a round, and erasedTokens theirs.
	erased       []string
	erasedTokens []string
	admin        string
	close        func()
}

// start starts the service with the limits on and short data rights timings, seeds the tenant:
// the listing customers' conversations and, for each round, a customer with
// -erase-conversations of -erase-messages messages; mints the tokens and checks each list.
func start(ctx context.Context, stdout io.Writer, dir string, p params) (*bench, error) {
	access, err := os.Create(filepath.Join(dir, "access.log"))
	if err != nil {
		return nil, err
	}
	o := stack.Options{MongoURI: p.mongoURI, Limits: true, AccessLog: access, MongoTimeout: 15 * time.Second,
		Tuning: server.Tuning{ErasureSettle: p.settle, DataRightsInterval: p.interval}}
	backend := "FerretDB on SQLite"
	switch {
	case p.mongoURI != "":
		backend = "MongoDB"
	case p.backend == "postgresql":
		o.PostgreSQLURL = p.postgresURL
		backend = "FerretDB on PostgreSQL " + stack.RedactURL(p.postgresURL)
	}
	t0 := time.Now()
	s, err := stack.Start(ctx, o)
	if err != nil {
		access.Close()
		return nil, err
	}
	b := &bench{p: p, url: s.URL, close: func() { s.Close(); access.Close() }}
	if err := b.seed(ctx, s); err != nil {
		b.close()
		return nil, err
	}
	if s.PostgreSQLURL != "" && p.postgresIndexes != "" {
		if err := s.RunPostgreSQL(ctx, p.postgresIndexes); err != nil {
			b.close()
			return nil, err
		}
		backend += ", " + p.postgresIndexes + " run"
	}
	seeded := time.Since(t0)
	if err := b.mint(ctx, s); err != nil {
		b.close()
		return nil, err
	}
	fmt.Fprintf(stdout, "service (limits on) on %s: %s, %d conversations of %d customers (3 messages each), %d customer(s) to erase with %d conversations of %d messages; seeded in %s, every list checked in %s\n",
		backend, s.URL, p.conversations, p.customers, p.rounds, p.eraseConversations, p.eraseMessages, seeded.Round(time.Millisecond), (time.Since(t0) - seeded).Round(time.Millisecond))
	return b, nil
}

// seed stores the listing customers' conversations, then each erased customer's.
func (b *bench) seed(ctx context.Context, s *stack.Stack) error {
	p := b.p
	if err := stack.Seed(ctx, s.MongoURI, s.Database, stack.TenantID, stack.Plan{Conversations: p.conversations, Customers: p.customers}); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	for r := range p.rounds {
		plan := stack.Plan{
			First:         p.conversations + r*p.eraseConversations,
			Conversations: p.eraseConversations,
			Customers:     1,
			FirstCustomer: p.customers + r,
			Messages:      p.eraseMessages,
			Batch:         max(1, 5000/p.eraseMessages), // about 5 000 entries an insert
		}
		if err := stack.Seed(ctx, s.MongoURI, s.Database, stack.TenantID, plan); err != nil {
			return fmt.Errorf("seed the customer to erase: %w", err)
		}
	}
	return nil
}

// mint mints the tokens of the listing customers, of the customers to erase and of an admin,
// and checks each customer's list once (which also fetches the issuer's keys).
func (b *bench) mint(ctx context.Context, s *stack.Stack) error {
	p := b.p
	for i := range p.customers {
		id, name := stack.Customer(i)
		token, err := s.Issuer.Mint(id, name, false, 24*time.Hour)
		if err != nil {
			return err
		}
		b.tokens = append(b.tokens, token)
		b.want = append(b.want, min(p.conversations/p.customers, 20))
	}
	for r := range p.rounds {
		id, name := stack.Customer(p.customers + r)
		token, err := s.Issuer.Mint(id, name, false, 24*time.Hour)
		if err != nil {
			return err
		}
		n, err := b.listed(ctx, token)
		if err != nil {
			return fmt.Errorf("the list of %s, to erase: %w", id, err)
		}
		if want := min(p.eraseConversations, 20); n < want {
			return fmt.Errorf("the list of %s, to erase: %d conversations, want %d", id, n, want)
		}
		b.erased = append(b.erased, id)
		b.erasedTokens = append(b.erasedTokens, token)
	}
	id, name := stack.Admin(0)
	admin, err := s.Issuer.Mint(id, name, true, 24*time.Hour)
	if err != nil {
		return err
	}
	b.admin = admin
	return b.prime(ctx)
}

// prime asks for every listing customer's list once, four at a time, and checks each answer,
// so the load finds the cache as a busy tenant keeps it.
func (b *bench) prime(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, token := range b.tokens {
		g.Go(func() error {
			n, err := b.listed(ctx, token)
			if err != nil {
				return fmt.Errorf("customer %d: %w", i, err)
			}
			if n < b.want[i] {
				return fmt.Errorf("customer %d: %d conversations listed, want %d", i, n, b.want[i])
			}
			return nil
		})
	}
	return g.Wait()
}

// listed returns how many conversations the first page of token's list has.
func (b *bench) listed(ctx context.Context, token string) (int, error) {
	body, err := b.do(ctx, http.MethodGet, listPath, token, http.StatusOK)
	if err != nil {
		return 0, err
	}
	return bytes.Count(body, []byte(`"subject"`)), nil
}

// erasureRun is what the bench saw of one erasure.
type erasureRun struct {
	counts datarights.Counts
	// deleted is the time from the DELETE to the first status whose count of messages was the
	// final one (the first pass's deletes); done to the first status "done", or to -timeout.
	deleted, done time.Duration
	// finished is false when the erasure was not done within -timeout.
	finished bool
}

// erasureStatus is the answer of GET /api/v1/admin/erasures/{id}.
type erasureStatus struct {
	ID     string            `json:"id"`
	Status string            `json:"status"`
	Counts datarights.Counts `json:"counts"`
}

// erase asks for the erasure of customerID and reads its status every -poll until it is done.
// It calls counted once, as soon as the count of messages erased reaches want.
func (b *bench) erase(ctx context.Context, customerID string, want int64, counted func() error) (erasureRun, error) {
	var run erasureRun
	t0 := time.Now()
	body, err := b.do(ctx, http.MethodDelete, "/api/v1/admin/customers/"+customerID, b.admin, http.StatusAccepted)
	if err != nil {
		return run, err
	}
	var st erasureStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return run, fmt.Errorf("DELETE answered %.300s: %w", body, err)
	}
	if st.ID == "" {
		return run, fmt.Errorf("DELETE answered no erasure id: %.300s", body)
	}
	id := st.ID
	deadline := t0.Add(b.p.timeout)
	var last int64 = -1
	for {
		at := time.Since(t0)
		if st.Counts.Messages != last {
			last, run.deleted = st.Counts.Messages, at
			if last >= want && counted != nil {
				if err := counted(); err != nil {
					return run, err
				}
				counted = nil
			}
		}
		if st.Status == string(datarights.Done) {
			run.counts, run.done, run.finished = st.Counts, at, true
			return run, nil
		}
		if time.Now().After(deadline) {
			run.counts, run.done = st.Counts, at
			return run, nil // not done: the report says so
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(b.p.poll):
		}
		body, err := b.do(ctx, http.MethodGet, "/api/v1/admin/erasures/"+id, b.admin, http.StatusOK)
		if err != nil {
			return run, err
		}
		st = erasureStatus{}
		if err := json.Unmarshal(body, &st); err != nil {
			return run, fmt.Errorf("GET erasure answered %.300s: %w", body, err)
		}
	}
}

// do sends a request with token and returns the body of an answer with status want.
func (b *bench) do(ctx context.Context, method, path, token string, want int) ([]byte, error) {
	return stack.Request(ctx, method, b.url+path, token, want)
}
