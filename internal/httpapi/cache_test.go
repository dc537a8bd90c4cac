package httpapi_test

import (
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
