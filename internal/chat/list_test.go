package chat

import (
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestListParamsUpdatedSince(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	open := StatusOpen
	tests := []struct {
		name   string
		caller Caller
		q      ListQuery
		want   ListFilter
	}{
		{"no updated_since lists everything", adaCall, ListQuery{},
			ListFilter{CustomerID: "ada"}},
		{"a customer may ask for the delta of their own conversations", adaCall, ListQuery{UpdatedSince: t0},
			ListFilter{CustomerID: "ada", UpdatedSince: t0}},
		{"an admin combines it with the filters", teamCall, ListQuery{UpdatedSince: t0, Status: open, Assignee: "me"},
			ListFilter{Status: open, Assignee: &teamCall.ID, UpdatedSince: t0}},
		{"another zone is the same instant in UTC", adaCall, ListQuery{UpdatedSince: t0.In(berlin)},
			ListFilter{CustomerID: "ada", UpdatedSince: t0}},
		{"below a millisecond is cut, as updated_at counts milliseconds", adaCall, ListQuery{UpdatedSince: t0.Add(1500 * time.Microsecond)},
			ListFilter{CustomerID: "ada", UpdatedSince: t0.Add(time.Millisecond)}},
		{"the future is accepted and matches nothing yet", adaCall, ListQuery{UpdatedSince: t0.AddDate(10, 0, 0)},
			ListFilter{CustomerID: "ada", UpdatedSince: t0.AddDate(10, 0, 0)}},
		{"before the epoch is accepted and matches everything", adaCall, ListQuery{UpdatedSince: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)},
			ListFilter{CustomerID: "ada", UpdatedSince: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _, err := listParams(tt.caller, tt.q)
			if err != nil {
				t.Fatalf("listParams(%+v) error = %v, want none", tt.q, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("listParams(%+v) filter (-want +got):\n%s", tt.q, diff)
			}
			if got.UpdatedSince.Location() != time.UTC {
				t.Errorf("listParams(%+v) UpdatedSince in %v, want UTC", tt.q, got.UpdatedSince.Location())
			}
		})
	}
}

func TestCursorIsBoundToUpdatedSince(t *testing.T) {
	p := Position{UpdatedAt: t0.Add(time.Hour), ID: "0123456789abcdef01234567"}
	filterOf := func(since time.Time) ListFilter {
		f, _, _, err := listParams(teamCall, ListQuery{UpdatedSince: since, Status: StatusOpen})
		if err != nil {
			t.Fatalf("listParams(since %v) = %v", since, err)
		}
		return f
	}
	tests := []struct {
		name         string
		issued, used time.Time
		ok           bool
	}{
		{"the same updated_since continues", t0, t0, true},
		{"the same millisecond written with more digits continues", t0.Add(5 * time.Millisecond), t0.Add(5*time.Millisecond + 999*time.Microsecond), true},
		{"without updated_since continues without it", time.Time{}, time.Time{}, true},
		{"another updated_since is refused", t0, t0.Add(time.Millisecond), false},
		{"a delta cursor is refused by the full list", t0, time.Time{}, false},
		{"a full list cursor is refused by a delta", time.Time{}, t0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCursor(encodeCursor(p, filterOf(tt.issued)), filterOf(tt.used))
			if tt.ok {
				if err != nil || !got.UpdatedAt.Equal(p.UpdatedAt) || got.ID != p.ID {
					t.Errorf("decodeCursor = %+v, %v; want %+v", got, err, p)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != Invalid || e.Field != "cursor" {
				t.Errorf("decodeCursor = %+v, %v; want Invalid on field cursor", got, err)
			}
		})
	}
}

// TestCursorsOfListsWithoutUpdatedSinceStayValid pins the fingerprint of a filter without
// updated_since to what it was before the delta existed, so a deploy does not break the
// cursors clients hold.
func TestCursorsOfListsWithoutUpdatedSinceStayValid(t *testing.T) {
	h := fnv.New32a()
	h.Write([]byte("ada\x00\x00\x00any\x000\x00"))
	if got, want := filterHash(ListFilter{CustomerID: "ada"}), h.Sum32(); got != want {
		t.Errorf("filterHash(customer ada) = %#x, want %#x (the fingerprint before updated_since)", got, want)
	}
}

func TestListParamsCapLimitTimesMessages(t *testing.T) {
	n := func(i int) *int { return &i }
	tests := []struct {
		name    string
		q       ListQuery
		allowed bool
	}{
		{"100 conversations with 5 messages each, the most at full page", ListQuery{Limit: 100, Messages: n(5)}, true},
		{"25 conversations with 20 messages each, the most at 20 messages", ListQuery{Limit: 25, Messages: n(20)}, true},
		{"the default page with 20 messages each", ListQuery{Messages: n(20)}, true},
		{"100 conversations with 6 messages each", ListQuery{Limit: 100, Messages: n(6)}, false},
		{"26 conversations with 20 messages each", ListQuery{Limit: 26, Messages: n(20)}, false},
		{"100 conversations with 20 messages each", ListQuery{Limit: 100, Messages: n(20)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, limit, messages, err := listParams(adaCall, tt.q)
			if tt.allowed {
				if err != nil || limit*messages > MaxListPageMessages {
					t.Errorf("listParams(%+v) = %d × %d, %v; want allowed", tt.q, limit, messages, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != Invalid || e.Field != "messages" {
				t.Errorf("listParams(%+v) error = %v, want Invalid naming messages", tt.q, err)
			}
		})
	}
}
