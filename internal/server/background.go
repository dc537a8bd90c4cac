package server

import (
	"context"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"
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

// indexRetryInterval is how often the indexes are built again until MongoDB answers.
const indexRetryInterval = 5 * time.Second

// Loop is one of the service's background jobs.
type Loop struct {
	// Name says what it does, in tests and logs.
	Name string
	// Run does it until ctx ends.
	Run func(ctx context.Context)
}

// Loops returns the service's background jobs, each independent of the others:
//   - "tenant watch" reloads the tenant files when they change;
//   - "tenant reload on SIGHUP" reloads them when the process is told to;
//   - "log relay" finishes the log's pending entries (convlog.Log.Run);
//   - "indexes" builds the MongoDB indexes, again until it succeeds;
//   - "idempotency expiry" deletes expired Idempotency-Key records and audit entries where
//     MongoDB has no TTL indexes (FerretDB);
//   - "lost events" tells event streams to resync after events that could not be published;
//   - "presence sweep" marks admins offline whose heartbeats stopped;
//   - "support clock" announces support blocks that change with the clock or a tenant file;
//   - "erasures" takes up the erasures of customers, a job at a time on one replica;
//   - "retention" erases resolved conversations past their tenant's retention, on one replica;
//   - "webhooks" delivers webhook events (unless Options.Webhooks.Off).
func (s *Service) Loops() []Loop {
	loops := []Loop{
		{"tenant watch", s.watchTenants},
		{"tenant reload on SIGHUP", s.reloadOnSignal},
		{"log relay", s.Log.Run},
		{"indexes", s.buildIndexes},
		{"idempotency expiry", s.expireIdempotency},
		{"lost events", s.resyncLostEvents},
		{"presence sweep", s.sweepPresence},
		{"support clock", s.runSupportClock},
		{"erasures", s.Eraser.Run},
		{"retention", s.Retention.Run},
	}
	if s.hooks != nil {
		loops = append(loops, Loop{"webhooks", s.hooks.Run})
	}
	return loops
}

// start runs each of loops in a goroutine of its own until ctx ends, and returns a function
// that waits until all have returned.
func (s *Service) start(ctx context.Context, loops []Loop) (wait func()) {
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Go(func() { l.Run(ctx) })
	}
	return wg.Wait
}

// watchTenants reloads the tenant files whenever they change.
func (s *Service) watchTenants(ctx context.Context) {
	if err := s.Tenants.Watch(ctx); err != nil {
		s.Logger.Error("tenant watch stopped; SIGHUP still reloads", "error", err)
	}
}

// reloadOnSignal reloads the tenant files on every SIGHUP (Options.Signals, or the process's
// own when that is nil).
func (s *Service) reloadOnSignal(ctx context.Context) {
	signals := s.signals
	if signals == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		signals = ch
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
			res := s.Tenants.Reload()
			s.Logger.Info("tenants reloaded on SIGHUP", "loaded", res.Loaded, "invalid", len(res.Invalid))
		}
	}
}

// buildIndexes builds the MongoDB indexes, every indexRetryInterval until it succeeds; the
// service keeps running (and /readyz answers unready) while MongoDB is unreachable.
func (s *Service) buildIndexes(ctx context.Context) {
	retry := time.NewTicker(indexRetryInterval)
	defer retry.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.DB.EnsureIndexes(ictx)
		cancel()
		if err == nil {
			s.indexed.Store(true)
			return
		}
		s.Logger.Warn("mongodb indexes not ensured yet; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

// expireIdempotency deletes expired Idempotency-Key records every idempotencySweepInterval,
// at most idempotencySweepBatch at a time, on servers without TTL indexes, once the indexes
// are built.
func (s *Service) expireIdempotency(ctx context.Context) {
	every(ctx, idempotencySweepInterval, func() {
		if !s.indexed.Load() || !s.DB.NeedsSweep() {
			return
		}
		if n, err := s.Store.SweepIdempotency(ctx, time.Now(), idempotencySweepBatch); err != nil {
			s.Logger.Warn("sweeping expired idempotency records", "error", err)
		} else if n > 0 {
			s.Logger.Debug("expired idempotency records deleted", "count", n)
		}
		if n, err := s.Store.SweepAudit(ctx, time.Now()); err != nil {
			s.Logger.Warn("sweeping expired audit entries", "error", err)
		} else if n > 0 {
			s.Logger.Debug("expired audit entries deleted", "count", n)
		}
	})
}

// resyncLostEvents retries, every lostEventsInterval, the resync entries of events that could
// not be published (events.Bus.Flush).
func (s *Service) resyncLostEvents(ctx context.Context) {
	every(ctx, lostEventsInterval, func() {
		if n := s.bus.Flush(ctx); n > 0 {
			s.Logger.Info("event streams told to resync after lost events", "tenants", n)
		}
	})
}

// sweepPresence marks admins offline whose heartbeats stopped, every sixth of the presence TTL.
func (s *Service) sweepPresence(ctx context.Context) {
	every(ctx, sweepInterval(s.cfg.PresenceTTL), func() {
		if n, err := s.Chat.SweepPresence(ctx); err != nil {
			s.Logger.Debug("presence sweep", "error", err)
		} else if n > 0 {
			s.Logger.Info("admins lapsed offline", "count", n)
		}
	})
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// sweepInterval is how often lapsed admins are looked for: a fraction of the presence TTL.
func sweepInterval(ttl time.Duration) time.Duration {
	if d := ttl / 6; d > time.Second {
		return d
	}
	return time.Second
}

// runSupportClock runs the support clock until ctx ends, in a loop of its own so that many
// tenants due at once (a time zone's opening hour) hold up nothing else: the due sweep every
// supportSweepInterval, the reconcile pass every supportReconcileInterval (and at once), and
// the tenants whose files changed or were removed.
func (s *Service) runSupportClock(ctx context.Context) {
	log, tenants, changed, svc := s.Logger, s.Tenants, s.changed, s.Chat
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
