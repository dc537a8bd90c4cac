package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/cache"
	"github.com/supportchat/supportchat/internal/testenv"
)

type counts struct{ hits, misses map[string]int }

func (c *counts) CacheRequest(name string, hit bool) {
	if hit {
		c.hits[name]++
	} else {
		c.misses[name]++
	}
}

func client(t *testing.T, r *testenv.Redis) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries, opt.DialerRetries = 0, 1 // a stopped Redis fails each command at once
	opt.DialTimeout, opt.ReadTimeout = 300*time.Millisecond, 300*time.Millisecond
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestGenerationsInvalidateAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	obs := &counts{hits: map[string]int{}, misses: map[string]int{}}
	a := cache.New(client(t, r), cache.Options{Observer: obs})
	b := cache.New(client(t, r), cache.Options{})
	ada, q := cache.CustomerAudience("ada"), cache.QueryKey("limit=20")

	page, sup, tok := a.Lookup(ctx, "shop", ada, q)
	if page != nil || sup != nil {
		t.Fatalf("empty cache answered %q %q", page, sup)
	}
	a.StorePage(ctx, "shop", ada, q, tok, []byte(`{"v":1}`))
	a.StoreSupport(ctx, "shop", tok, []byte(`{"s":1}`), time.Minute)
	if page, sup, _ := a.Lookup(ctx, "shop", ada, q); string(page) != `{"v":1}` || string(sup) != `{"s":1}` {
		t.Fatalf("same replica: %q %q", page, sup)
	}
	if page, sup, _ := b.Lookup(ctx, "shop", ada, q); string(page) != `{"v":1}` || string(sup) != `{"s":1}` {
		t.Fatalf("other replica: %q %q", page, sup)
	}
	if obs.hits["list"] != 1 || obs.misses["list"] != 1 || obs.hits["support"] != 1 {
		t.Errorf("counted %v hits, %v misses", obs.hits, obs.misses)
	}

	// A value built from a lookup that preceded a write is stale: a write between the lookup
	// and the store must make it unusable.
	_, _, before := b.Lookup(ctx, "shop", cache.AdminAudience, q)
	if err := b.ConversationChanged(ctx, "shop", "ada"); err != nil {
		t.Fatal(err)
	}
	b.StorePage(ctx, "shop", cache.AdminAudience, q, before, []byte(`{"stale":true}`))
	for _, c := range []*cache.Cache{a, b} {
		if page, sup, _ := c.Lookup(ctx, "shop", ada, q); page != nil || string(sup) != `{"s":1}` {
			t.Errorf("after a write, the customer's page %q support %q", page, sup)
		}
		if page, _, _ := c.Lookup(ctx, "shop", cache.AdminAudience, q); page != nil {
			t.Errorf("after a write, the admins' page %q", page)
		}
	}
	// Another customer's pages are untouched.
	_, _, tok = a.Lookup(ctx, "shop", cache.CustomerAudience("bob"), q)
	a.StorePage(ctx, "shop", cache.CustomerAudience("bob"), q, tok, []byte(`bob`))
	if err := a.ConversationChanged(ctx, "shop", "ada"); err != nil {
		t.Fatal(err)
	}
	if page, _, _ := b.Lookup(ctx, "shop", cache.CustomerAudience("bob"), q); string(page) != "bob" {
		t.Errorf("bob's page after ada's write: %q", page)
	}
	if err := a.SupportChanged(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, sup, _ := b.Lookup(ctx, "shop", ada, q); sup != nil {
		t.Errorf("support after a change: %q", sup)
	}
	// Another tenant shares nothing.
	if page, sup, _ := b.Lookup(ctx, "other", cache.CustomerAudience("bob"), q); page != nil || sup != nil {
		t.Errorf("another tenant: %q %q", page, sup)
	}
}

func TestRedisDownServesOnlyRecentLocalValues(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	clk := testenv.NewClock(time.Now())
	c := cache.New(client(t, r), cache.Options{Now: clk.Now, LocalMaxAge: time.Second})
	audience, q := cache.AdminAudience, cache.QueryKey("")
	_, _, tok := c.Lookup(ctx, "shop", audience, q)
	c.StorePage(ctx, "shop", audience, q, tok, []byte("p"))

	r.Stop(t)
	clk.Advance(900 * time.Millisecond)
	if page, _, _ := c.Lookup(ctx, "shop", audience, q); string(page) != "p" {
		t.Errorf("within the bound: %q", page)
	}
	clk.Advance(200 * time.Millisecond)
	if page, _, _ := c.Lookup(ctx, "shop", audience, q); page != nil {
		t.Errorf("past the bound: %q", page)
	}
	// Built while Redis is down: kept only for the bound, never matched once Redis is back.
	_, _, down := c.Lookup(ctx, "shop", audience, q)
	c.StorePage(ctx, "shop", audience, q, down, []byte("built while down"))
	if page, _, _ := c.Lookup(ctx, "shop", audience, q); string(page) != "built while down" {
		t.Errorf("just built: %q", page)
	}

	// Redis comes back empty: the generations are new, so nothing cached before matches.
	r.Start(t)
	var page []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		var tok cache.Token
		page, _, tok = c.Lookup(ctx, "shop", audience, q)
		if tok != (cache.Token{}) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if page != nil {
		t.Errorf("after Redis came back empty: %q", page)
	}
}

// A support block is cached for the ttl it was stored with, in process and in Redis, even
// while its generation stays the same: the block changes by itself when the clock moves (hours
// close, a heartbeat lapses).
func TestSupportBlockIsNotServedPastItsTTL(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	clk := testenv.NewClock(time.Now())
	a := cache.New(client(t, r), cache.Options{Now: clk.Now})
	b := cache.New(client(t, r), cache.Options{Now: clk.Now})
	audience, q := cache.AdminAudience, cache.QueryKey("")
	_, _, tok := a.Lookup(ctx, "shop", audience, q)
	a.StoreSupport(ctx, "shop", tok, []byte(`{"status":"online"}`), 3*time.Second)

	clk.Advance(2999 * time.Millisecond)
	for name, c := range map[string]*cache.Cache{"the replica that stored it": a, "another replica": b} {
		if _, sup, _ := c.Lookup(ctx, "shop", audience, q); string(sup) != `{"status":"online"}` {
			t.Errorf("%s, 2.999 s after storing with ttl 3s: support %q, want the block", name, sup)
		}
	}
	clk.Advance(time.Millisecond)
	for name, c := range map[string]*cache.Cache{"the replica that stored it": a, "another replica": b} {
		if _, sup, _ := c.Lookup(ctx, "shop", audience, q); sup != nil {
			t.Errorf("%s, 3 s after storing with ttl 3s: support %q, want none", name, sup)
		}
	}

	// With Redis down, the in-process layer honours the ttl too, within LocalMaxAge.
	_, _, tok = a.Lookup(ctx, "shop", audience, q)
	a.StoreSupport(ctx, "shop", tok, []byte(`{"status":"away"}`), 500*time.Millisecond)
	r.Stop(t)
	clk.Advance(499 * time.Millisecond)
	if _, sup, _ := a.Lookup(ctx, "shop", audience, q); string(sup) != `{"status":"away"}` {
		t.Errorf("Redis down, within the ttl: support %q, want the block", sup)
	}
	clk.Advance(time.Millisecond)
	if _, sup, _ := a.Lookup(ctx, "shop", audience, q); sup != nil {
		t.Errorf("Redis down, at the ttl (within LocalMaxAge): support %q, want none", sup)
	}
}

// No value above MaxValueBytes is cached, in process or in Redis.
func TestValuesAboveTheSizeBoundAreNotCached(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a := cache.New(client(t, r), cache.Options{})
	b := cache.New(client(t, r), cache.Options{})
	audience := cache.CustomerAudience("ada")
	for _, tt := range []struct {
		name   string
		size   int
		cached bool
	}{
		{"a page of exactly the bound", cache.DefaultMaxValueBytes, true},
		{"a page one byte above the bound", cache.DefaultMaxValueBytes + 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := cache.QueryKey(fmt.Sprint("size=", tt.size))
			_, _, tok := a.Lookup(ctx, "shop", audience, q)
			a.StorePage(ctx, "shop", audience, q, tok, bytes.Repeat([]byte{'<'}, tt.size))
			for name, c := range map[string]*cache.Cache{"in process": a, "in Redis": b} {
				if page, _, _ := c.Lookup(ctx, "shop", audience, q); (page != nil) != tt.cached {
					t.Errorf("%s: cached = %t, want %t", name, page != nil, tt.cached)
				}
			}
		})
	}
}
