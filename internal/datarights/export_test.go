package datarights

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fakeStore holds views and logs in memory and answers as the real store does.
type fakeStore struct {
	views map[string]*chat.Conversation
	logs  map[string][]chat.Entry
	// pages records the EntriesPage calls as "conv@after".
	pages []string
}

func (f *fakeStore) CustomerViews(_ context.Context, tenantID, customerID, after string, limit int) ([]*chat.Conversation, error) {
	var out []*chat.Conversation
	for _, v := range f.views {
		if v.TenantID == tenantID && v.Customer.ID == customerID && v.ID > after {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) CustomerLogs(_ context.Context, tenantID, customerID, after string, limit int) ([]string, error) {
	var out []string
	for id, log := range f.logs {
		if len(log) > 0 && log[0].Seq == 1 && log[0].TenantID == tenantID && log[0].CustomerID == customerID && id > after {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) EntriesPage(_ context.Context, tenantID, convID string, after int64, limit int) ([]chat.Entry, error) {
	f.pages = append(f.pages, fmt.Sprintf("%s@%d", convID, after))
	var out []chat.Entry
	for _, e := range f.logs[convID] {
		if e.TenantID == tenantID && e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// fakeTrail records entries, or fails.
type fakeTrail struct {
	entries []audit.Entry
	err     error
}

func (f *fakeTrail) Record(_ context.Context, e audit.Entry) error {
	if f.err != nil {
		return f.err
	}
	f.entries = append(f.entries, e)
	return nil
}

// recorder is a sink remembering what it was given.
type recorder struct {
	began, ended bool
	convs        []chat.Header
	entries      map[string][]ExportedEntry
	states       map[string]ExportedState
}

func (r *recorder) Begin(string, time.Time) error { r.began = true; return nil }
func (r *recorder) Conversation(h chat.Header) error {
	r.convs = append(r.convs, h)
	return nil
}
func (r *recorder) Entry(e ExportedEntry) error {
	id := r.convs[len(r.convs)-1].ID
	r.entries[id] = append(r.entries[id], e)
	return nil
}
func (r *recorder) EndConversation(st ExportedState) error {
	r.states[r.convs[len(r.convs)-1].ID] = st
	return nil
}
func (r *recorder) End() error { r.ended = true; return nil }

func newRecorder() *recorder {
	return &recorder{entries: map[string][]ExportedEntry{}, states: map[string]ExportedState{}}
}

var (
	ada   = chat.Participant{ID: "cust-ada", Role: chat.RoleCustomer, Name: "Ada"}
	grace = chat.Participant{ID: "admin-grace", Role: chat.RoleAdmin}
)

// logOf returns a log of conversation id of ada: n messages alternating ada's and grace's
// (ada first), then a read by ada and a read by grace of everything.
func logOf(tenantID, id string, n int) []chat.Entry {
	var st chat.State
	st.Status = chat.StatusOpen
	var out []chat.Entry
	add := func(kind chat.EntryKind, by chat.Participant, m *chat.Message) {
		seq := int64(len(out) + 1)
		st.Seq = seq
		e := chat.Entry{ID: fmt.Sprint(seq), TenantID: tenantID, ConversationID: id, CustomerID: ada.ID, Seq: seq, Kind: kind, At: t0, By: by, State: st}
		if m != nil {
			m.Seq = seq
			e.Message = m
		}
		if seq == 1 {
			e.Header = &chat.Header{Subject: "subject " + id, Customer: ada, CreatedAt: t0}
		}
		out = append(out, e)
	}
	for i := range n {
		if i%2 == 0 {
			st.CustomerCount++
			add(chat.EntryMessage, ada, &chat.Message{Body: fmt.Sprint("m", i), Sender: ada, CustomerN: st.CustomerCount, AdminN: st.AdminCount})
		} else {
			st.AdminCount++
			add(chat.EntryMessage, grace, &chat.Message{Body: fmt.Sprint("m", i), Sender: grace, CustomerN: st.CustomerCount, AdminN: st.AdminCount})
		}
	}
	st.CustomerRead = st.AdminCount
	add(chat.EntryRead, ada, nil)
	st.TeamRead = st.CustomerCount
	add(chat.EntryRead, grace, nil)
	return out
}

func adminContext(role chat.Role) context.Context {
	ctx := tenant.NewContext(context.Background(), &tenant.Tenant{ID: "demo-shop"})
	return chat.WithCaller(ctx, chat.Caller{ID: "admin-grace", Role: role})
}

func TestExportWalksViewsAndLogs(t *testing.T) {
	st := &fakeStore{views: map[string]*chat.Conversation{}, logs: map[string][]chat.Entry{}}
	// 150 conversations with a view and a log; "c-erased" with a view marked erased; "c-noview"
	// with a log alone; "c-nolog" with a view alone (its log is gone); "c-long" of 1,100
	// messages; and one of another tenant.
	for i := range 150 {
		id := fmt.Sprintf("c-%03d", i)
		st.logs[id] = logOf("demo-shop", id, 2)
		st.views[id] = &chat.Conversation{Header: chat.Header{ID: id, TenantID: "demo-shop", Customer: ada}}
	}
	st.logs["c-erased"] = logOf("demo-shop", "c-erased", 2)
	st.views["c-erased"] = &chat.Conversation{Header: chat.Header{ID: "c-erased", TenantID: "demo-shop", Customer: ada}, Erased: true}
	st.logs["c-noview"] = logOf("demo-shop", "c-noview", 3)
	st.views["c-nolog"] = &chat.Conversation{Header: chat.Header{ID: "c-nolog", TenantID: "demo-shop", Customer: ada}}
	st.logs["c-long"] = logOf("demo-shop", "c-long", 1100)
	st.logs["c-other"] = logOf("acme-outdoor", "c-other", 2)
	trail := &fakeTrail{}
	x := NewExporter(st, trail, func() time.Time { return t0 })
	rec := newRecorder()
	counts, err := x.Export(adminContext(chat.RoleAdmin), ada.ID, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.began || !rec.ended {
		t.Errorf("sink began %v, ended %v", rec.began, rec.ended)
	}
	var ids []string
	for _, h := range rec.convs {
		ids = append(ids, h.ID)
	}
	if len(ids) != 152 || !slices.IsSorted(ids) || !slices.Contains(ids, "c-noview") || !slices.Contains(ids, "c-long") ||
		slices.Contains(ids, "c-erased") || slices.Contains(ids, "c-nolog") || slices.Contains(ids, "c-other") {
		t.Errorf("exported %d conversations %v, want the 150, c-noview and c-long, by id", len(ids), ids)
	}
	if want := (ExportCounts{Conversations: 152, Messages: 150*2 + 3 + 1100}); counts != want {
		t.Errorf("counts = %+v, want %+v", counts, want)
	}
	long := rec.entries["c-long"]
	if len(long) != 1102 {
		t.Fatalf("c-long has %d entries, want 1102", len(long))
	}
	for i, e := range long {
		if e.Seq != int64(i+1) {
			t.Fatalf("c-long entry %d has seq %d", i, e.Seq)
		}
	}
	var longPages []string
	for _, p := range st.pages {
		if len(p) > 6 && p[:6] == "c-long" {
			longPages = append(longPages, p)
		}
	}
	if want := []string{"c-long@0", "c-long@500", "c-long@1000"}; !slices.Equal(longPages, want) {
		t.Errorf("c-long read in pages %v, want %v", longPages, want)
	}
	// Ada's read (seq 1101) stands at grace's last message (seq 1100); grace's (seq 1102) at
	// ada's last (seq 1099).
	if long[1100].ReadSeq != 1100 || long[1101].ReadSeq != 1099 {
		t.Errorf("read entries = %+v, %+v; want read_seq 1100 and 1099", long[1100], long[1101])
	}
	if s := rec.states["c-long"]; s.CustomerReadSeq != 1100 || s.TeamReadSeq != 1099 || s.Seq != 1102 {
		t.Errorf("c-long state = %+v, want read marks 1100 and 1099 after seq 1102", s)
	}
	if h := rec.convs[slices.Index(ids, "c-noview")]; h.Subject != "subject c-noview" || h.Customer != ada || h.TenantID != "demo-shop" {
		t.Errorf("c-noview header = %+v, want the first entry's", h)
	}
	if len(trail.entries) != 1 {
		t.Fatalf("audit entries = %+v, want one", trail.entries)
	}
	if e := trail.entries[0]; e.Action != audit.CustomerExported || e.TenantID != "demo-shop" || e.Subject != audit.Subject("demo-shop", ada.ID) ||
		e.Actor != (audit.Actor{ID: "admin-grace", Role: "admin"}) || e.Counts["conversations"] != 152 || e.Counts["messages"] != 1403 {
		t.Errorf("audit entry = %+v", e)
	}
}

func TestExportSkipsTheSeal(t *testing.T) {
	st := &fakeStore{views: map[string]*chat.Conversation{}, logs: map[string][]chat.Entry{}}
	log := logOf("demo-shop", "c-1", 2)
	last := log[len(log)-1]
	c := &chat.Conversation{Header: chat.Header{ID: "c-1", TenantID: "demo-shop", Customer: ada}, State: last.State}
	seal := chat.Seal(c, t0)
	seal.CustomerID = ada.ID
	st.logs["c-1"] = append(log, seal)
	rec := newRecorder()
	if _, err := NewExporter(st, &fakeTrail{}, nil).Export(adminContext(chat.RoleAdmin), ada.ID, rec); err != nil {
		t.Fatal(err)
	}
	es := rec.entries["c-1"]
	if len(es) != 4 || es[len(es)-1].Kind == chat.EntryErased || rec.states["c-1"].Seq != 4 {
		t.Errorf("entries %+v, state %+v: want the 4 before the seal", es, rec.states["c-1"])
	}
}

func TestExportRefusals(t *testing.T) {
	st := &fakeStore{views: map[string]*chat.Conversation{}, logs: map[string][]chat.Entry{"c-1": logOf("demo-shop", "c-1", 2)}}
	for _, tt := range []struct {
		name     string
		ctx      context.Context
		customer string
		code     chat.Code
	}{
		{"a customer", adminContext(chat.RoleCustomer), ada.ID, chat.Forbidden},
		{"no tenant", chat.WithCaller(context.Background(), chat.Caller{ID: "x", Role: chat.RoleAdmin}), ada.ID, chat.NotFound},
		{"no caller", tenant.NewContext(context.Background(), &tenant.Tenant{ID: "demo-shop"}), ada.ID, chat.Unauthenticated},
		{"an id that is no user id", adminContext(chat.RoleAdmin), "ada lovelace", chat.Invalid},
	} {
		rec := newRecorder()
		trail := &fakeTrail{}
		_, err := NewExporter(st, trail, nil).Export(tt.ctx, tt.customer, rec)
		var ce *chat.Error
		if !errors.As(err, &ce) || ce.Code != tt.code {
			t.Errorf("%s: error %v, want code %v", tt.name, err, tt.code)
		}
		if rec.began || len(trail.entries) != 0 {
			t.Errorf("%s: the export began (%v) or was recorded (%v)", tt.name, rec.began, trail.entries)
		}
	}
	// A finished export that cannot be recorded says so.
	rec := newRecorder()
	_, err := NewExporter(st, &fakeTrail{err: errors.New("down")}, nil).Export(adminContext(chat.RoleAdmin), ada.ID, rec)
	if !errors.Is(err, ErrNotRecorded) || !rec.ended {
		t.Errorf("an unrecorded export: %v (ended %v), want ErrNotRecorded after the end", err, rec.ended)
	}
}
