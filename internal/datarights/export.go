package datarights

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
)

// exportEntryPage is how many entries of a log an export reads at a time (conversations are
// read customerPage at a time), so that a conversation of 10,000 messages is never in memory
// whole.
const exportEntryPage = 500

// ExportStore reads a customer's data page by page (*mongodb.Store).
type ExportStore interface {
	Customers
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
	convs := conversationsOf(ctx, x.store, tenantID, customerID)
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
