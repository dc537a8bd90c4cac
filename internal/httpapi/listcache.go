package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/supportchat/supportchat/internal/cache"
	"github.com/supportchat/supportchat/internal/chat"
)

// ListCache keeps rendered list pages and support blocks (*cache.Cache).
type ListCache interface {
	Lookup(ctx context.Context, tenantID, audience, q string) (page, support []byte, tok cache.Token)
	StorePage(ctx context.Context, tenantID, audience, q string, tok cache.Token, body []byte)
	StoreSupport(ctx context.Context, tenantID string, tok cache.Token, body []byte, ttl time.Duration)
}

var _ ListCache = (*cache.Cache)(nil)

// defaultSupportTTL bounds how long a support block is cached: every change (presence,
// settings, a tenant file) invalidates it at once, and it is never cached past the moment it
// changes by itself (business hours, a heartbeat that lapses); this bounds how late it shows
// the expected reply time.
const defaultSupportTTL = 5 * time.Second

// listJSONContentType is what c.JSON sends; cached lists are sent as the same bytes.
const listJSONContentType = "application/json; charset=utf-8"

// listPageJSON is a list without its support block, which is cached on its own.
type listPageJSON struct {
	Conversations []conversationJSON `json:"conversations"`
	NextCursor    *string            `json:"next_cursor"`
}

// serveList answers a list query from the cache where it can, else from the chat service,
// caching what it builds. The page and the support block are cached apart: the page per
// audience of the caller (the tenant's admins, or the one customer) and query, the block per
// tenant. Pages of queries with updated_since are never cached (see listCacheKey), nor pages
// larger than the cache's size bound (cache.Options.MaxValueBytes). Both are rendered without
// HTML escaping, so a body of 4,000 '<' takes 4,000 bytes, not 24,000.
func (h *handlers) serveList(c *gin.Context, q url.Values, lq chat.ListQuery) {
	ctx := c.Request.Context()
	t, caller, ok := requestScope(c)
	if !ok {
		return
	}
	audience, key := listCacheKey(caller, q)
	var page, support []byte
	var tok cache.Token
	if h.cache != nil {
		page, support, tok = h.cache.Lookup(ctx, t.ID, audience, key)
	}
	if page == nil {
		build := func(ctx context.Context) ([]byte, error) {
			// With a cache the support block comes from it, or fresh below; the list need
			// not build one too.
			lq.WithoutSupport = h.cache != nil
			p, err := h.chat.List(ctx, lq)
			if err != nil {
				return nil, err
			}
			out := listPageJSON{Conversations: make([]conversationJSON, len(p.Conversations)), NextCursor: nullable(p.NextCursor)}
			for i, v := range p.Conversations {
				out.Conversations[i] = conversationOf(v)
			}
			page, err := marshalJSON(out)
			if err != nil {
				return nil, err
			}
			if h.cache != nil && key != "" {
				h.cache.StorePage(ctx, t.ID, audience, key, tok, page)
			}
			if h.cache == nil {
				support, _ = marshalJSON(supportOf(p.Support))
			}
			return page, nil
		}
		var err error
		if h.cache == nil || key == "" {
			page, err = build(ctx)
		} else {
			page, err = h.builds.share(ctx, "page\x00"+t.ID+"\x00"+audience+"\x00"+key+"\x00"+tok.Generations(), build)
		}
		if err != nil {
			abortWithError(c, err)
			return
		}
	}
	if support == nil {
		var err error
		support, err = h.builds.share(ctx, "support\x00"+t.ID+"\x00"+tok.Generations(), func(ctx context.Context) ([]byte, error) {
			s, err := h.chat.FreshSupport(ctx)
			if err != nil {
				return nil, err
			}
			support, err := marshalJSON(supportOf(s))
			if err != nil {
				return nil, err
			}
			if ttl := supportTTL(s, h.now(), h.supportTTL); ttl >= time.Millisecond {
				h.cache.StoreSupport(ctx, t.ID, tok, support, ttl)
			}
			return support, nil
		})
		if err != nil {
			abortWithError(c, err)
			return
		}
	}
	body := make([]byte, 0, len(page)+len(support)+16)
	body = append(body, page[:len(page)-1]...) // without the closing brace
	body = append(body, `,"support":`...)
	body = append(body, support...)
	body = append(body, '}')
	// The body holds '<' and '>' as they are: it must never be sniffed as HTML.
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, listJSONContentType, body)
}

// listCacheKey returns the cache audience of caller (cache.AdminAudience or CustomerAudience)
// and the key of the query q in it. Admins share one audience (the same conversations and
// unread counts), except that assignee=me names the caller. The key is "" for a query with
// updated_since, whose page is not cached: every client asks with its own time, so such a page
// would be built for one client and shared with none, and distinct times would fill the cache
// (issue 18).
func listCacheKey(caller chat.Caller, q url.Values) (audience, key string) {
	audience = cache.AdminAudience
	if !caller.IsAdmin() {
		audience = cache.CustomerAudience(caller.ID)
	}
	if q.Has("updated_since") {
		return audience, ""
	}
	canonical := q.Encode() // sorted by name
	if caller.IsAdmin() && q.Get("assignee") == "me" {
		canonical += "&me=" + url.QueryEscape(caller.ID)
	}
	return audience, cache.QueryKey(canonical)
}

// supportTTL is how long the support block s may be cached at now: at most limit, and not past
// the moment it may change by itself (business hours open or close, an admin's status lapses).
func supportTTL(s chat.Support, now time.Time, limit time.Duration) time.Duration {
	ttl := limit
	if !s.Until.IsZero() {
		ttl = min(ttl, s.Until.Sub(now))
	}
	return ttl
}

// builds shares the work of building a list page or a support block among the requests that
// miss the cache for the same value at once: one builds it (and stores it), the others wait for
// its answer. Without it, every request arriving while an expired support block (5 s) or page
// is rebuilt would rebuild it too, and on a busy replica the rebuilds crowd each other out. A
// key names the cache's generations, so a request never gets a value built before a change it
// must see. The build runs detached from the request that started it, bounded by buildTimeout,
// so that a client leaving does not fail the others; each waiter still leaves at its own
// deadline.
type builds struct{ group singleflight.Group }

// buildTimeout bounds a shared build.
const buildTimeout = 15 * time.Second

// share returns what build returns for key, built once for all concurrent callers.
func (b *builds) share(ctx context.Context, key string, build func(context.Context) ([]byte, error)) ([]byte, error) {
	ch := b.group.DoChan(key, func() (v any, err error) {
		// The build runs on singleflight's goroutine, out of reach of the recovery middleware:
		// a panic there would end the process, so it becomes this request's 500 instead.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("list build panicked: %v\n%s", r, debug.Stack())
			}
		}()
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
		defer cancel()
		return build(bctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
