package webhook

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/netguard"
)

// Workers turn the record's changes into deliveries and send them, on every replica:
//
//   - the fan-out takes up the changes of the sources (the conversation log, the support
//     transitions) and stores one delivery per subscribed endpoint, then clears the changes'
//     marks. It runs on one replica at a time (a lease), and a pass that dies midway is done
//     again: deliveries have ids made of their endpoint and event, so none is stored twice.
//   - the sender polls the queue and works each endpoint with due deliveries on one replica
//     at a time (a lease per endpoint, renewed before every request, taken over by another
//     replica once its holder stops renewing). It sends an endpoint's deliveries one at a
//     time in event order; a delivery that fails holds the endpoint's later ones back until
//     its retry, so they reach the receiver in order once it recovers.
//
// A slow or dead endpoint occupies only its own worker: endpoints are worked concurrently, a
// tenant at most perTenant of them at once on a replica.
type Workers struct {
	store    Store
	sources  []Source
	render   func(chat.Event) (json.RawMessage, error)
	lease    Lease
	obs      Observer
	log      *slog.Logger
	now      func() time.Time
	strict   *http.Client // https: public addresses and the allowed networks
	within   *http.Client // plain http: the allowed networks only
	timeout  time.Duration
	schedule []time.Duration
	poll     time.Duration
	leaseTTL time.Duration
	keep     time.Duration

	mu      sync.Mutex
	running map[string]bool // endpoints this replica works now
	tenants map[string]int  // how many per tenant
	wg      sync.WaitGroup
}

// Options configure Workers; zero values take the defaults.
type Options struct {
	Store   Store
	Sources []Source
	// Render returns the data of an event as the tenant's admins see it (the event
	// stream's JSON).
	Render   func(chat.Event) (json.RawMessage, error)
	Lease    Lease
	Observer Observer
	Logger   *slog.Logger
	// Now is the clock of the schedule (time.Now).
	Now func() time.Time
	// Allowed are the networks beyond the public internet receivers may be in
	// (CHAT_WEBHOOK_ALLOWED_NETWORKS); plain http reaches only those.
	Allowed []netip.Prefix
	// Transport wraps the checked transports (tracing); nil leaves them as they are.
	Transport func(http.RoundTripper) http.RoundTripper
	// Timeout bounds one request (DefaultTimeout).
	Timeout time.Duration
	// Schedule is the wait before each retry (DefaultSchedule); tests shorten it.
	Schedule []time.Duration
	// Poll is how often the queue and the sources are read (DefaultPoll).
	Poll time.Duration
	// LeaseTTL is how long a replica that stopped keeps an endpoint (Timeout + 5s).
	LeaseTTL time.Duration
	// Keep is how long delivered and dead deliveries are kept (DefaultKeep).
	Keep time.Duration
}

// Defaults of Options.
const (
	DefaultTimeout = 10 * time.Second
	DefaultPoll    = 250 * time.Millisecond
	DefaultKeep    = 7 * 24 * time.Hour
)

// Bounds of the workers.
const (
	maxWorkers    = 64  // endpoints one replica works at once
	perTenant     = 4   // of them, of one tenant
	dueBatch      = 500 // queued deliveries one poll reads
	queueBatch    = 20  // queued deliveries of one endpoint one read takes
	fanOutBatch   = 500 // changes one fan-out pass takes up
	maxReadBody   = 64 << 10
	sweepEvery    = time.Hour
	sweepBatch    = 1000
	fanOutLeaseAt = 3 // poll intervals the fan-out's lease outlives its holder's last pass
)

// NewWorkers returns the workers of o.
func NewWorkers(o Options) *Workers {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if len(o.Schedule) == 0 {
		o.Schedule = DefaultSchedule
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = o.Timeout + 5*time.Second
	}
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	wrap := o.Transport
	if wrap == nil {
		wrap = func(rt http.RoundTripper) http.RoundTripper { return rt }
	}
	client := func(g *netguard.Guard) *http.Client {
		return &http.Client{
			Transport: wrap(g.Transport()),
			// Redirects are not followed: a receiver's 3xx ends the delivery, so a redirect
			// cannot lead a request to an address the check would have refused.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Workers{
		store: o.Store, sources: o.Sources, render: o.Render, lease: o.Lease, obs: o.Observer, log: o.Logger, now: o.Now,
		strict: client(netguard.New(o.Allowed)), within: client(netguard.NewWithin(o.Allowed)),
		timeout: o.Timeout, schedule: o.Schedule, poll: o.Poll, leaseTTL: o.LeaseTTL, keep: o.Keep,
		running: map[string]bool{}, tenants: map[string]int{},
	}
}

// Run fans out and sends until ctx ends, then waits for the requests in flight to end (their
// contexts end with ctx: an attempt cut short is not recorded, and the endpoint's lease lapses
// for another replica to take over).
func (w *Workers) Run(ctx context.Context) {
	defer w.wg.Wait()
	fanOut := time.NewTicker(w.poll)
	defer fanOut.Stop()
	poll := time.NewTicker(w.poll)
	defer poll.Stop()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-fanOut.C:
			if !w.take(ctx, "webhook-fanout", fanOutLeaseAt*w.poll) {
				continue
			}
			n, err := w.FanOut(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.WarnContext(ctx, "webhook fan-out", "error", err)
			}
			if n > 0 {
				w.Poll(ctx) // send at once
			}
		case <-poll.C:
			w.Poll(ctx)
		case <-sweep.C:
			if !w.take(ctx, "webhook-sweep", sweepEvery/2) {
				continue
			}
			if n, err := w.store.SweepDeliveries(ctx, w.now().Add(-w.keep), sweepBatch); err != nil {
				w.log.WarnContext(ctx, "sweeping old webhook deliveries", "error", err)
			} else if n > 0 {
				w.log.InfoContext(ctx, "old webhook deliveries deleted", "count", n)
			}
		}
	}
}

// take asks the lease for a turn; without a lease every replica takes every turn.
func (w *Workers) take(ctx context.Context, name string, ttl time.Duration) bool {
	return w.lease == nil || w.lease.Take(ctx, name, ttl)
}

// FanOut takes up the changes of every source: it stores a delivery for each event of each
// change and each enabled endpoint of its tenant subscribed to the event's type and created
// before it, then clears the changes' marks. It returns how many deliveries it stored.
func (w *Workers) FanOut(ctx context.Context) (int, error) {
	total := 0
	for _, src := range w.sources {
		recs, err := src.Hooked(ctx, fanOutBatch)
		if err != nil {
			return total, err
		}
		if len(recs) == 0 {
			continue
		}
		endpoints := map[string][]Endpoint{}
		var ds []Delivery
		marks := make([]string, 0, len(recs))
		for _, r := range recs {
			ok := true
			for i, ev := range r.Events {
				eps, found := endpoints[ev.TenantID]
				if !found {
					if eps, err = w.store.Endpoints(ctx, ev.TenantID); err != nil {
						return total, err
					}
					endpoints[ev.TenantID] = eps
				}
				for _, ep := range eps {
					if !ep.Enabled || !ep.Subscribes(ev.Type) || ev.At.Before(ep.CreatedAt) {
						continue
					}
					d, err := w.delivery(&ep, ev, i)
					if err != nil {
						w.log.ErrorContext(ctx, "webhook event not rendered", "tenant", ev.TenantID, "event", ev.ID, "error", err)
						ok = false
						continue
					}
					ds = append(ds, d)
				}
			}
			if ok {
				marks = append(marks, r.Mark)
			}
		}
		// In event order, so that a sender reading the queue meanwhile never sees a delivery
		// of an endpoint without the earlier ones of this pass.
		slices.SortStableFunc(ds, func(a, b Delivery) int { return cmp.Compare(a.Order, b.Order) })
		if err := w.store.AddDeliveries(ctx, ds); err != nil {
			return total, err
		}
		if w.obs != nil {
			w.obs.WebhookFannedOut(len(ds))
		}
		total += len(ds)
		if err := src.Unhook(ctx, marks); err != nil {
			return total, err
		}
	}
	return total, nil
}

// payload is the body of a delivery (PRODUCT.md).
type payload struct {
	Type      chat.EventType  `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// delivery returns the delivery of event ev, the i-th of its change, to endpoint ep. Its id
// is a function of the endpoint and the event, so a fan-out done twice stores it once.
func (w *Workers) delivery(ep *Endpoint, ev chat.Event, i int) (Delivery, error) {
	data, err := w.render(ev)
	if err != nil {
		return Delivery{}, err
	}
	body, err := json.Marshal(payload{Type: ev.Type, Timestamp: ev.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Data: data})
	if err != nil {
		return Delivery{}, err
	}
	sum := sha256.Sum256([]byte(ep.ID + "|" + ev.ID))
	now := w.now().UTC().Truncate(time.Millisecond)
	return Delivery{
		ID: "msg_" + hex.EncodeToString(sum[:16]), TenantID: ep.TenantID, EndpointID: ep.ID, EventID: ev.ID, Type: ev.Type,
		Body: body, Order: fmt.Sprintf("%013d|%s|%012d|%d", ev.At.UnixMilli(), ev.ConversationID, ev.Seq, i),
		State: Pending, CreatedAt: now, NextAt: now, Since: now,
	}, nil
}

// Poll reads the queue and starts a worker for each endpoint with due deliveries that this
// replica may work: not worked here already, its tenant below perTenant workers here, this
// replica below maxWorkers, and the endpoint's lease taken.
func (w *Workers) Poll(ctx context.Context) {
	now := w.now()
	due, err := w.store.Due(ctx, now, dueBatch)
	if err != nil {
		if ctx.Err() == nil {
			w.log.WarnContext(ctx, "webhook queue not read", "error", err)
		}
		return
	}
	if w.obs != nil {
		var late time.Duration
		if len(due) > 0 {
			late = max(0, now.Sub(due[0].NextAt))
		}
		w.obs.WebhookQueue(len(due), late)
	}
	seen := map[string]bool{}
	for _, q := range due {
		if seen[q.EndpointID] {
			continue
		}
		seen[q.EndpointID] = true
		if !w.claim(q.TenantID, q.EndpointID) {
			continue
		}
		if !w.take(ctx, leaseName(q.EndpointID), w.leaseTTL) {
			w.release(q.TenantID, q.EndpointID)
			continue
		}
		w.wg.Go(func() {
			defer w.release(q.TenantID, q.EndpointID)
			w.work(ctx, q.TenantID, q.EndpointID)
		})
	}
}

func leaseName(endpointID string) string { return "webhook:" + endpointID }

// claim reserves a worker slot of this replica for an endpoint.
func (w *Workers) claim(tenantID, endpointID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running[endpointID] || len(w.running) >= maxWorkers || w.tenants[tenantID] >= perTenant {
		return false
	}
	w.running[endpointID] = true
	w.tenants[tenantID]++
	return true
}

func (w *Workers) release(tenantID, endpointID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.running, endpointID)
	if w.tenants[tenantID]--; w.tenants[tenantID] <= 0 {
		delete(w.tenants, tenantID)
	}
}
