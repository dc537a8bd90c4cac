package chat

import (
	"context"
	"sync"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// The support clock's bounds: how many due tenants one claim takes, how many tenants are
// computed at once, how many tenants one round trip of ReconcileSupport looks up, how long one
// computation may take, and how soon a computation that failed is tried again.
const (
	supportClaimBatch   = 50
	supportWorkers      = 8
	supportLookupBatch  = 500
	supportTimeout      = 5 * time.Second
	supportRetryBackoff = time.Second
)

// announceSupport computes tenant t's support block now, with its settings read from the
// database, and tells its customers when it differs from what they were last told: the cached
// block is replaced and a support.changed event published, by exactly one replica however many
// compute the same change (see SupportClock). The tenant is scheduled to be computed again
// when its block may next change by itself. quietFirst leaves out the event when no state was
// recorded before (a replica starting, or Redis lost its data): there is no change to tell of.
//
// It runs to its end even when ctx is cancelled (a presence call whose client left: the status
// is stored, its announcement must follow). When presence cannot be read, nothing is announced
// (an outage is not "nobody online") and the tenant is computed again a second later.
func (s *Service) announceSupport(ctx context.Context, t *tenant.Tenant, quietFirst bool) (Support, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), supportTimeout)
	defer cancel()
	lock, seq, err := s.announcer.LockSupport(ctx, t.ID)
	if err != nil {
		s.retrySupport(ctx, t.ID)
		return Support{}, &Error{Code: Unavailable, Message: "support status is unavailable right now", Err: err}
	}
	at := s.clock()
	settings, err := s.freshSettings(ctx, t)
	var p TeamPresence
	if err == nil {
		if p, err = s.presence.TeamPresence(ctx, t.ID); err != nil {
			err = &Error{Code: Unavailable, Message: "presence is unavailable right now", Err: err}
		}
	}
	if err != nil {
		s.announcer.UnlockSupport(ctx, t.ID, lock)
		s.retrySupport(ctx, t.ID)
		return Support{}, err
	}
	sup := s.supportWith(tenant.NewContext(ctx, t), t, settings, p)
	a, err := s.announcer.AnnounceSupport(ctx, t.ID, lock, seq, sup.announced(), sup.Until)
	if err != nil {
		s.logger.WarnContext(ctx, "support state not recorded", "tenant", t.ID, "error", err)
		s.retrySupport(ctx, t.ID)
		return sup, nil
	}
	if a == AnnouncedChange || a == AnnouncedFirst && !quietFirst {
		s.supportChanged(ctx, t.ID)
		s.publish(ctx, Event{Type: EventSupportChanged, TenantID: t.ID, At: at, Support: &sup})
		s.recordSupport(ctx, t.ID, seq, at, sup)
	}
	return sup, nil
}

// recordSupport records an announced change for webhooks, trying a few times: the replica
// that announced it is the one that records it (docs/WEBHOOKS.md says what a crash right here
// costs).
func (s *Service) recordSupport(ctx context.Context, tenantID string, seq int64, at time.Time, sup Support) {
	if s.supportLog == nil {
		return
	}
	var err error
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Duration(i) * 100 * time.Millisecond)
		}
		if err = s.supportLog.RecordSupportChange(ctx, tenantID, seq, at, sup); err == nil {
			return
		}
	}
	s.logger.ErrorContext(ctx, "support change not recorded for webhooks", "tenant", tenantID, "error", err)
}

// retrySupport schedules the tenant's support to be computed again soon, after a computation
// that failed; a failure to schedule leaves it to the reconcile pass.
func (s *Service) retrySupport(ctx context.Context, tenantID string) {
	due := float64(s.clock().Add(supportRetryBackoff).UnixMilli())
	if err := s.announcer.ScheduleSupport(ctx, tenantID, due); err != nil {
		s.logger.DebugContext(ctx, "support not rescheduled; the reconcile pass will", "tenant", tenantID, "error", err)
	}
}

// SweepSupport computes the support of the tenants whose block is due to change by itself
// now (business hours open or close, an admin's status lapses), announcing each change once
// across replicas, until none is due. It returns how many tenants it computed.
func (s *Service) SweepSupport(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		ids, err := s.announcer.ClaimDueSupport(ctx, s.clock(), supportClaimBatch)
		if err != nil {
			return n, err
		}
		s.announceTenants(ctx, ids, false)
		n += len(ids)
		if len(ids) < supportClaimBatch {
			break
		}
	}
	return n, nil
}

// ReconcileSupport computes the support of the tenants of ids that have nothing scheduled: new
// ones, and all of them after Redis lost its data. It returns how many it computed.
func (s *Service) ReconcileSupport(ctx context.Context, ids []string) (int, error) {
	n := 0
	for start := 0; start < len(ids); start += supportLookupBatch {
		missing, err := s.announcer.UnscheduledSupport(ctx, ids[start:min(start+supportLookupBatch, len(ids))])
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

// TenantsRemoved forgets the support schedules of the tenants of ids, whose files are gone.
func (s *Service) TenantsRemoved(ctx context.Context, ids []string) error {
	return s.announcer.UnscheduleSupport(ctx, ids)
}

// announceTenants announces the support of each tenant of ids still loaded, supportWorkers at
// a time.
func (s *Service) announceTenants(ctx context.Context, ids []string, quietFirst bool) {
	var wg sync.WaitGroup
	work := make(chan string)
	for range min(supportWorkers, len(ids)) {
		wg.Go(func() {
			for id := range work {
				t, err := s.tenants.Get(id)
				if err != nil {
					continue // removed meanwhile
				}
				if _, err := s.announceSupport(ctx, t, quietFirst); err != nil {
					s.logger.WarnContext(ctx, "support not computed; trying again shortly", "tenant", id, "error", err)
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}
