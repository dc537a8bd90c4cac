package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/supportchat/supportchat/internal/server"
)

// tokenTTL is how long the printed tokens stay valid.
const tokenTTL = 24 * time.Hour

// demoCustomer and demoAdmin are the people of the printed tokens and the demo data.
var (
	demoCustomer = person{ID: "cust-ada", Name: "Ada"}
	demoAdmin    = person{ID: "admin-grace", Name: "Grace"}
)

type person struct{ ID, Name string }

// demoChat is one seeded conversation: who starts it, and the replies that follow.
type demoChat struct {
	customer person
	start    map[string]any
	replies  []string // alternating admin, customer
}

// demoChats are seeded into every tenant that has no conversations yet.
func demoChats() []demoChat {
	return []demoChat{
		{customer: demoCustomer, start: map[string]any{
			"subject": "Where is my order?",
			"message": "Hi! I ordered a rain jacket on Monday and the tracking page shows nothing yet.",
			"context": map[string]string{"order_id": "ord-10042", "page_url": "https://shop.example/account/orders/ord-10042"},
		}, replies: []string{"Hi Ada, it left our warehouse this morning and ships today. You will get the tracking link within the hour.", "Great, thank you!"}},
		{customer: demoCustomer, start: map[string]any{
			"message": "Do the hiking boots run small? I usually wear 42.",
			"context": map[string]string{"product_id": "boot-trail-x"},
		}},
		{customer: person{ID: "cust-linus", Name: "Linus"}, start: map[string]any{
			"subject": "Return a gift",
			"message": "Can I return a gift without the receipt?",
		}, replies: []string{"Yes: with the order number we can refund it as store credit."}},
	}
}

// welcome seeds demo data into empty tenants and prints tokens and a curl per tenant.
func (s *stack) welcome(ctx context.Context, tenantsDir string, addrs server.Addrs) error {
	base := "http://localhost:" + strconv.Itoa(addrs.API.(*net.TCPAddr).Port)
	s.mu.Lock()
	ids := make([]string, 0, len(s.issuers))
	for id := range s.issuers {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	if len(ids) == 0 {
		return fmt.Errorf("no valid tenant files in %s", tenantsDir)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nSupport Chat is running on %s with %d demo tenants.\n", base, len(ids))
	for _, id := range ids {
		iss := s.issuer(id)
		customer, err := iss.Mint(demoCustomer.ID, demoCustomer.Name, false, tokenTTL)
		if err != nil {
			return err
		}
		admin, err := iss.Mint(demoAdmin.ID, demoAdmin.Name, true, tokenTTL)
		if err != nil {
			return err
		}
		c := client{base: base, tenant: id}
		if err := s.seed(ctx, c, admin); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		fmt.Fprintf(&out, "\n== %s (issuer %s)\ncustomer %s (%s):\n  %s\nadmin %s (%s):\n  %s\nlist the customer's conversations:\n  curl -s -H 'X-Tenant-ID: %s' -H 'Authorization: Bearer %s' %s/api/v1/chat/list\n",
			id, iss.URL(), demoCustomer.ID, demoCustomer.Name, customer, demoAdmin.ID, demoAdmin.Name, admin, id, customer, base)
	}
	fmt.Fprintf(&out, "\nMore tokens: POST <issuer>/token with sub, name and role=customer|admin.\n")
	fmt.Fprintf(&out, "\nDemo storefront, with the <support-chat> widget (shopper %s): %s/\n", demoCustomer.Name, base)
	fmt.Fprintf(&out, "Agent inbox (admin %s): %s/inbox/\nOther tenants: add ?tenant=<id>.\n", demoAdmin.Name, base)
	fmt.Fprintf(&out, "Prometheus metrics: http://localhost:%d/metrics\nStop with Ctrl-C.\n", addrs.Metrics.(*net.TCPAddr).Port)
	_, err := fmt.Fprint(s.stdout, out.String())
	return err
}

// seed creates the demo conversations in a tenant that has none.
func (s *stack) seed(ctx context.Context, c client, adminToken string) error {
	var list struct {
		Conversations []json.RawMessage `json:"conversations"`
	}
	if err := c.do(ctx, adminToken, http.MethodGet, "/api/v1/chat/list?limit=1", nil, &list); err != nil {
		return err
	}
	if len(list.Conversations) > 0 {
		return nil
	}
	iss := s.issuer(c.tenant)
	for _, d := range demoChats() {
		tok, err := iss.Mint(d.customer.ID, d.customer.Name, false, time.Hour)
		if err != nil {
			return err
		}
		var conv struct {
			ID string `json:"id"`
		}
		if err := c.do(ctx, tok, http.MethodPost, "/api/v1/chat/start", d.start, &conv); err != nil {
			return err
		}
		for i, body := range d.replies {
			who := adminToken
			if i%2 == 1 {
				who = tok
			}
			if err := c.do(ctx, who, http.MethodPost, "/api/v1/chat/"+conv.ID+"/messages", map[string]string{"body": body}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// client calls the API of one tenant.
type client struct{ base, tenant string }

func (c client) do(ctx context.Context, token, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Tenant-ID", c.tenant)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, p.Detail)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
