package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of Options.
const (
	defaultDebounce = 200 * time.Millisecond
	defaultResync   = 60 * time.Second
)

// Options configures a Registry. The zero value is usable.
type Options struct {
	// Logger receives reload outcomes; nil discards them.
	Logger *slog.Logger
	// Rewrite, when set, is applied to every newly parsed tenant before it is stored (chatd-dev
	// points issuers at local development issuers). It is not applied again to a tenant whose
	// file did not change.
	Rewrite func(*Tenant)
	// OnReload, when set, is called with the result of every reload (for metrics). It must
	// not call Reload.
	OnReload func(ReloadResult)
	// Debounce is how long Watch waits after a file event for more before it reloads;
	// default 200ms.
	Debounce time.Duration
	// Resync is how often Watch reloads anyway, as a safety net for missed events; default 60s.
	Resync time.Duration
	// Now is the clock of Status.LastReload; default time.Now.
	Now func() time.Time
}

// ReloadResult is the outcome of one Registry.Reload.
type ReloadResult struct {
	// Loaded is how many tenants the registry holds after the reload.
	Loaded int
	// Invalid holds one error per file that was not loaded as written (its *FileError values
	// joined): a tenant loaded before keeps its last good version.
	Invalid []error
	// Added, Changed and Removed are the tenant ids whose tenant appeared, was replaced by a
	// changed file or disappeared, sorted.
	Added, Changed, Removed []string
	// Err is set when the directory could not be read; the registry is then left as it was.
	Err error
}

// Status summarizes the registry for health checks.
type Status struct {
	Loaded int
	// Invalid is how many files the last reload could not load as written.
	Invalid int
	// LastReload is when the directory was last read successfully; zero before.
	LastReload time.Time
	// Ready reports whether at least one tenant is loaded.
	Ready bool
}

// Registry is the live set of tenants, loaded from the tenant files of a directory and
// reloaded when they change. Reads are lock-free: each reload swaps in a new immutable
// snapshot. The *Tenant values it returns are shared and must not be modified.
type Registry struct {
	dir  string
	opts Options
	log  *slog.Logger

	reloading sync.Mutex // serializes reloads
	snap      atomic.Pointer[snapshot]
}

// snapshot is one immutable state of the registry.
type snapshot struct {
	entries    map[string]entry // by tenant id
	byHost     map[string]*Tenant
	all        []*Tenant // sorted by id
	invalid    int
	lastReload time.Time
}

// NewRegistry returns an empty registry of the tenant files in dir; call Reload to load them
// and Watch to follow changes.
func NewRegistry(dir string, o Options) *Registry {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Debounce <= 0 {
		o.Debounce = defaultDebounce
	}
	if o.Resync <= 0 {
		o.Resync = defaultResync
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Registry{dir: dir, opts: o, log: o.Logger.With("dir", dir)}
	r.snap.Store(&snapshot{entries: map[string]entry{}, byHost: map[string]*Tenant{}})
	return r
}

// Get returns the tenant with id. Returns ErrNotFound when there is none.
func (r *Registry) Get(id string) (*Tenant, error) {
	e, ok := r.snap.Load().entries[id]
	if !ok {
		return nil, ErrNotFound
	}
	return e.tenant, nil
}

// ByHost returns the tenant that lists host (case-insensitive; a ":port" is ignored).
// Returns ErrNotFound when there is none.
func (r *Registry) ByHost(host string) (*Tenant, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	t, ok := r.snap.Load().byHost[host]
	if !ok {
		return nil, ErrNotFound
	}
	return t, nil
}

// All returns every tenant, sorted by id.
func (r *Registry) All() []*Tenant {
	return slices.Clone(r.snap.Load().all)
}

// Status returns how many tenants are loaded and when they were last reloaded.
func (r *Registry) Status() Status {
	s := r.snap.Load()
	return Status{Loaded: len(s.all), Invalid: s.invalid, LastReload: s.lastReload, Ready: len(s.all) > 0}
}

// Reload reads every tenant file of the directory again. A valid file replaces its tenant; an
// invalid file leaves the last good version of its tenant in place; a removed file removes its
// tenant; of two files claiming one host, the later in name order is invalid. An unreadable
// directory leaves everything as it was (ReloadResult.Err).
func (r *Registry) Reload() ReloadResult {
	r.reloading.Lock()
	defer r.reloading.Unlock()
	res := r.reload()
	if r.opts.OnReload != nil {
		r.opts.OnReload(res)
	}
	return res
}

// reload is Reload without the lock and the hook.
func (r *Registry) reload() ReloadResult {
	old := r.snap.Load()
	files, err := loadDir(r.dir)
	if err != nil {
		r.log.Error("tenants not reloaded; keeping the loaded ones", "error", err)
		return ReloadResult{Loaded: len(old.all), Err: err}
	}
	for i := range files {
		f := &files[i]
		if f.err != nil {
			continue
		}
		if prev, ok := old.entries[f.id]; ok && prev.sum == f.sum && prev.tenant.Source == f.path {
			f.entry = prev
		} else if r.opts.Rewrite != nil {
			r.opts.Rewrite(f.tenant)
		}
	}
	previous := func(id string) (entry, bool) {
		e, ok := old.entries[id]
		return e, ok
	}
	entries, invalid := assemble(files, previous)

	next := &snapshot{entries: entries, byHost: map[string]*Tenant{}, all: sortedTenants(entries), invalid: len(invalid), lastReload: r.opts.Now()}
	for _, t := range next.all {
		for _, h := range t.Hosts {
			next.byHost[strings.ToLower(h)] = t
		}
	}
	r.snap.Store(next)

	res := ReloadResult{Loaded: len(next.all), Invalid: invalid}
	for id, e := range entries {
		switch prev, ok := old.entries[id]; {
		case !ok:
			res.Added = append(res.Added, id)
		case prev.tenant != e.tenant:
			res.Changed = append(res.Changed, id)
		}
	}
	for id := range old.entries {
		if _, ok := entries[id]; !ok {
			res.Removed = append(res.Removed, id)
		}
	}
	slices.Sort(res.Added)
	slices.Sort(res.Changed)
	slices.Sort(res.Removed)
	r.logResult(res, entries)
	return res
}

// logResult logs each problem at error and the changes at info.
func (r *Registry) logResult(res ReloadResult, entries map[string]entry) {
	for _, err := range res.Invalid {
		for _, e := range flatten(err) {
			var fe *FileError
			served := false
			if errors.As(e, &fe) {
				_, served = entries[fileID(fe.File)]
			}
			r.log.Error("tenant file invalid", "error", e.Error(), "tenant_still_served", served)
		}
	}
	if len(res.Added)+len(res.Changed)+len(res.Removed) > 0 {
		r.log.Info("tenants reloaded", "loaded", res.Loaded, "added", res.Added, "changed", res.Changed, "removed", res.Removed, "invalid", len(res.Invalid))
	}
}

// Watch reloads the tenants whenever the directory changes (debounced by Options.Debounce)
// and every Options.Resync, until ctx is done; then it returns nil. It reloads once as soon as
// it watches, so nothing changed since the first Reload is missed. Events in the directory
// cover edits, new and removed files and the atomic ..data swap of a Kubernetes ConfigMap
// mount. Returns an error when the directory cannot be watched or the watcher fails.
func (r *Registry) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch tenants: %w", err)
	}
	defer func() { _ = w.Close() }() // a watcher that fails to close has nothing left to watch
	if err := w.Add(r.dir); err != nil {
		return fmt.Errorf("watch tenants dir %s: %w", r.dir, err)
	}
	// Changes made before the watch began raised no event.
	r.Reload()

	debounce := time.NewTimer(r.opts.Debounce)
	debounce.Stop()
	defer debounce.Stop()
	resync := time.NewTicker(r.opts.Resync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch tenants: watcher closed")
			}
			r.log.Debug("tenant dir event", "event", ev.String())
			debounce.Reset(r.opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch tenants: watcher closed")
			}
			// An overflow may have dropped events: reload soon to be sure.
			r.log.Warn("tenant dir watch", "error", err)
			debounce.Reset(r.opts.Debounce)
		case <-debounce.C:
			r.Reload()
		case <-resync.C:
			r.Reload()
		}
	}
}
