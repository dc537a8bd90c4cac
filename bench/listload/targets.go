package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/bench/internal/wrk"
)

// listPath is the route every target answers.
const listPath = "/api/v1/chat/list"

// target is a server wrk loads: one of the services or the ceiling.
type target struct {
	name   string
	url    string // base URL
	tokens []string
	want   []int // conversations each token's list has, at least
	// sample is a customer's list as the service answered it.
	sample []byte
	// profile, when set, is where the CPU profile of this target's measured runs goes.
	profile string
	runs    []wrk.Result
	close   func()
}

// startService starts the service (limits on or off) on a stack of its own, seeds the tenant,
// mints a token for each customer and admin and checks each one's list once.
func startService(ctx context.Context, stdout io.Writer, dir string, limits bool, p params) (*target, error) {
	name := "service, limits off"
	if limits {
		name = "service, limits on"
	}
	access, err := os.Create(filepath.Join(dir, fmt.Sprintf("access-limits-%t.log", limits)))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	s, err := stack.Start(ctx, stack.Options{MongoURI: p.mongoURI, Limits: limits, AccessLog: access, MongoTimeout: 15 * time.Second})
	if err != nil {
		access.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &target{name: name, url: s.URL, close: func() { s.Close(); access.Close() }}
	plan := stack.Plan{Conversations: p.conversations, Customers: p.customers, Admins: max(p.admins, 1)}
	if err := stack.Seed(ctx, s.MongoURI, s.Database, stack.TenantID, plan); err != nil {
		t.close()
		return nil, fmt.Errorf("%s: seed: %w", name, err)
	}
	if err := t.mint(ctx, s, p); err != nil {
		t.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(stdout, "%s: %s, %d conversations of %d customers (3 messages each) seeded in bulk, %d tokens, ready in %s\n",
		name, s.URL, p.conversations, p.customers, len(t.tokens), time.Since(t0).Round(time.Millisecond))
	return t, nil
}

// mint mints a token for every customer and admin, and checks each one's list once (which also
// fetches the issuer's keys).
func (t *target) mint(ctx context.Context, s *stack.Stack, p params) error {
	perCustomer := p.conversations / p.customers
	for i := range p.customers {
		id, name := stack.Customer(i)
		if err := t.add(s, id, name, false, min(perCustomer, 20)); err != nil {
			return err
		}
	}
	for i := range p.admins {
		id, name := stack.Admin(i)
		if err := t.add(s, id, name, true, min(p.conversations, 20)); err != nil {
			return err
		}
	}
	return t.prime(ctx)
}

// add mints a token of a caller whose list has want conversations.
func (t *target) add(s *stack.Stack, id, name string, admin bool, want int) error {
	token, err := s.Issuer.Mint(id, name, admin, 24*time.Hour)
	if err != nil {
		return err
	}
	t.tokens = append(t.tokens, token)
	t.want = append(t.want, want)
	return nil
}

// prime asks for every caller's list once, four at a time, and checks each answer. Pages the
// cache dropped since (a page lives 60s in Redis) are built again, so the measured load finds
// the cache as a busy tenant keeps it.
func (t *target) prime(ctx context.Context) error {
	bodies := make([][]byte, len(t.tokens))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, token := range t.tokens {
		g.Go(func() error {
			body, err := stack.Request(ctx, http.MethodGet, t.url+listPath, token, http.StatusOK)
			if err != nil {
				return fmt.Errorf("caller %d: %w", i, err)
			}
			if got := bytes.Count(body, []byte(`"subject"`)); t.want != nil && got < t.want[i] {
				return fmt.Errorf("caller %d: %d conversations listed, want %d: %.300s", i, got, t.want[i], body)
			}
			bodies[i] = body
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if t.sample == nil {
		t.sample = bodies[0]
	}
	return nil
}

// startCeiling serves body as the answer to every GET of listPath from a bare Gin engine
// (gin.New, no middleware, no authentication, no storage) on 127.0.0.1, with the service's
// server timeouts. wrk sends it the same requests, tokens included, as the services.
func startCeiling(body []byte, tokens []string) (*target, error) {
	r := gin.New()
	r.GET(listPath, func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", body) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &target{name: "bare Gin, same bytes", url: "http://" + ln.Addr().String(), tokens: tokens, sample: body, close: func() { _ = srv.Close() }}, nil
}
