package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// listHits returns how many list look-ups of replica s hit its cache.
func listHits(t *testing.T, s *stack) float64 {
	t.Helper()
	for _, line := range strings.Split(s.scrape(), "\n") {
		if strings.HasPrefix(line, `chat_cache_requests_total{cache="list",result="hit"}`) {
			var v float64
			fields := strings.Fields(line)
			if _, err := fmt.Sscan(fields[len(fields)-1], &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

func TestListCacheAcrossReplicas(t *testing.T) {
	for _, v := range []struct {
		name    string
		cluster bool
	}{{"redis", false}, {"cluster", true}} {
		t.Run(v.name, func(t *testing.T) {
			a, b, c := threeReplicas(t, stackOptions{cluster: v.cluster, productionCaches: true})
			ada, bob, grace := a.customer(shop, "ada"), a.customer(shop, "bob"), a.admin(shop, "grace")
			conv := ada.start("Where is my order?")
			bob.start("Bob's question")

			// Built once, then served from the cache, on any replica.
			first := ada.on(b).list("")
			hits := listHits(t, c)
			again := ada.on(c).list("")
			if listHits(t, c) != hits+1 {
				t.Errorf("the second list on another replica was not a cache hit")
			}
			if len(first.Conversations) != 1 || len(again.Conversations) != 1 || again.Conversations[0].ID != conv.ID {
				t.Fatalf("ada's lists: %+v / %+v", first, again)
			}
			grace.on(a).list("")
			grace.on(a).list("?limit=1")

			// A write on one replica shows in the next list on every other, at once.
			ada.on(c).send(conv.ID, "Any news?")
			for _, r := range []*stack{a, b, c} {
				l := ada.on(r).list("")
				if m := l.Conversations[0].Messages; len(m) != 1 || m[0].Body != "Any news?" {
					t.Errorf("ada's list on a replica after her message: %+v", m)
				}
				l = grace.on(r).list("")
				// Both conversations have the same updated_at (the stack's clock stands still).
				found := false
				for _, cv := range l.Conversations {
					found = found || cv.ID == conv.ID && cv.Messages[0].Body == "Any news?"
				}
				if len(l.Conversations) != 2 || !found {
					t.Errorf("the admins' list after ada's message: %+v", l.Conversations)
				}
			}
			bobsBefore := bob.on(b).list("")
			grace.on(b).send(conv.ID, "It ships today.")
			l := ada.on(a).list("")
			if l.Conversations[0].Messages[0].Body != "It ships today." || l.Conversations[0].Unread != 1 {
				t.Errorf("ada's list after the reply: %+v", l.Conversations[0])
			}
			if bobsAfter := bob.on(c).list(""); bobsAfter.Conversations[0].Updated != bobsBefore.Conversations[0].Updated {
				t.Errorf("bob's list changed with ada's conversation")
			}
			// Read marks, status and assignee are writes too.
			if r := ada.on(c).do("POST", "/api/v1/chat/"+conv.ID+"/read", map[string]any{}); r.Status != http.StatusOK {
				t.Fatalf("read: %d %s", r.Status, r.Body)
			}
			if l := ada.on(b).list(""); l.Conversations[0].Unread != 0 {
				t.Errorf("unread after reading: %d", l.Conversations[0].Unread)
			}
			if r := grace.on(a).do("PATCH", "/api/v1/chat/"+conv.ID, map[string]any{"status": "resolved", "assignee": "me"}); r.Status != http.StatusOK {
				t.Fatalf("patch: %d %s", r.Status, r.Body)
			}
			if l := grace.on(c).list("?status=resolved&assignee=me"); len(l.Conversations) != 1 || l.Conversations[0].Status != "resolved" {
				t.Errorf("resolved list after the patch: %+v", l.Conversations)
			}
			if l := a.admin(shop, "alan").on(b).list("?assignee=me"); len(l.Conversations) != 0 {
				t.Errorf("another admin's assignee=me list shows grace's: %+v", l.Conversations)
			}

			// Presence and settings are seen everywhere at once.
			if l := bob.on(c).list(""); l.Support.Status == "online" {
				t.Fatalf("support online before anyone is: %+v", l.Support)
			}
			grace.on(a).setPresence("online")
			for _, r := range []*stack{a, b, c} {
				if l := bob.on(r).list(""); l.Support.Status != "online" || !l.Support.Available {
					t.Errorf("support after grace went online: %+v", l.Support)
				}
			}
			grace.on(b).setPresence("away")
			if r := grace.on(c).do("PUT", "/api/v1/admin/settings", map[string]any{"away_prompt": "Back at nine."}); r.Status != http.StatusOK {
				t.Fatalf("settings: %d %s", r.Status, r.Body)
			}
			for _, r := range []*stack{a, b, c} {
				l := bob.on(r).list("")
				if l.Support.Status != "away" || l.Support.Prompt == nil || *l.Support.Prompt != "Back at nine." {
					t.Errorf("support after away and a new prompt: %+v", l.Support)
				}
			}
		})
	}
}

// cachedPages returns how many list pages of tenantID Redis holds.
func cachedPages(t *testing.T, s *stack, tenantID string) int {
	t.Helper()
	keys, err := s.rdb.Keys(context.Background(), "chat:{"+tenantID+"}:list:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// What cannot be shared is not cached: a delta list (each client asks with its own
// updated_since) and a page above the cache's size bound are built on every request, and
// stored neither in process nor in Redis.
func TestListsThatCannotBeSharedAreNotCached(t *testing.T) {
	s := newStack(t, stackOptions{productionCaches: true})
	ada := s.customer(shop, "ada")
	big := strings.Repeat("<", 4000)
	conv := ada.start(big)
	for range 16 {
		ada.send(conv.ID, big)
	}
	for _, tt := range []struct {
		name, query string
		cached      bool
	}{
		{"a page of 4 KiB", "?messages=1", true},
		{"a delta list", "?messages=1&updated_since=2000-01-01T00:00:00Z", false},
		{"a page of 17 messages of 4,000 characters, above 64 KiB", "?messages=20", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pages := cachedPages(t, s, shop)
			first := ada.do("GET", "/api/v1/chat/list"+tt.query, nil)
			hits := listHits(t, s)
			again := ada.do("GET", "/api/v1/chat/list"+tt.query, nil)
			if first.Status != http.StatusOK || again.Status != http.StatusOK {
				t.Fatalf("GET /chat/list%s = %d, %d", tt.query, first.Status, again.Status)
			}
			if hit := listHits(t, s) > hits; hit != tt.cached {
				t.Errorf("the second list was a cache hit: %t, want %t", hit, tt.cached)
			}
			if stored := cachedPages(t, s, shop) > pages; stored != tt.cached {
				t.Errorf("the page was stored in Redis: %t, want %t", stored, tt.cached)
			}
			if !bytes.Equal(first.Body, again.Body) {
				t.Errorf("the second list differs from the first:\n%s\n%s", first.Body, again.Body)
			}
		})
	}
}

// A list renders '<' as it is, not as \u003c: a body of 4,000 '<' takes 4,000 bytes of the
// page, built or cached, and the page is never sniffed as HTML.
func TestListRendersAngleBracketsAsTheyAre(t *testing.T) {
	s := newStack(t, stackOptions{productionCaches: true})
	ada := s.customer(shop, "ada")
	body := strings.Repeat("<", 4000)
	ada.start(body) // the list's newest message is the away prompt that follows it
	for _, when := range []string{"built", "cached"} {
		r := ada.do("GET", "/api/v1/chat/list?messages=2", nil)
		if !bytes.Contains(r.Body, []byte(`"body":"`+body+`"`)) || len(r.Body) > 4000+2000 {
			t.Errorf("%s: a list of one message of 4,000 '<' takes %d bytes; want the body as it is: %.300s", when, len(r.Body), r.Body)
		}
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", when, got)
		}
	}
}
