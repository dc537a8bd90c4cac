package datarights

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
)

// The pages an export reads: conversations by the hundred, a log by 500 entries, so that a
// conversation of 10,000 messages is never in memory whole.
const (
	exportConversationPage = 100
	exportEntryPage        = 500
)

// ExportStore reads a customer's data page by page (*mongodb.Store).
type ExportStore interface {
	// CustomerViews returns up to limit views of the customer's conversations, by id, after
	// the id after ("" from the first).
	CustomerViews(ctx context.Context, tenantID, customerID, after string, limit int) ([]*chat.Conversation, error)
	// CustomerLogs returns the ids of up to limit conversations of the customer whose log has
	// its first entry, by id, after the id after.
	CustomerLogs(ctx context.Context, tenantID, customerID, after string, limit int) ([]string, error)
	// EntriesPage returns up to limit entries of a conversation's log after Seq after, in
	// order and without gaps.
	EntriesPage(ctx context.Context, tenantID, convID string, after int64, limit int) ([]chat.Entry, error)
}

// Trail records exports, erasures and retention runs (*audit.Trail).
type Trail interface {
	Record(ctx context.Context, e audit.Entry) error
}

// ExportSink writes an export as it is read: Begin, then for each conversation Conversation,
// its entries in order and EndConversation, then End. Exporter.Export calls Begin only once
// the caller may have the export, so a sink can answer an error itself until then.
type ExportSink interface {
	Begin(customerID string, at time.Time) error
	Conversation(h chat.Header) error
	Entry(e ExportedEntry) error
	// EndConversation ends the conversation begun last with its state after its last entry.
	EndConversation(st ExportedState) error
	End() error
}

// ExportedEntry is an entry of a conversation's log as exported.
type ExportedEntry struct {
	chat.Entry
	// ReadSeq is, on a read entry, the Seq of the newest message of the other side that its
	// reader had read with it (0: none).
	ReadSeq int64
}

// ExportedState is the state of a conversation after its last entry, as exported.
type ExportedState struct {
	chat.State
	// CustomerReadSeq and TeamReadSeq are the Seqs of the newest message of the other side
	// that the customer, and the team, have read (0: none).
	CustomerReadSeq int64
	TeamReadSeq     int64
}

// ExportCounts are what an export held.
type ExportCounts struct {
	Conversations int64
	Messages      int64
}

// Exporter exports customers' data.
type Exporter struct {
	store ExportStore
	trail Trail
	now   func() time.Time
}

// NewExporter returns an Exporter reading store and recording its exports in trail, with the
// clock now (nil: time.Now).
func NewExporter(store ExportStore, trail Trail, now func() time.Time) *Exporter {
	if now == nil {
		now = time.Now
	}
	return &Exporter{store: store, trail: trail, now: now}
}

// Export writes everything held about the customer customerID in the tenant of ctx to sink:
// every conversation whose log has begun, its header and its whole history in order (but the
// seal of a conversation being erased), then its state; and records the export in the audit
// trail. Only the tenant's admins may (Forbidden otherwise); a customerID that cannot be a
// user id is Invalid naming customer_id. A customer with nothing gets an empty export.
//
// An error after sink.Begin leaves the export unfinished; an error recording a finished
// export is returned wrapping ErrNotRecorded.
func (x *Exporter) Export(ctx context.Context, customerID string, sink ExportSink) (ExportCounts, error) {
	var counts ExportCounts
	t, caller, err := chat.RequireAdmin(ctx)
	if err != nil {
		return counts, err
	}
	tenantID := t.ID
	if !chat.ValidID(customerID) {
		return counts, chat.FieldError("customer_id", "must be a user id: 1 to 255 visible ASCII characters")
	}
	if err := sink.Begin(customerID, x.now()); err != nil {
		return counts, err
	}
	convs := exportMerge{
		views: exportPager[*chat.Conversation]{id: func(c *chat.Conversation) string { return c.ID },
			fetch: func(after string) ([]*chat.Conversation, error) {
				return x.store.CustomerViews(ctx, tenantID, customerID, after, exportConversationPage)
			}},
		logs: exportPager[string]{id: func(id string) string { return id },
			fetch: func(after string) ([]string, error) {
				return x.store.CustomerLogs(ctx, tenantID, customerID, after, exportConversationPage)
			}},
	}
	for {
		id, view, ok, err := convs.next()
		if err != nil {
			return counts, err
		}
		if !ok {
			break
		}
		if view != nil && view.Erased {
			continue
		}
		n, exported, err := x.exportConversation(ctx, tenantID, customerID, id, sink)
		if err != nil {
			return counts, err
		}
		if exported {
			counts.Conversations++
			counts.Messages += n
		}
	}
	if err := sink.End(); err != nil {
		return counts, err
	}
	err = x.trail.Record(ctx, audit.Entry{
		TenantID: tenantID,
		Actor:    audit.Actor{ID: caller.ID, Role: string(caller.Role)},
		Action:   audit.CustomerExported,
		Subject:  audit.Subject(tenantID, customerID),
		Counts:   map[string]int64{"conversations": counts.Conversations, "messages": counts.Messages},
	})
	if err != nil {
		return counts, fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	return counts, nil
}

// ErrNotRecorded is an export that was written whole but could not be recorded in the audit
// trail.
var ErrNotRecorded = errors.New("export not recorded in the audit trail")

// exportConversation writes conversation convID of the customer to sink, page by page, and
// returns how many messages it held; a conversation whose log is gone (being erased) is left
// out, and exported is false.
func (x *Exporter) exportConversation(ctx context.Context, tenantID, customerID, convID string, sink ExportSink) (messages int64, exported bool, err error) {
	page, err := x.store.EntriesPage(ctx, tenantID, convID, 0, exportEntryPage)
	if err != nil {
		return 0, false, err
	}
	if len(page) == 0 || page[0].Seq != 1 || page[0].Header == nil || page[0].Kind == chat.EntryErased {
		return 0, false, nil
	}
	h := *page[0].Header
	h.ID, h.TenantID = convID, tenantID
	if h.Customer.ID != customerID {
		return 0, false, nil // not this customer's: never shown
	}
	if err := sink.Conversation(h); err != nil {
		return 0, false, err
	}
	// The Seqs of each side's messages, by their count (CustomerN, AdminN), to tell the
	// message a read mark stands at.
	var customerSeqs, adminSeqs []int64
	var last chat.State
	for len(page) > 0 {
		for _, e := range page {
			if e.Kind == chat.EntryErased {
				continue
			}
			out := ExportedEntry{Entry: e}
			switch {
			case e.Kind == chat.EntryMessage && e.Message != nil:
				messages++
				switch e.By.Role {
				case chat.RoleCustomer:
					customerSeqs = append(customerSeqs, e.Seq)
				case chat.RoleAdmin:
					adminSeqs = append(adminSeqs, e.Seq)
				}
			case e.Kind == chat.EntryRead && e.By.Role == chat.RoleAdmin:
				out.ReadSeq = seqAt(customerSeqs, e.State.TeamRead)
			case e.Kind == chat.EntryRead:
				out.ReadSeq = seqAt(adminSeqs, e.State.CustomerRead)
			}
			if err := sink.Entry(out); err != nil {
				return messages, true, err
			}
			last = e.State
		}
		after := page[len(page)-1].Seq
		if len(page) < exportEntryPage {
			break
		}
		if page, err = x.store.EntriesPage(ctx, tenantID, convID, after, exportEntryPage); err != nil {
			return messages, true, err
		}
	}
	st := ExportedState{State: last, CustomerReadSeq: seqAt(adminSeqs, last.CustomerRead), TeamReadSeq: seqAt(customerSeqs, last.TeamRead)}
	return messages, true, sink.EndConversation(st)
}

// seqAt returns the Seq of the n-th message of seqs (one side's), 0 for none.
func seqAt(seqs []int64, n int64) int64 {
	if n < 1 || n > int64(len(seqs)) {
		return 0
	}
	return seqs[n-1]
}

// exportMerge walks a customer's conversations by id: those with a view and those whose log
// began without one yet, each once.
type exportMerge struct {
	views exportPager[*chat.Conversation]
	logs  exportPager[string]
}

// next returns the next conversation's id and its view (nil without one); ok is false at
// the end.
func (m *exportMerge) next() (id string, view *chat.Conversation, ok bool, err error) {
	v, vok, err := m.views.peek()
	if err != nil {
		return "", nil, false, err
	}
	l, lok, err := m.logs.peek()
	if err != nil {
		return "", nil, false, err
	}
	switch {
	case !vok && !lok:
		return "", nil, false, nil
	case vok && (!lok || v.ID <= l):
		m.views.pop()
		if lok && v.ID == l {
			m.logs.pop()
		}
		return v.ID, v, true, nil
	default:
		m.logs.pop()
		return l, nil, true, nil
	}
}

// exportPager reads a list ordered by id page by page.
type exportPager[T any] struct {
	fetch func(after string) ([]T, error)
	id    func(T) string
	buf   []T
	after string
	done  bool
}

// peek returns the next item, fetching a page when none is buffered; ok is false at the end.
func (p *exportPager[T]) peek() (item T, ok bool, err error) {
	if len(p.buf) == 0 && !p.done {
		page, err := p.fetch(p.after)
		if err != nil {
			return item, false, err
		}
		if len(page) < exportConversationPage {
			p.done = true
		}
		if len(page) > 0 {
			p.after = p.id(page[len(page)-1])
		}
		p.buf = page
	}
	if len(p.buf) == 0 {
		return item, false, nil
	}
	return p.buf[0], true, nil
}

// pop drops the item peek returned.
func (p *exportPager[T]) pop() { p.buf = p.buf[1:] }
