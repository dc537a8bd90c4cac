package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// memStore is a Store in memory, ordered as the real one orders.
type memStore struct {
	entries []Entry
	expires []time.Time
}

func (m *memStore) AddAudit(_ context.Context, e Entry, expires time.Time) error {
	m.entries = append(m.entries, e)
	m.expires = append(m.expires, expires)
	return nil
}

func (m *memStore) Audit(_ context.Context, tenantID, before string, limit int) ([]Entry, error) {
	var out []Entry
	for _, e := range m.entries {
		if e.TenantID == tenantID && (before == "" || e.ID < before) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(b.ID, a.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memStore) SweepAudit(context.Context, time.Time) (int64, error) { return 0, nil }

func TestSubject(t *testing.T) {
	sum := sha256.Sum256([]byte("demo-shop\x00cust-1"))
	if got, want := Subject("demo-shop", "cust-1"), hex.EncodeToString(sum[:16]); got != want {
		t.Errorf("Subject = %s, want %s", got, want)
	}
	if len(Subject("a", "b")) != 32 {
		t.Errorf("Subject is not 16 bytes of hex")
	}
	// The separator keeps tenant and customer apart: ("ab", "c") is not ("a", "bc").
	if Subject("ab", "c") == Subject("a", "bc") {
		t.Error("Subject does not separate the tenant from the customer")
	}
	if strings.Contains(Subject("demo-shop", "cust-1"), "cust-1") {
		t.Error("Subject holds the customer id")
	}
}

func TestRecordSetsIDTimeAndExpiry(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	st := &memStore{}
	tr := New(st, 400*24*time.Hour, func() time.Time { return now })
	if err := tr.Record(context.Background(), Entry{TenantID: "t", Action: SettingsChanged}); err != nil {
		t.Fatal(err)
	}
	e := st.entries[0]
	if !validID(e.ID) || !e.At.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("entry = %+v, want an id and the clock's time to the millisecond", e)
	}
	if want := e.At.Add(400 * 24 * time.Hour); !st.expires[0].Equal(want) {
		t.Errorf("expires = %v, want %v", st.expires[0], want)
	}
	// A given time is kept.
	at := now.Add(-time.Hour)
	if err := tr.Record(context.Background(), Entry{TenantID: "t", Action: RetentionRun, At: at}); err != nil {
		t.Fatal(err)
	}
	if !st.entries[1].At.Equal(at.Truncate(time.Millisecond)) || st.entries[1].ID >= e.ID {
		t.Errorf("an entry an hour earlier: %+v, want its time and an id below %s", st.entries[1], e.ID)
	}
	if err := tr.Record(context.Background(), Entry{Action: RetentionRun}); err == nil {
		t.Error("an entry without a tenant was recorded")
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := now
	st := &memStore{}
	tr := New(st, time.Hour, func() time.Time { return clock })
	ctx := context.Background()
	for i := range 5 {
		clock = now.Add(time.Duration(i) * time.Millisecond)
		if err := tr.Record(ctx, Entry{TenantID: "t", Action: SettingsChanged, Target: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
		if err := tr.Record(ctx, Entry{TenantID: "other", Action: SettingsChanged}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		es, next, err := tr.List(ctx, "t", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			got = append(got, e.Target)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if want := []string{"e", "d", "c", "b", "a"}; !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
}

func TestListRefusesBadCursorAndLimit(t *testing.T) {
	tr := New(&memStore{}, time.Hour, nil)
	for _, tt := range []struct {
		cursor string
		limit  int
		field  string
	}{
		{"not base64!", 0, "cursor"},
		{formatCursor("short"), 0, "cursor"},
		{formatCursor(strings.Repeat("G", idLen)), 0, "cursor"},
		{formatCursor(strings.Repeat("A", idLen)), 0, "cursor"}, // ids are lowercase
		{"", -1, "limit"},
		{"", MaxPageSize + 1, "limit"},
	} {
		_, _, err := tr.List(context.Background(), "t", tt.cursor, tt.limit)
		var ce *chat.Error
		if !errors.As(err, &ce) || ce.Code != chat.Invalid || ce.Field != tt.field {
			t.Errorf("List(%q, %d) = %v, want Invalid naming %s", tt.cursor, tt.limit, err, tt.field)
		}
	}
	// A cursor of a real id is accepted.
	if _, _, err := tr.List(context.Background(), "t", formatCursor(newID(time.Now())), 0); err != nil {
		t.Errorf("a cursor of an id: %v", err)
	}
}

func TestIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a, b := newID(t0), newID(t0.Add(time.Millisecond))
	if a >= b || !validID(a) || !validID(b) {
		t.Errorf("ids %s, %s: want valid and sorted by time", a, b)
	}
}
