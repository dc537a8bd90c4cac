package server

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/tenant"
)

// Sweeping expired idempotency records on servers without TTL indexes: how often, and how
// many records one sweep deletes at most.
const (
	idempotencySweepInterval = time.Minute
	idempotencySweepBatch    = 1000
)

// The support clock: how often the tenants whose support block is due to change by itself are
// looked for (the changes are announced within 1 s: docs/EVENTS.md), and how often each
// replica looks for tenants that have nothing scheduled (new ones, or after Redis lost its data).
const (
	supportSweepInterval     = 250 * time.Millisecond
	supportReconcileInterval = 30 * time.Second
)

// lostEventsInterval is how often resync entries for events that could not be published are
// retried (see events.Bus.Flush).
const lostEventsInterval = 2 * time.Second

// background runs the service's housekeeping until ctx ends: the log's relay of pending
// entries, the resync of lost events, index builds until they succeed, the tenant file watch,
// SIGHUP reloads, the support clock (with the tenants whose files changed), the presence
// sweep, and the sweep of expired idempotency records where the server has no TTL indexes.
func background(ctx context.Context, log *slog.Logger, cfg config.Config, db *mongodb.DB, tenants *tenant.Registry, changed *tenantSet, svc *chat.Service, convs *convlog.Log, bus *events.Bus, signals <-chan os.Signal) {
	if signals == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		signals = ch
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if err := tenants.Watch(ctx); err != nil {
			log.Error("tenant watch stopped; SIGHUP still reloads", "error", err)
		}
	}()
	defer func() { <-watchDone }()
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		convs.Run(ctx)
	}()
	defer func() { <-relayDone }()

	indexed := ensureIndexes(ctx, log, db)
	sweep := time.NewTicker(sweepInterval(cfg.PresenceTTL))
	defer sweep.Stop()
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	expired := time.NewTicker(idempotencySweepInterval)
	defer expired.Stop()
	lostEvents := time.NewTicker(lostEventsInterval)
	defer lostEvents.Stop()
	supportDue := time.NewTicker(supportSweepInterval)
	defer supportDue.Stop()
	reconcile := time.NewTimer(0)
	defer reconcile.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed.ready():
			svc.TenantsChanged(ctx, changed.take())
		case <-supportDue.C:
			if _, err := svc.SweepSupport(ctx); err != nil {
				log.Debug("support clock", "error", err)
			}
		case <-reconcile.C:
			reconcile.Reset(supportReconcileInterval)
			ids := make([]string, 0, tenants.Status().Loaded)
			for _, t := range tenants.All() {
				ids = append(ids, t.ID)
			}
			if n, err := svc.ReconcileSupport(ctx, ids); err != nil {
				log.Debug("support clock reconcile", "error", err)
			} else if n > 0 {
				log.Debug("support scheduled", "tenants", n)
			}
		case <-signals:
			res := tenants.Reload()
			log.Info("tenants reloaded on SIGHUP", "loaded", res.Loaded, "invalid", len(res.Invalid))
		case <-retry.C:
			if !indexed {
				indexed = ensureIndexes(ctx, log, db)
			}
		case <-expired.C:
			if !indexed || !db.NeedsSweep() {
				continue
			}
			if n, err := db.Store().SweepIdempotency(ctx, time.Now(), idempotencySweepBatch); err != nil {
				log.Warn("sweeping expired idempotency records", "error", err)
			} else if n > 0 {
				log.Debug("expired idempotency records deleted", "count", n)
			}
		case <-lostEvents.C:
			if n := bus.Flush(ctx); n > 0 {
				log.Info("event streams told to resync after lost events", "tenants", n)
			}
		case <-sweep.C:
			if n, err := svc.SweepPresence(ctx); err != nil {
				log.Debug("presence sweep", "error", err)
			} else if n > 0 {
				log.Info("admins lapsed offline", "count", n)
			}
		}
	}
}

// ensureIndexes builds the MongoDB indexes, reporting whether it succeeded; the service keeps
// running (and unready answers come from /readyz) while MongoDB is unreachable.
func ensureIndexes(ctx context.Context, log *slog.Logger, db *mongodb.DB) bool {
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.EnsureIndexes(ictx); err != nil {
		log.Warn("mongodb indexes not ensured yet; retrying", "error", err)
		return false
	}
	return true
}

// sweepInterval is how often lapsed admins are looked for: a fraction of the presence TTL.
func sweepInterval(ttl time.Duration) time.Duration {
	if d := ttl / 6; d > time.Second {
		return d
	}
	return time.Second
}

// tenantSet collects tenant ids from the registry's reload hook for the background loop, which
// must not be blocked: the hook runs inside Reload.
type tenantSet struct {
	mu     sync.Mutex
	ids    map[string]struct{}
	signal chan struct{}
}

func newTenantSet() *tenantSet {
	return &tenantSet{ids: map[string]struct{}{}, signal: make(chan struct{}, 1)}
}

func (s *tenantSet) add(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		s.ids[id] = struct{}{}
	}
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// ready is ready to receive once ids were added since the last take.
func (s *tenantSet) ready() <-chan struct{} { return s.signal }

// take returns the ids added since the last take, sorted, and forgets them.
func (s *tenantSet) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Sorted(maps.Keys(s.ids))
	clear(s.ids)
	return ids
}
