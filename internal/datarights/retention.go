package datarights

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// Retention: a tenant that keeps resolved conversations N days (chat.retention) has those
// resolved longer ago erased by a sweeper, on one replica at a time, at a bounded rate. A
// conversation is erased as an erasure's are (sealed, then deleted with its events, cached
// pages, idempotency records and webhook deliveries), and only if its log, at the seal, still
// says it is resolved and unchanged since before the cut-off: a customer who writes to it just
// then reopens it, and it stays.

// Defaults of the sweeper.
const (
	// DefaultRetentionInterval is how often the sweeper runs.
	DefaultRetentionInterval = time.Minute
	// DefaultRetentionRate bounds the conversations it erases per second.
	DefaultRetentionRate = 20
	// retentionBatch is how many conversations one step reads and erases.
	retentionBatch = 50
)

// RetentionRecords are the Records retention erases from, and its query.
type RetentionRecords interface {
	Records
	// ResolvedBefore returns up to limit conversations of the tenant resolved, and unchanged
	// since, before before, the oldest first.
	ResolvedBefore(ctx context.Context, tenantID string, before time.Time, limit int) ([]*chat.Conversation, error)
}

// Policy says how long a tenant keeps resolved conversations (*chat.Service).
type Policy interface {
	// Retention returns the tenant's effective retention in days; 0 keeps them forever.
	Retention(ctx context.Context, t *tenant.Tenant) (int, error)
}

// SweeperDeps are what a Sweeper is made of.
type SweeperDeps struct {
	Records RetentionRecords
	Events  Events
	Caches  Caches
	// Lease gives the sweeps to one replica at a time; nil: every replica sweeps.
	Lease   Lease
	Tenants func() []*tenant.Tenant
	Policy  Policy
	// Audit records every sweep that erased something; it may be nil.
	Audit    Trail
	Observer Observer
	Now      func() time.Time
	Logger   *slog.Logger
	// Interval is how often Run sweeps (DefaultRetentionInterval when zero); Rate the most
	// conversations erased per second (DefaultRetentionRate when zero).
	Interval time.Duration
	Rate     int
}

// Sweeper erases resolved conversations past their tenant's retention.
type Sweeper struct{ d SweeperDeps }

// NewSweeper returns the Sweeper of d.
func NewSweeper(d SweeperDeps) *Sweeper {
	if d.Interval <= 0 {
		d.Interval = DefaultRetentionInterval
	}
	if d.Rate <= 0 {
		d.Rate = DefaultRetentionRate
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{d: d}
}

// retentionLease names the sweeper's lease.
const retentionLease = "retention"

// Run sweeps every Interval until ctx ends, when this replica holds the lease.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.d.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.take(ctx) {
			if s.d.Observer != nil {
				s.d.Observer.RetentionOverdue(0) // the lease holder reports
			}
			continue
		}
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.d.Logger.WarnContext(ctx, "retention: will try again", "error", err)
		}
	}
}

// take takes, or keeps, the sweeper's lease.
func (s *Sweeper) take(ctx context.Context) bool {
	return s.d.Lease == nil || s.d.Lease.Take(ctx, retentionLease, 3*s.d.Interval)
}

// Sweep erases, for every tenant with a retention, the conversations resolved before its
// cut-off, and reports how far behind it is left. It returns what it erased.
func (s *Sweeper) Sweep(ctx context.Context) (Counts, error) {
	var total Counts
	var overdue time.Duration
	var errs []error
	for _, t := range s.d.Tenants() {
		days, err := s.d.Policy.Retention(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if days == 0 {
			continue
		}
		cutoff := s.d.Now().UTC().Add(-time.Duration(days) * 24 * time.Hour)
		c, left, err := s.sweepTenant(ctx, t.ID, cutoff)
		total.Add(c)
		overdue = max(overdue, left)
		if err != nil {
			errs = append(errs, err)
		}
		if c.Conversations > 0 {
			if s.d.Observer != nil {
				s.d.Observer.Erased("retention", c.Conversations, c.Messages)
			}
			s.record(ctx, t.ID, days, c)
		}
	}
	if s.d.Observer != nil {
		s.d.Observer.RetentionOverdue(overdue)
	}
	return total, errors.Join(errs...)
}

// sweepTenant erases the tenant's conversations resolved before cutoff, a batch at a time at
// the sweeper's rate, and returns what it erased and how long past the cut-off the oldest
// one it left is (0: none).
func (s *Sweeper) sweepTenant(ctx context.Context, tenantID string, cutoff time.Time) (Counts, time.Duration, error) {
	var total Counts
	spared := map[string]bool{}
	keep := func(st chat.State) bool {
		return st.Status != chat.StatusResolved || !st.UpdatedAt.Before(cutoff)
	}
	for ctx.Err() == nil && s.take(ctx) {
		convs, err := s.d.Records.ResolvedBefore(ctx, tenantID, cutoff, retentionBatch+len(spared))
		if err != nil {
			return total, 0, err
		}
		convs = slices.DeleteFunc(convs, func(c *chat.Conversation) bool { return spared[c.ID] })
		if len(convs) == 0 {
			break
		}
		convs = convs[:min(len(convs), retentionBatch)]
		ids := make([]string, len(convs))
		for i, c := range convs {
			ids[i] = c.ID
		}
		started := time.Now()
		c, erased, err := eraseConversations(ctx, s.d.Records, tenantID, ids, s.d.Now().UTC().Truncate(time.Millisecond), keep,
			func(erased []string) (Counts, error) { return s.forget(ctx, tenantID, convs, erased) })
		total.Add(c)
		if err != nil {
			return total, 0, err
		}
		for _, id := range ids {
			spared[id] = !slices.Contains(erased, id)
		}
		// The rate: a batch of n conversations takes at least n/Rate seconds.
		pause(ctx, time.Duration(len(ids))*time.Second/time.Duration(s.d.Rate)-time.Since(started))
	}
	left, err := s.d.Records.ResolvedBefore(ctx, tenantID, cutoff, len(spared)+1)
	if err != nil {
		return total, 0, err
	}
	for _, c := range left {
		if !spared[c.ID] {
			return total, cutoff.Sub(c.UpdatedAt), nil
		}
	}
	return total, 0, nil
}

// forget erases what Redis holds of the erased conversations: their events in the tenant's
// stream, and the cached pages of their customers and of the admins.
func (s *Sweeper) forget(ctx context.Context, tenantID string, convs []*chat.Conversation, erased []string) (Counts, error) {
	var c Counts
	byCustomer := map[string][]string{}
	for _, conv := range convs {
		if slices.Contains(erased, conv.ID) {
			byCustomer[conv.Customer.ID] = append(byCustomer[conv.Customer.ID], conv.ID)
		}
	}
	if len(byCustomer) == 0 {
		return c, nil
	}
	customers := make([]string, 0, len(byCustomer))
	for customer, ids := range byCustomer {
		n, err := s.d.Events.EraseEvents(ctx, tenantID, customer, ids)
		c.Events += n
		if err != nil {
			return c, err
		}
		customers = append(customers, customer)
	}
	n, err := s.d.Caches.Forget(ctx, tenantID, customers, false)
	c.RedisKeys += n
	return c, err
}

// record adds a sweep that erased c to the tenant's audit trail.
func (s *Sweeper) record(ctx context.Context, tenantID string, days int, c Counts) {
	if s.d.Audit == nil {
		return
	}
	counts := c.Map()
	counts["resolved_after_days"] = int64(days)
	err := s.d.Audit.Record(ctx, audit.Entry{TenantID: tenantID, Actor: audit.Actor{ID: "retention", Role: string(chat.RoleSystem)},
		Action: audit.RetentionRun, Counts: counts})
	if err != nil {
		s.d.Logger.WarnContext(ctx, "audit record not stored", "tenant", tenantID, "action", audit.RetentionRun, "error", err)
	}
}
