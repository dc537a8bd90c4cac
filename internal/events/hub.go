package events

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// Why a subscription ended.
var (
	// ErrSlow: the subscriber did not keep up and its buffer filled.
	ErrSlow = errors.New("subscriber too slow")
	// ErrBusLost: the tenant's stream could not be read (Redis is down, or was restarted).
	ErrBusLost = errors.New("event bus unavailable")
	// ErrClosed: the hub is shutting down.
	ErrClosed = errors.New("event hub closed")
)

// Hub fans the events of each tenant out to this replica's subscribers. It reads a tenant's
// stream with one blocking reader while the tenant has subscribers here, however many there
// are. The reader reads half a buffer at a time, and waits for a subscriber whose buffer has no
// room for what it read, so a burst or a backlog drops nobody who reads promptly. A subscriber
// is dropped that takes nothing for the patience (it stopped reading), or that stays behind
// for ten patiences (it cannot keep up, and holds back the tenant's other streams here).
type Hub struct {
	bus      *Bus
	log      *slog.Logger
	block    time.Duration
	buffer   int
	patience time.Duration

	mu      sync.Mutex
	closed  bool
	tenants map[string]*feed
}

// HubOptions tune a Hub; zero values take the defaults.
type HubOptions struct {
	// Buffer is how many events a subscriber may lag behind before it is dropped (default 256;
	// a pointer each, so an idle stream costs 2 KiB of buffer).
	Buffer int
	// Block is how long one read waits for new events (default 5s).
	Block time.Duration
	// Patience is how long a subscriber may hold up its tenant's reader without taking an
	// event, before it is dropped (default 1s); one that takes events but stays behind is
	// dropped after ten patiences.
	Patience time.Duration
	Logger   *slog.Logger
}

// NewHub returns a Hub reading from bus's streams.
func NewHub(bus *Bus, o HubOptions) *Hub {
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Block <= 0 {
		o.Block = 5 * time.Second
	}
	if o.Patience <= 0 {
		o.Patience = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{bus: bus, log: o.Logger, block: o.Block, buffer: o.Buffer, patience: o.Patience, tenants: make(map[string]*feed)}
}

// feed reads one tenant's stream for the subscribers of this replica.
type feed struct {
	tenantID string
	subs     map[*Subscription]struct{}
	stop     context.CancelFunc
	// pos is the id of the last event read (guarded by Hub.mu).
	pos string
}

// Subscription receives the events of one tenant from the position it started at.
type Subscription struct {
	// Start is the id of the newest event before the subscription: every later event is
	// delivered on C, in order, unless the subscription ends.
	Start string

	c    chan *Record
	done chan struct{}
	once sync.Once
	err  error
	hub  *Hub
	feed *feed
	// behind is when the subscription began to hold up the reader, which it has done at every
	// read since (it never had room for a whole read at once); zero while it keeps up. moved is
	// when it last took an event while the reader waited for it. Only the tenant's reader
	// uses them.
	behind, moved time.Time
}

// C delivers the events; they are shared with other subscriptions and must not be changed.
func (s *Subscription) C() <-chan *Record { return s.c }

// Done is closed when the subscription ends; Err then says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended (ErrSlow, ErrBusLost, ErrClosed), nil while it runs or
// after Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.end(nil)
	s.hub.remove(s)
}

// Subscribe starts a subscription to the tenant's events after the newest one. It returns an
// error when the stream cannot be read (Redis is down) or the hub is closed.
func (h *Hub) Subscribe(ctx context.Context, tenantID string) (*Subscription, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	f := h.tenants[tenantID]
	h.mu.Unlock()
	if f == nil {
		// The first subscriber of the tenant here: find where the stream ends, then read on
		// from there. Subscribers that join later start where the reader stands, which may be
		// a little behind the stream's end: they get a few more events, never fewer.
		last, err := h.bus.Last(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		if f = h.tenants[tenantID]; f == nil {
			// The feed outlives this subscriber and serves every later one: it carries none of
			// this request's values (its trace would swallow the reader's spans).
			fctx, stop := context.WithCancel(context.Background())
			f = &feed{tenantID: tenantID, subs: make(map[*Subscription]struct{}), stop: stop, pos: last}
			h.tenants[tenantID] = f
			go h.run(fctx, f, last) //nolint:contextcheck // the feed's own context, above
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.tenants[tenantID] != f {
		// The feed ended meanwhile (the bus failed); the caller retries or gives up.
		return nil, ErrBusLost
	}
	s := &Subscription{c: make(chan *Record, h.buffer), done: make(chan struct{}), hub: h, feed: f}
	f.subs[s] = struct{}{}
	s.Start = f.pos
	return s, nil
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := s.feed
	delete(f.subs, s)
	if len(f.subs) == 0 && h.tenants[f.tenantID] == f {
		delete(h.tenants, f.tenantID)
		f.stop()
	}
}

// run reads the tenant's stream after id until its subscribers are gone or the stream fails.
func (h *Hub) run(ctx context.Context, f *feed, id string) {
	for ctx.Err() == nil {
		recs, err := h.bus.read(ctx, f.tenantID, id, h.block, int64(max(h.buffer/2, 1)))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.log.Warn("event stream read failed; ending the tenant's streams", "tenant", f.tenantID, "error", err)
			h.fail(f, ErrBusLost)
			return
		}
		if len(recs) == 0 {
			continue
		}
		id = recs[len(recs)-1].ID
		h.mu.Lock()
		f.pos = id // a later subscriber starts after recs
		subs := make([]*Subscription, 0, len(f.subs))
		for s := range f.subs {
			subs = append(subs, s)
		}
		h.mu.Unlock()
		h.deliver(ctx, f, subs, recs)
	}
}

// deliverPoll is how often the reader looks whether the subscribers it waits for made room.
const deliverPoll = 2 * time.Millisecond

// maxLagPatiences is how many patiences a subscriber may stay behind, taking events but never
// room for a whole read, before it is dropped: a subscriber slower than its tenant's events
// would otherwise set the pace of every stream of the tenant on this replica.
const maxLagPatiences = 10

// deliver queues recs on each of subs, waiting for those whose buffers have no room. A
// subscription is dropped (ErrSlow) that took nothing for the hub's patience while the reader
// waited for it, or that held up the reader at this delivery and the ones before without a
// break for ten patiences (see maxLagPatiences).
func (h *Hub) deliver(ctx context.Context, f *feed, subs []*Subscription, recs []Record) {
	sent := make(map[*Subscription]int, len(subs))
	var poll *time.Ticker
	for first := true; ; first = false {
		waiting := subs[:0]
		now := time.Now()
		for _, s := range subs {
			before := sent[s]
			n := before
			for n < len(recs) && len(s.c) < cap(s.c) {
				s.c <- &recs[n] // only this goroutine sends, so there is room
				n++
			}
			sent[s] = n
			if n > before {
				s.moved = now
			}
			switch {
			case n == len(recs):
				if first {
					s.behind = time.Time{}
				}
			case isDone(s):
				// Closed meanwhile.
			case first && s.behind.IsZero():
				s.behind, s.moved = now, now
				waiting = append(waiting, s)
			default:
				if now.Sub(s.moved) >= h.patience || now.Sub(s.behind) >= maxLagPatiences*h.patience {
					h.drop(f, s)
					continue
				}
				waiting = append(waiting, s)
			}
		}
		if len(waiting) == 0 {
			break
		}
		subs = waiting
		if poll == nil {
			poll = time.NewTicker(deliverPoll)
			defer poll.Stop()
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return
		}
	}
}

func isDone(s *Subscription) bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// drop ends s as too slow, and f when s was its last subscriber.
func (h *Hub) drop(f *feed, s *Subscription) {
	s.end(ErrSlow)
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(f.subs, s)
	if len(f.subs) == 0 && h.tenants[f.tenantID] == f {
		delete(h.tenants, f.tenantID)
		f.stop()
	}
}

// fail ends every subscription of f with err and forgets f.
func (h *Hub) fail(f *feed, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range f.subs {
		s.end(err)
	}
	clear(f.subs)
	if h.tenants[f.tenantID] == f {
		delete(h.tenants, f.tenantID)
	}
	f.stop()
}

// Replay calls emit with the caller's events after the event id, a page at a time, up to until
// (see Bus.Replay).
func (h *Hub) Replay(ctx context.Context, tenantID string, caller chat.Caller, id, until string, emit func([]Record) error) (string, error) {
	return h.bus.Replay(ctx, tenantID, caller, id, until, emit)
}

// Close ends every subscription with ErrClosed and refuses new ones (SIGTERM).
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	feeds := make([]*feed, 0, len(h.tenants))
	for _, f := range h.tenants {
		feeds = append(feeds, f)
	}
	h.mu.Unlock()
	for _, f := range feeds {
		h.fail(f, ErrClosed)
	}
}
