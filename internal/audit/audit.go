// Package audit is the tenants' audit trail of data rights work: exports, erasures, retention
// runs and settings changes, each recorded with who did it, when, what and how much. An entry
// never holds erased content, nor a customer id in clear: a customer is named by Subject, a
// hash the storefront can recompute to check a claim, so that an erased customer leaves no
// trace of their id in the trail. Entries are kept for a set time (CHAT_AUDIT_RETENTION), then
// deleted.
package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// Action is what an entry records.
type Action string

// The actions of the trail.
const (
	CustomerExported Action = "customer.exported"
	ErasureRequested Action = "customer.erasure_requested"
	// CustomerErased records an erasure that finished.
	CustomerErased  Action = "customer.erased"
	RetentionRun    Action = "retention.run"
	SettingsChanged Action = "settings.changed"
)

// Actor is who did what an entry records: an admin (Role "admin", ID their user id), or the
// service itself (Role "system", ID the background job: "retention", "erasure").
type Actor struct {
	ID   string
	Role string
}

// Entry is one record of the trail.
type Entry struct {
	// ID is set by Trail.Record: the time in milliseconds then random digits, in hex of a fixed
	// width, so ids sort by time (the newest-first paging key).
	ID       string
	TenantID string
	// At is set by Trail.Record from its clock when zero.
	At     time.Time
	Actor  Actor
	Action Action
	// Subject is the Subject of the customer concerned, "" when none.
	Subject string
	// Target is what the action was about beyond the customer, such as an erasure id; "" when
	// none.
	Target string
	// Counts are how many of what the action touched, such as {"conversations": 3,
	// "messages": 41}.
	Counts map[string]int64
	// Fields are the names of the settings a settings change set (never their values).
	Fields []string
}

// Store keeps the trail (*mongodb.Store).
type Store interface {
	// AddAudit stores e, to be deleted after expires.
	AddAudit(ctx context.Context, e Entry, expires time.Time) error
	// Audit returns up to limit entries of the tenant, newest first, whose ids are strictly
	// below before ("" from the newest).
	Audit(ctx context.Context, tenantID string, before string, limit int) ([]Entry, error)
	// SweepAudit deletes the entries that expired before now, for servers without TTL
	// indexes, and returns how many it deleted.
	SweepAudit(ctx context.Context, now time.Time) (int64, error)
}

// DefaultPageSize and MaxPageSize bound a page of List.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Trail records entries and lists them.
type Trail struct {
	store Store
	keep  time.Duration
	now   func() time.Time
}

// New returns the trail kept in store, whose entries are kept for keep after their time; now
// is its clock (nil: time.Now).
func New(store Store, keep time.Duration, now func() time.Time) *Trail {
	if now == nil {
		now = time.Now
	}
	return &Trail{store: store, keep: keep, now: now}
}

// Record stores e with a new id, at the trail's time when e.At is zero.
func (t *Trail) Record(ctx context.Context, e Entry) error {
	if e.TenantID == "" || e.Action == "" {
		return errors.New("audit entry without tenant or action")
	}
	if e.At.IsZero() {
		e.At = t.now()
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	e.ID = newID(e.At)
	if err := t.store.AddAudit(ctx, e, e.At.Add(t.keep)); err != nil {
		return fmt.Errorf("recording %s: %w", e.Action, err)
	}
	return nil
}

// List returns a page of the tenant's entries, newest first, after the position cursor (""
// from the newest), and the cursor of the next page ("" at the end). limit 0 is
// DefaultPageSize; another limit outside 1..MaxPageSize, or a cursor not of this list, is an
// Invalid chat.Error naming it.
func (t *Trail) List(ctx context.Context, tenantID, cursor string, limit int) (entries []Entry, next string, err error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return nil, "", chat.FieldError("limit", "must be between 1 and %d", MaxPageSize)
	}
	before, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	es, err := t.store.Audit(ctx, tenantID, before, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(es) > limit {
		es = es[:limit]
		next = formatCursor(es[limit-1].ID)
	}
	return es, next, nil
}

// Subject names customer customerID of tenant tenantID in the trail: the first 16 bytes of
// SHA-256 of the tenant id, a zero byte and the customer id, in hex.
func Subject(tenantID, customerID string) string {
	sum := sha256.Sum256([]byte(tenantID + "\x00" + customerID))
	return hex.EncodeToString(sum[:16])
}

// idRandomBytes is how many random bytes follow the time in an id.
const idRandomBytes = 6

// idLen is the length of an id: 12 hex digits of milliseconds, then the random bytes in hex.
const idLen = 12 + 2*idRandomBytes

// newID returns a new id of an entry at at.
func newID(at time.Time) string {
	var b [idRandomBytes]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%012x", at.UnixMilli()) + hex.EncodeToString(b[:])
}

// validID reports whether s has the form of an id newID makes: idLen lowercase hex digits.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

// formatCursor and parseCursor write and read the position after the entry id in a page.
func formatCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func parseCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !validID(string(raw)) {
		return "", chat.FieldError("cursor", "is not a cursor of this list")
	}
	return string(raw), nil
}
