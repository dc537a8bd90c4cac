package datarights

import (
	"context"

	"github.com/supportchat/supportchat/internal/chat"
)

// Action is what an audit record says was done.
type Action string

// The actions data rights record.
const (
	CustomerExported Action = "customer.exported"
	ErasureRequested Action = "customer.erasure_requested"
	CustomerErased   Action = "customer.erased"
	RetentionRun     Action = "retention.run"
)

// Record is one record of the audit trail: who did what, when, to whom, with counts; never
// what was erased.
type Record struct {
	TenantID string
	Actor    chat.Caller
	Action   Action
	// Customer is whom it concerned, "" for none; the trail keeps a hash of it, never the id.
	Customer string
	Target   string
	Counts   Counts
}

// Auditor keeps the audit trail.
type Auditor interface {
	Record(ctx context.Context, r Record) error
}
