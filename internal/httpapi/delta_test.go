package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// deltaPass follows a list from its first page to its last, limit at a time, and returns the
// ids in the order they came, failing on a conversation listed twice or a page too long.
func deltaPass(t *testing.T, u user, query string, limit int) []string {
	t.Helper()
	var got []string
	seen := map[string]bool{}
	cursor := ""
	for page := 1; ; page++ {
		q := fmt.Sprintf("?limit=%d&%s", limit, query)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		l := u.list(q)
		if len(l.Conversations) > limit {
			t.Fatalf("page %d of %s has %d conversations, want at most %d", page, q, len(l.Conversations), limit)
		}
		for _, c := range l.Conversations {
			if seen[c.ID] {
				t.Fatalf("conversation %s listed twice in one pass of %s", c.ID, query)
			}
			seen[c.ID] = true
			got = append(got, c.ID)
		}
		if l.NextCursor == nil {
			return got
		}
		if page > 50 {
			t.Fatalf("%s did not end after %d pages", query, page)
		}
		cursor = *l.NextCursor
	}
}

// convIDs returns the ids of convs, in order.
func convIDs(convs ...conversationJSON) []string {
	out := make([]string, len(convs))
	for i, c := range convs {
		out[i] = c.ID
	}
	return out
}

// since returns the updated_since query of the RFC 3339 time at.
func since(at string) string { return "updated_since=" + url.QueryEscape(at) }

func TestDeltaSync(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "cust-ada")
	bob := s.customer(shop, "cust-bob")
	admin := s.admin(shop, "admin-1")

	// Seven conversations a second apart, Ada's and Bob's in turn, then one of each in the same
	// millisecond: among equal times the greater id comes first.
	var c []conversationJSON
	for i := 0; i < 7; i++ {
		who := ada
		if i%2 == 1 {
			who = bob
		}
		c = append(c, who.start(fmt.Sprintf("question %d", i)))
		s.clock.Advance(time.Second)
	}
	twinAda, twinBob := ada.start("twin of Ada"), bob.start("twin of Bob")
	if twinAda.Updated != twinBob.Updated {
		t.Fatalf("twins updated at %s and %s, want the same millisecond", twinAda.Updated, twinBob.Updated)
	}
	twins := []conversationJSON{twinAda, twinBob}
	if twinBob.ID > twinAda.ID {
		twins = []conversationJSON{twinBob, twinAda}
	}
	s.clock.Advance(time.Second)

	cut := c[2].Updated // 11:00:02.000Z: c[2] itself is not strictly later
	if cut != "2026-11-25T11:00:02.000Z" {
		t.Fatalf("c[2] updated at %s, want the stack clock's 2026-11-25T11:00:02.000Z", cut)
	}
	later := slices.Concat(convIDs(twins...), convIDs(c[6], c[5], c[4], c[3]))
	adaLater := convIDs(twinAda, c[6], c[4])
	bobLater := convIDs(twinBob, c[5], c[3])

	t.Run("reads", func(t *testing.T) {
		tests := []struct {
			name  string
			who   user
			query string
			limit int
			want  []string
		}{
			{"strictly later, newest first", admin, since(cut), 20, later},
			{"paged two at a time", admin, since(cut), 2, later},
			{"paged one at a time, splitting the tie", admin, since(cut), 1, later},
			{"another zone and more digits name the same instant", admin, since("2026-11-25T12:00:02.000000001+01:00"), 20, later},
			{"without fractional seconds", admin, since("2026-11-25T11:00:02Z"), 20, later},
			{"just before c[2] includes it", admin, since("2026-11-25T11:00:01.999Z"), 3, slices.Concat(later, convIDs(c[2]))},
			{"before everything, everything", admin, since("2000-01-01T00:00:00Z"), 4, slices.Concat(later, convIDs(c[2], c[1], c[0]))},
			{"the newest time, nothing", admin, since(twinAda.Updated), 20, nil},
			{"the future is accepted and has nothing", admin, since("2030-01-01T00:00:00Z"), 20, nil},
			{"a customer gets only their own", ada, since(cut), 2, adaLater},
			{"the other customer gets only theirs", bob, since(cut), 2, bobLater},
			{"an admin's customer filter combines with it", admin, "customer_id=cust-bob&" + since(cut), 2, bobLater},
			{"an admin's status filter combines with it", admin, "status=resolved&" + since(cut), 2, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := deltaPass(t, tt.who, tt.query, tt.limit)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("pass of %s by %d (-want +got):\n%s", tt.query, tt.limit, diff)
				}
			})
		}
	})

	t.Run("a later write brings an old conversation back", func(t *testing.T) {
		newest := twinAda.Updated
		s.clock.Advance(time.Minute)
		admin.send(c[0].ID, "Sorry for the wait.")

		l := admin.list("?" + since(newest))
		if got, want := convIDs(l.Conversations...), convIDs(c[0]); !cmp.Equal(got, want) {
			t.Fatalf("delta since %s = %v, want only the answered %v", newest, got, want)
		}
		if got, want := l.Conversations[0].Updated, "2026-11-25T11:01:08.000Z"; got != want {
			t.Errorf("answered conversation updated_at = %s, want %s", got, want)
		}
		if got, want := deltaPass(t, admin, since(cut), 2), slices.Concat(convIDs(c[0]), later); !cmp.Equal(got, want) {
			t.Errorf("delta since %s = %v, want %v (the answered one first)", cut, got, want)
		}
		if got, want := deltaPass(t, ada, since(newest), 20), convIDs(c[0]); !cmp.Equal(got, want) {
			t.Errorf("Ada's delta since %s = %v, want her answered %v", newest, got, want)
		}
		if got := deltaPass(t, bob, since(newest), 20); len(got) != 0 {
			t.Errorf("Bob's delta since %s = %v, want none: the answer was to Ada", newest, got)
		}
		// The answer read the customer's messages, so the unread filter drops it again.
		if got, want := deltaPass(t, admin, "unread=true&"+since(cut), 3), later; !cmp.Equal(got, want) {
			t.Errorf("unread delta since %s = %v, want %v (the answered one is read)", cut, got, want)
		}
		if got, want := deltaPass(t, admin, "customer_id=cust-ada&unread=true&"+since(cut), 2), adaLater; !cmp.Equal(got, want) {
			t.Errorf("Ada's unread delta since %s = %v, want %v", cut, got, want)
		}
	})

	t.Run("a cursor is bound to its updated_since", func(t *testing.T) {
		first := admin.list("?limit=2&" + since(cut))
		if first.NextCursor == nil {
			t.Fatalf("first page of the delta since %s has no next_cursor", cut)
		}
		cursor := "&cursor=" + url.QueryEscape(*first.NextCursor)
		if r := admin.do("GET", "/api/v1/chat/list?limit=2&"+since(cut)+cursor, nil); r.Status != http.StatusOK {
			t.Errorf("same updated_since = %d %s, want 200", r.Status, r.Body)
		}
		for _, other := range []string{
			"limit=2&" + since("2026-11-25T11:00:02.001Z"),
			"limit=2&" + since("2026-11-25T11:00:01Z"),
			"limit=2",
		} {
			p := admin.do("GET", "/api/v1/chat/list?"+other+cursor, nil).Problem(t, http.StatusBadRequest)
			if p.Field() != "cursor" || p.Slug() != "invalid-request" {
				t.Errorf("cursor of the delta since %s used with %s = %s on %q, want invalid-request on cursor", cut, other, p.Slug(), p.Field())
			}
		}
		// And a cursor of the whole list does not continue a delta.
		whole := admin.list("?limit=2")
		p := admin.do("GET", "/api/v1/chat/list?limit=2&"+since(cut)+"&cursor="+url.QueryEscape(*whole.NextCursor), nil).Problem(t, http.StatusBadRequest)
		if p.Field() != "cursor" {
			t.Errorf("cursor of the whole list used with updated_since: field %q, want cursor", p.Field())
		}
	})
}

func TestDeltaSyncBadUpdatedSince(t *testing.T) {
	s := newStack(t)
	customer := s.customer(shop, "cust-1")
	for _, bad := range []string{
		"yesterday",
		"2026-13-01T00:00:00Z", // no thirteenth month
		"2026-11-31T00:00:00Z", // no 31st of November
		"2026-11-25",           // a date without a time
		"2026-11-25T11:00:00",  // a time without a zone
		"2026-11-25 11:00:00Z", // no T
		"1764068400",           // Unix seconds
		"",
	} {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			p := customer.do("GET", "/api/v1/chat/list?updated_since="+url.QueryEscape(bad), nil).Problem(t, http.StatusBadRequest)
			if p.Slug() != "invalid-request" || p.Field() != "updated_since" {
				t.Errorf("updated_since=%q: %s on %q, want invalid-request on updated_since", bad, p.Slug(), p.Field())
			}
			if want := "updated_since must be an RFC 3339 date-time such as 2026-11-24T10:01:02.123Z."; p.Detail != want {
				t.Errorf("updated_since=%q: detail %q, want %q", bad, p.Detail, want)
			}
		})
	}
	t.Run("given twice", func(t *testing.T) {
		p := customer.do("GET", "/api/v1/chat/list?updated_since=2026-11-25T11:00:00Z&updated_since=2026-11-25T12:00:00Z", nil).Problem(t, http.StatusBadRequest)
		if p.Field() != "updated_since" {
			t.Errorf("repeated updated_since: field %q, want updated_since", p.Field())
		}
	})
	t.Run("it does not open the admin filters to customers", func(t *testing.T) {
		p := customer.do("GET", "/api/v1/chat/list?status=open&updated_since=2026-11-25T11:00:00Z", nil).Problem(t, http.StatusForbidden)
		if p.Field() != "status" {
			t.Errorf("customer filtering by status with updated_since: field %q, want status", p.Field())
		}
	})
}
