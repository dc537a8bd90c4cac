package chat

import (
	"context"

	"github.com/supportchat/supportchat/internal/tenant"
)

// supportBatch is how many due tenants one pass of SweepSupport computes at most, and how many
// tenants one round trip of ReconcileSupport looks up.
const supportBatch = 500

// announceSupport computes tenant t's support block now, with its settings read from the
// database, and tells its customers when it differs from what they were last told: the cached
// block is replaced and a support.changed event published, by exactly one replica however many
// compute the same change (see SupportClock). The tenant is scheduled to be computed again
// when its block may next change by itself. quietFirst leaves out the event when no state was
// recorded before (a replica starting, or Redis lost its data): there is no change to tell of.
func (s *Service) announceSupport(ctx context.Context, t *tenant.Tenant, quietFirst bool) (Support, error) {
	lock := ""
	if s.announcer != nil {
		var err error
		if lock, err = s.announcer.LockSupport(ctx, t.ID); err != nil {
			s.logger.WarnContext(ctx, "support computed without its lock", "tenant", t.ID, "error", err)
		}
	}
	at := s.clock() // before the reads: a state computed from them is at least this recent
	s.overrides.forget(t.ID)
	sup, err := s.support(tenant.NewContext(ctx, t), t)
	if err != nil {
		if s.announcer != nil {
			s.announcer.UnlockSupport(ctx, t.ID, lock)
		}
		return sup, err
	}
	tell := true
	if s.announcer != nil {
		a, err := s.announcer.AnnounceSupport(ctx, t.ID, lock, at, sup.announced(), sup.Until)
		switch {
		case err != nil:
			// Without the record every replica tells of what it computed: a repeat is better
			// than a change nobody hears of.
			s.logger.WarnContext(ctx, "support state not recorded", "tenant", t.ID, "error", err)
		case a == AnnouncedStale || a == AnnouncedSame:
			tell = false
		case a == AnnouncedFirst:
			tell = !quietFirst
		}
	}
	if tell {
		s.supportChanged(ctx, t.ID)
		s.publish(ctx, Event{Type: EventSupportChanged, TenantID: t.ID, At: at, Support: &sup})
	}
	return sup, nil
}

// SweepSupport computes the support of the tenants whose block is due to change by itself
// now (business hours open or close, an admin's status lapses), announcing each change once
// across replicas. It returns how many tenants it computed.
func (s *Service) SweepSupport(ctx context.Context) (int, error) {
	if s.announcer == nil {
		return 0, nil
	}
	ids, err := s.announcer.ClaimDueSupport(ctx, s.clock(), supportBatch)
	if err != nil {
		return 0, err
	}
	s.announceTenants(ctx, ids, false)
	return len(ids), nil
}

// ReconcileSupport computes the support of the tenants of ids that have nothing scheduled: new
// ones, and all of them after Redis lost its data. It returns how many it computed.
func (s *Service) ReconcileSupport(ctx context.Context, ids []string) (int, error) {
	if s.announcer == nil {
		return 0, nil
	}
	n := 0
	for start := 0; start < len(ids); start += supportBatch {
		missing, err := s.announcer.UnscheduledSupport(ctx, ids[start:min(start+supportBatch, len(ids))])
		if err != nil {
			return n, err
		}
		s.announceTenants(ctx, missing, true)
		n += len(missing)
	}
	return n, nil
}

// TenantsChanged replaces the cached support blocks of the tenants of ids, whose files
// changed, and announces the blocks that changed with them.
func (s *Service) TenantsChanged(ctx context.Context, ids []string) {
	for _, id := range ids {
		s.supportChanged(ctx, id)
	}
	s.announceTenants(ctx, ids, true)
}

// announceTenants announces the support of each tenant of ids still loaded.
func (s *Service) announceTenants(ctx context.Context, ids []string, quietFirst bool) {
	for _, id := range ids {
		t, err := s.tenants.Get(id)
		if err != nil {
			continue // removed meanwhile
		}
		if _, err := s.announceSupport(ctx, t, quietFirst); err != nil {
			s.logger.WarnContext(ctx, "support not computed", "tenant", id, "error", err)
		}
	}
}
