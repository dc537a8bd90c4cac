// Package datarights answers customers' data rights (GDPR Art. 15, 17 and 20) and keeps chats
// no longer than their tenant's policy: the export of everything held about a customer, the
// erasure of a customer (a job any replica finishes), and the retention sweeper
// (docs/DATA-RIGHTS.md). Each is recorded in the audit trail.
package datarights

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// State is where an erasure stands.
type State string

// The states of an erasure.
const (
	Pending State = "pending"
	Done    State = "done"
)

// Erasure is the job of erasing one customer of a tenant. It keeps the customer's id only
// while it is pending: a finished erasure holds nothing of the customer.
type Erasure struct {
	ID       string
	TenantID string
	// CustomerID is the customer being erased; "" once Done.
	CustomerID  string
	RequestedBy string
	RequestedAt time.Time
	State       State
	// Passes counts the passes made: the second comes once SettleAt has passed (see Eraser).
	Passes   int
	SettleAt time.Time
	DoneAt   time.Time
	Counts   Counts
}

// Counts are what an erasure or a retention run erased.
type Counts struct {
	Conversations int64 `json:"conversations"`
	Messages      int64 `json:"messages"`
	Entries       int64 `json:"log_entries"`
	Idempotency   int64 `json:"idempotency_records"`
	Deliveries    int64 `json:"webhook_deliveries"`
	Events        int64 `json:"events"`
	RedisKeys     int64 `json:"redis_keys"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Conversations += o.Conversations
	c.Messages += o.Messages
	c.Entries += o.Entries
	c.Idempotency += o.Idempotency
	c.Deliveries += o.Deliveries
	c.Events += o.Events
	c.RedisKeys += o.RedisKeys
}

// Map returns c by name, for the audit trail and metrics.
func (c Counts) Map() map[string]int64 {
	return map[string]int64{"conversations": c.Conversations, "messages": c.Messages, "log_entries": c.Entries,
		"idempotency_records": c.Idempotency, "webhook_deliveries": c.Deliveries, "events": c.Events, "redis_keys": c.RedisKeys}
}

// ErrNotFound is the answer for an erasure id the tenant does not have.
var ErrNotFound = &chat.Error{Code: chat.NotFound, Message: "no such erasure"}

// Jobs keeps erasure jobs.
type Jobs interface {
	// AddErasure stores a new erasure.
	AddErasure(ctx context.Context, e *Erasure) error
	// Erasure returns erasure id of the tenant, or ErrNotFound.
	Erasure(ctx context.Context, tenantID, id string) (*Erasure, error)
	// ActiveErasure returns the pending erasure of a customer of the tenant, or nil.
	ActiveErasure(ctx context.Context, tenantID, customerID string) (*Erasure, error)
	// PendingErasures returns up to limit pending erasures of any tenant.
	PendingErasures(ctx context.Context, limit int) ([]Erasure, error)
	// SaveErasure replaces the stored erasure with e.
	SaveErasure(ctx context.Context, e *Erasure) error
}

// Records are the MongoDB side of the data of conversations, as erasure needs it.
type Records interface {
	Customers
	// View returns the view of a conversation, or chat.ErrNotFound.
	View(ctx context.Context, tenantID, id string) (*chat.Conversation, error)
	// EntriesAfter returns the entries of a conversation after seq, in order.
	EntriesAfter(ctx context.Context, tenantID, convID string, seq int64) ([]chat.Entry, error)
	// Entry returns the entry of a conversation with id, or chat.ErrNotFound.
	Entry(ctx context.Context, tenantID, convID, id string) (*chat.Entry, error)
	// LastEntry returns the entry of a conversation with the greatest Seq, or nil.
	LastEntry(ctx context.Context, tenantID, convID string) (*chat.Entry, error)
	// Append appends entries to logs (the seal), failing with chat.ErrConflict on a taken Seq.
	Append(ctx context.Context, entries []chat.Entry) (int, error)
	// DeleteLog deletes the entries of a conversation up to seq, a batch at a time, but for its
	// seal, and its pending marks, returning how many entries and how many messages it
	// deleted.
	DeleteLog(ctx context.Context, tenantID, convID string, upTo int64) (entries, messages int64, err error)
	// DeleteViews deletes the views of conversations.
	DeleteViews(ctx context.Context, tenantID string, ids []string) (int64, error)
	// DeleteIdempotencyOf deletes the idempotency records of requests that wrote to the
	// conversations.
	DeleteIdempotencyOf(ctx context.Context, tenantID string, ids []string) (int64, error)
	// DeleteDeliveriesOf deletes the webhook deliveries, pending or not, of the conversations'
	// events.
	DeleteDeliveriesOf(ctx context.Context, tenantID string, ids []string) (int64, error)
}

// Events are the tenants' replayable event streams (events.Bus).
type Events interface {
	// EraseEvents deletes a customer's events from the tenant's stream: all of them when
	// convIDs is nil, else those of the conversations convIDs.
	EraseEvents(ctx context.Context, tenantID, customerID string, convIDs []string) (int64, error)
}

// Caches are the cached pages (cache.Cache).
type Caches interface {
	// Forget deletes the cached list pages that may show the customers' conversations and
	// makes every replica's cached pages stale; with erased, it also deletes what the cache
	// keeps under the customers' ids.
	Forget(ctx context.Context, tenantID string, customerIDs []string, erased bool) (int64, error)
}

// Limits are the request limits kept per caller (limits.Limiter).
type Limits interface {
	// Forget deletes the limit counters of a caller of the tenant.
	Forget(ctx context.Context, tenantID, subject string) (int64, error)
}

// Lease gives a job to one replica at a time (redisconn.Lease).
type Lease interface {
	Take(ctx context.Context, name string, ttl time.Duration) bool
}

// errSealRace is a log that kept growing while erasure tried to seal it.
var errSealRace = errors.New("the conversation kept changing; its erasure is retried")

// sealAttempts bounds how often erasure tries to seal a log that other writers keep growing.
const sealAttempts = 20

// sealed is a conversation's log after sealing: the seal's Seq (0: the conversation has no
// log), the greatest Seq of its entries (a write that raced the first pass may have left one
// past the seal), and whether this call added the seal.
type sealed struct {
	seq, end int64
	added    bool
}

// seal appends the seal at the end of conversation id's log (chat.Seal), unless the log ends
// with one already or keep says the conversation at its end is not to be erased. From the
// seal on, a writer racing the erasure loses its race for the next Seq and answers not found.
func seal(ctx context.Context, r Records, tenantID, id string, now time.Time, keep func(chat.State) bool) (sealed, error) {
	for range sealAttempts {
		last, err := logEnd(ctx, r, tenantID, id)
		if err != nil || last == nil {
			return sealed{}, err
		}
		if last.Kind == chat.EntryErased {
			return sealed{seq: last.Seq, end: last.Seq}, nil
		}
		if keep != nil && keep(last.State) {
			return sealed{}, nil
		}
		s := chat.Seal(&chat.Conversation{Header: chat.Header{ID: id, TenantID: tenantID}, State: last.State}, now)
		_, err = r.Append(ctx, []chat.Entry{s})
		if err == nil {
			return sealed{seq: s.Seq, end: s.Seq, added: true}, nil
		}
		if !errors.Is(err, chat.ErrConflict) {
			return sealed{}, err
		}
		// Another writer took the Seq, or the log has its seal already, further on than
		// what was read: a write that raced the first pass may have landed on a place its
		// deletes had freed, below the seal.
		if prior, err := r.Entry(ctx, tenantID, id, chat.SealID); err == nil {
			return sealed{seq: prior.Seq, end: max(prior.Seq, last.Seq+1)}, nil
		} else if !errors.Is(err, chat.ErrNotFound) {
			return sealed{}, err
		}
	}
	return sealed{}, errSealRace
}

// logEnd returns the last entry of a conversation's log, or nil: from its view onwards by
// the entries' ids when it has a view (the look-ups every server answers from an index), else
// by the greatest Seq.
func logEnd(ctx context.Context, r Records, tenantID, id string) (*chat.Entry, error) {
	v, err := r.View(ctx, tenantID, id)
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		return nil, err
	}
	if v != nil && v.Seq > 0 {
		// From the view's own entry on; a log being erased may have lost it already.
		newer, err := r.EntriesAfter(ctx, tenantID, id, v.Seq-1)
		if err != nil {
			return nil, err
		}
		if len(newer) > 0 {
			return &newer[len(newer)-1], nil
		}
	}
	return r.LastEntry(ctx, tenantID, id)
}

// eraseConversations seals and deletes conversations of one tenant, with what MongoDB keeps
// of them: idempotency records, webhook deliveries, views, log entries and pending marks. keep,
// when not nil, spares a conversation whose state at its log's end it approves (retention
// erases only what is still resolved and old at its seal). forget, when not nil, erases what
// Redis holds of the conversations. It returns the counts and the ids it erased.
//
// What names the conversations elsewhere goes first, while their views and logs still find
// them: an erasure that stops midway (a replica that dies) leaves every conversation it has
// not finished to be found again by the next attempt; one it has finished has nothing left but
// its seal.
func eraseConversations(ctx context.Context, r Records, tenantID string, ids []string, now time.Time, keep func(chat.State) bool, forget func([]string) (Counts, error)) (Counts, []string, error) {
	var c Counts
	var erased []string
	var logs []sealed
	for _, id := range ids {
		s, err := seal(ctx, r, tenantID, id, now, keep)
		if err != nil {
			return c, nil, fmt.Errorf("seal conversation: %w", err)
		}
		if s.seq == 0 && keep != nil {
			continue // spared
		}
		if s.added {
			c.Conversations++
		}
		erased = append(erased, id)
		logs = append(logs, s)
	}
	if len(erased) == 0 {
		return c, nil, nil
	}
	n, err := r.DeleteIdempotencyOf(ctx, tenantID, erased)
	c.Idempotency += n
	if err != nil {
		return c, nil, err
	}
	n, err = r.DeleteDeliveriesOf(ctx, tenantID, erased)
	c.Deliveries += n
	if err != nil {
		return c, nil, err
	}
	if forget != nil {
		f, err := forget(erased)
		c.Add(f)
		if err != nil {
			return c, nil, err
		}
	}
	// The views go before the logs: from then on readers and writers rebuild a conversation
	// from its log, which ends with the seal, and find it erased.
	if _, err := r.DeleteViews(ctx, tenantID, erased); err != nil {
		return c, nil, err
	}
	for i, s := range logs {
		if s.seq == 0 {
			continue
		}
		n, m, err := r.DeleteLog(ctx, tenantID, erased[i], s.end)
		c.Entries += n
		c.Messages += m
		if err != nil {
			return c, nil, err
		}
	}
	return c, erased, nil
}
