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
func background(ctx context.Context, log *slog.Logger, cfg config.Config, db *mongodb.DB, tenants *tenant.Registry, changed *tenantChanges, svc *chat.Service, convs *convlog.Log, bus *events.Bus, signals <-chan os.Signal) {
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
	clockDone := make(chan struct{})
	go func() {
		defer close(clockDone)
		supportClock(ctx, log, tenants, changed, svc)
	}()
	defer func() { <-clockDone }()
	for {
		select {
		case <-ctx.Done():
			return
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

// supportClock runs the support clock until ctx ends, in a goroutine of its own so that many
// tenants due at once (a time zone's opening hour) hold up nothing else: the due sweep every
// supportSweepInterval, the reconcile pass every supportReconcileInterval (and at once), and
// the tenants whose files changed or were removed.
func supportClock(ctx context.Context, log *slog.Logger, tenants *tenant.Registry, changed *tenantChanges, svc *chat.Service) {
	due := time.NewTicker(supportSweepInterval)
	defer due.Stop()
	reconcile := time.NewTimer(0)
	defer reconcile.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed.ready():
			replaced, removed := changed.take()
			svc.TenantsChanged(ctx, replaced)
			if err := svc.TenantsRemoved(ctx, removed); err != nil {
				log.Debug("support schedules of removed tenants", "error", err)
			}
		case <-due.C:
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
		}
	}
}

// tenantChanges collects the tenants the registry's reload hook reports changed or removed,
// for the support clock; the hook runs inside Reload and must not wait.
type tenantChanges struct {
	mu             sync.Mutex
	replaced, gone map[string]struct{}
	signal         chan struct{}
}

func newTenantChanges() *tenantChanges {
	return &tenantChanges{replaced: map[string]struct{}{}, gone: map[string]struct{}{}, signal: make(chan struct{}, 1)}
}

// add records a reload's changed and removed tenants.
func (s *tenantChanges) add(changed, removed []string) {
	if len(changed)+len(removed) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range changed {
		s.replaced[id] = struct{}{}
		delete(s.gone, id)
	}
	for _, id := range removed {
		s.gone[id] = struct{}{}
		delete(s.replaced, id)
	}
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// ready is ready to receive once tenants were added since the last take.
func (s *tenantChanges) ready() <-chan struct{} { return s.signal }

// take returns the changed and the removed tenants added since the last take, sorted, and
// forgets them.
func (s *tenantChanges) take() (changed, removed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed, removed = slices.Sorted(maps.Keys(s.replaced)), slices.Sorted(maps.Keys(s.gone))
	clear(s.replaced)
	clear(s.gone)
	return changed, removed
}
