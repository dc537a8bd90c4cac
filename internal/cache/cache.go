// Package cache keeps rendered list pages and support blocks in Redis, cache-aside, with an
// in-process layer in front that is bounded in bytes. No value is served past the ttl it was
// stored with, from either layer. Every cached value is tagged with the generation of its
// audience (whom the list is for: the tenant's admins, or one customer) read before the value
// was built; every write replaces the generations of the audiences whose lists it changes with
// new random ones (chat.Invalidator), so a value built before a write never matches again:
// invalidation needs no key scans and no deletes, and a list read after a write returns shows
// it on every replica. Generations are random rather than counted so that a Redis that restarts
// empty, or fails over to a replica that missed a bump, can never bring an old generation back
// (docs/CACHING.md).
package cache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/redisconn"
)

// Keys. The tenant id is a hash tag, so one tenant's keys share a Redis Cluster slot and one
// MGET reads them.
//
//	chat:{<tenant>}:gen:a                generation of the lists of the tenant's admins
//	chat:{<tenant>}:gen:c:<customer>     generation of the lists of one customer
//	chat:{<tenant>}:gen:s                generation of the support block
//	chat:{<tenant>}:list:<audience>:<q>  "<generation> <expiry>\n<rendered page>"
//	chat:{<tenant>}:support              "<generation> <expiry>\n<rendered support block>"
//
// The expiry is in Unix milliseconds: a replica that reads a value from Redis keeps it in
// process no longer than the replica that stored it meant.
func genKey(tenantID, audience string) string { return "chat:{" + tenantID + "}:gen:" + audience }
func supportGenKey(tenantID string) string    { return "chat:{" + tenantID + "}:gen:s" }
func supportKey(tenantID string) string       { return "chat:{" + tenantID + "}:support" }
func pageKey(tenantID, audience, q string) string {
	return "chat:{" + tenantID + "}:list:" + audience + ":" + q
}

// AdminAudience and CustomerAudience name the audiences of a tenant's lists, whom a cached page
// is for: all admins see the same conversations with the same unread counts; each customer sees
// their own.
const AdminAudience = "a"

// CustomerAudience returns the audience of customer id.
func CustomerAudience(id string) string { return "c:" + id }

// QueryKey returns the key part of a list query (its canonical form).
func QueryKey(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:16])
}

// Observer counts hits and misses per cache (the telemetry metrics implement it).
type Observer interface {
	CacheRequest(cache string, hit bool)
}

// Options tune a Cache; zero values take the defaults.
type Options struct {
	// PageTTL bounds how long a page lives in Redis (default 60s): it only matters when a
	// generation bump was lost (Redis failed just then).
	PageTTL time.Duration
	// LocalMaxAge is how long the in-process layer may answer without checking Redis, which
	// it does only while Redis is unreachable (default 1s).
	LocalMaxAge time.Duration
	// LocalBytes bounds the in-process layer, counting each value's key, generation and body
	// and a fixed overhead (default DefaultLocalBytes); the least recently used values go
	// first. Below zero, nothing is kept in process and every hit reads Redis.
	LocalBytes int64
	// MaxValueBytes is the largest value cached, in process or in Redis (default
	// DefaultMaxValueBytes): larger ones are built on every request instead.
	MaxValueBytes int
	Now           func() time.Time
	Observer      Observer
}

// DefaultLocalBytes is the default budget of the in-process layer: a quarter of the chart's
// memory request (128 MiB), so that even at twice the budget (the garbage collector lets the
// heap reach twice what is live) it leaves the service's own baseline room below the request.
const DefaultLocalBytes = 32 << 20

// DefaultMaxValueBytes is the default size bound of a cached value: 20 conversations with a
// message of 1,000 characters each fit, and a 32 MiB layer still holds 500 of the largest.
const DefaultMaxValueBytes = 64 << 10

// Cache is the list and support cache.
type Cache struct {
	rdb   redis.UniversalClient
	o     Options
	batch *redisconn.Batch

	local *local
}

var _ chat.Invalidator = (*Cache)(nil)

// generationLife is how long generation counters live after their last bump; an audience idle
// longer starts again from no generation, which matches no cached value of the old ones.
const generationLife = 7 * 24 * time.Hour

// New returns a Cache on rdb.
func New(rdb redis.UniversalClient, o Options) *Cache {
	if o.PageTTL <= 0 {
		o.PageTTL = time.Minute
	}
	if o.LocalMaxAge <= 0 {
		o.LocalMaxAge = time.Second
	}
	if o.LocalBytes == 0 {
		o.LocalBytes = DefaultLocalBytes
	}
	if o.MaxValueBytes <= 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache{rdb: rdb, o: o, batch: redisconn.NewBatch(rdb, batchTimeout), local: newLocal(o.LocalBytes)}
}

// Token is what a lookup saw: the generations a value built now must be stored under, or
// that Redis could not be read (then nothing is stored in Redis).
type Token struct {
	listGen, supportGen string
	ok                  bool
}

// Generations names the generations of the tenant's lists and support block that t was read
// at: values built for the same Generations see the same changes.
func (t Token) Generations() string {
	if !t.ok {
		return "unknown"
	}
	return t.listGen + "/" + t.supportGen
}

// Lookup returns the cached page of the list query q of audience and the tenant's support
// block, each nil when not cached, and the token to store fresh values with. An empty q looks
// up the support block only (for a list whose page is not cached). It costs one Redis round
// trip when the in-process layer holds current values (shared with the lists that arrive while
// the previous one is in flight: see redisconn.Batch), two otherwise. With Redis unreachable it
// answers from the in-process layer only with values checked within LocalMaxAge.
func (c *Cache) Lookup(ctx context.Context, tenantID, audience, q string) (page, support []byte, tok Token) {
	pk, sk := "", supportKey(tenantID)
	if q != "" {
		pk = pageKey(tenantID, audience, q)
	}
	now := c.o.Now()
	defer func() { c.count(pk != "", page, support) }()
	gens, err := mget(ctx, c.batch, genKey(tenantID, audience), supportGenKey(tenantID))
	if err == nil {
		tok = Token{listGen: str(gens[0]), supportGen: str(gens[1]), ok: true}
		if tok.listGen == "" || tok.supportGen == "" {
			// An audience without a generation (never written, expired, or Redis lost it) gets
			// one now, so values cached from here on cannot match whatever was cached before.
			if tok.listGen, err = c.initGeneration(ctx, genKey(tenantID, audience), tok.listGen); err == nil {
				tok.supportGen, err = c.initGeneration(ctx, supportGenKey(tenantID), tok.supportGen)
			}
		}
	}
	if err != nil {
		return c.recent(pk, now), c.recent(sk, now), Token{}
	}
	page, support = c.current(pk, tok.listGen, now), c.current(sk, tok.supportGen, now)
	var missing []string
	if page == nil && pk != "" {
		missing = append(missing, pk)
	}
	if support == nil {
		missing = append(missing, sk)
	}
	if len(missing) == 0 {
		return page, support, tok
	}
	vals, err := c.rdb.MGet(ctx, missing...).Result()
	if err != nil {
		return page, support, tok
	}
	for i, key := range missing {
		want := tok.listGen
		if key == sk {
			want = tok.supportGen
		}
		gen, expires, body, ok := split(str(vals[i]))
		if !ok || gen != want || !now.Before(expires) {
			continue
		}
		c.local.keep(key, gen, body, now, expires)
		if key == pk {
			page = body
		} else {
			support = body
		}
	}
	return page, support, tok
}

func (c *Cache) count(pageLooked bool, page, support []byte) {
	if c.o.Observer != nil {
		if pageLooked {
			c.o.Observer.CacheRequest("list", page != nil)
		}
		c.o.Observer.CacheRequest("support", support != nil)
	}
}

// StorePage caches the page of the list query q of audience under the generation tok saw, for
// PageTTL, unless it is larger than MaxValueBytes.
func (c *Cache) StorePage(ctx context.Context, tenantID, audience, q string, tok Token, body []byte) {
	c.store(ctx, pageKey(tenantID, audience, q), tok.listGen, tok.ok, body, c.o.PageTTL)
}

// StoreSupport caches the tenant's support block under the generation tok saw, for at most
// ttl (the block changes by itself when business hours open or close), unless it is larger
// than MaxValueBytes.
func (c *Cache) StoreSupport(ctx context.Context, tenantID string, tok Token, body []byte, ttl time.Duration) {
	c.store(ctx, supportKey(tenantID), tok.supportGen, tok.ok, body, ttl)
}

func (c *Cache) store(ctx context.Context, key, gen string, ok bool, body []byte, ttl time.Duration) {
	if ttl <= 0 || len(body) > c.o.MaxValueBytes {
		return
	}
	now := c.o.Now()
	expires := now.Add(ttl)
	if !ok {
		c.local.keep(key, down, body, now, expires)
		return
	}
	c.local.keep(key, gen, body, now, expires)
	head := gen + " " + strconv.FormatInt(expires.UnixMilli(), 10) + "\n"
	v := make([]byte, 0, len(head)+len(body))
	v = append(append(v, head...), body...)
	_ = c.rdb.Set(ctx, key, v, ttl).Err() // a cache that cannot store is only slower
}

// ConversationChanged bumps the generations of the lists of the conversation's customer and of
// the tenant's admins.
func (c *Cache) ConversationChanged(ctx context.Context, tenantID, customerID string) error {
	keys := []string{genKey(tenantID, AdminAudience)}
	if customerID != "" {
		keys = append(keys, genKey(tenantID, CustomerAudience(customerID)))
	}
	return c.bump(ctx, keys...)
}

// SupportChanged bumps the generation of the tenant's support block.
func (c *Cache) SupportChanged(ctx context.Context, tenantID string) error {
	return c.bump(ctx, supportGenKey(tenantID))
}

func (c *Cache) bump(ctx context.Context, keys ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, newGeneration(), generationLife)
		}
		return nil
	})
	return err
}

// initGeneration returns gen, or when it is "" gives key a new generation unless another
// caller just did, and returns the one stored.
func (c *Cache) initGeneration(ctx context.Context, key, gen string) (string, error) {
	if gen != "" {
		return gen, nil
	}
	fresh := newGeneration()
	old, err := c.rdb.SetArgs(ctx, key, fresh, redis.SetArgs{Mode: "NX", Get: true, TTL: generationLife}).Result()
	if errors.Is(err, redis.Nil) {
		return fresh, nil
	}
	return old, err
}

// newGeneration returns a random generation: 16 hex digits.
func newGeneration() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// down tags values built while Redis was unreachable: no generation read from Redis equals it.
const down = "!"

// current returns the in-process value of key if its generation is gen, marking it checked;
// nil for an empty key.
func (c *Cache) current(key, gen string, now time.Time) []byte {
	if key == "" {
		return nil
	}
	return c.local.current(key, gen, now)
}

// recent returns the in-process value of key if it was known current within LocalMaxAge; nil
// for an empty key.
func (c *Cache) recent(key string, now time.Time) []byte {
	if key == "" {
		return nil
	}
	return c.local.recent(key, c.o.LocalMaxAge, now)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// split parses "<generation> <expiry in Unix milliseconds>\n<body>". A value in another form
// (such as "<generation>\n<body>", which versions before expiries wrote) is not ok.
func split(v string) (gen string, expires time.Time, body []byte, ok bool) {
	head, rest, found := strings.Cut(v, "\n")
	if !found {
		return "", time.Time{}, nil, false
	}
	gen, ms, found := strings.Cut(head, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !found || err != nil {
		return "", time.Time{}, nil, false
	}
	return gen, time.UnixMilli(n), []byte(rest), true
}

// Forget drops what the cache holds of customers of the tenant whose conversations were erased:
// it makes every list the admins or the customers saw stale on every replica, then deletes the
// pages Redis holds of those lists, and returns how many keys it deleted. With erased, the
// customers' generations are deleted rather than replaced, so no key names them any more.
func (c *Cache) Forget(ctx context.Context, tenantID string, customerIDs []string, erased bool) (int64, error) {
	bump := []string{genKey(tenantID, AdminAudience)}
	var gone []string
	for _, id := range customerIDs {
		if erased {
			gone = append(gone, genKey(tenantID, CustomerAudience(id)))
		} else {
			bump = append(bump, genKey(tenantID, CustomerAudience(id)))
		}
	}
	if err := c.bump(ctx, bump...); err != nil {
		return 0, err
	}
	var total int64
	if len(gone) > 0 {
		n, err := c.rdb.Del(ctx, gone...).Result()
		if err != nil {
			return 0, err
		}
		total += n
	}
	patterns := []string{pageKey(redisconn.GlobQuote(tenantID), AdminAudience, "*")}
	for _, id := range customerIDs {
		patterns = append(patterns, pageKey(redisconn.GlobQuote(tenantID), redisconn.GlobQuote(CustomerAudience(id)), "*"))
	}
	for _, p := range patterns {
		n, err := redisconn.UnlinkMatching(ctx, c.rdb, p)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
