package datarights

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
)

// The erasure of a customer is a job in MongoDB that any replica takes up, one at a time per
// job (a lease in Redis), and that survives a crash: every step can be made again.
//
// A job makes two passes over what the tenant holds of the customer. Each pass finds the
// customer's conversations (views and logs), seals each log (chat.EntryErased), deletes its
// view, entries, pending marks, idempotency records and webhook deliveries, then the customer's
// events in the tenant's stream, cached pages and limit counters. The seal makes a write that
// races the erasure lose; the second pass, SettleAt after the first, removes what work in
// flight during the first left behind: a view projected or an event published by a write that
// committed just before the seal (a write lasts at most convlog's 30 s), a page cached from a
// list read before the deletes. Only then is the job done, and its document loses the
// customer's id.

// DefaultSettle is how long after its first pass an erasure makes its second: longer than any
// write in flight at the first may still take (convlog bounds a write to 30 s).
const DefaultSettle = 45 * time.Second

// Tuning of the eraser.
const (
	// eraseBatch is how many conversations one step seals and deletes before it saves its
	// progress and pauses.
	eraseBatch = 20
	// defaultJobLease is how long a replica holds a job without renewing it: another replica
	// takes a job over this long after its holder died.
	defaultJobLease = 30 * time.Second
	// jobsPerTick bounds the jobs one tick of Run looks at.
	jobsPerTick = 10
)

// Observer counts what erasures and retention do; the telemetry metrics implement it.
type Observer interface {
	// Erased counts conversations and their messages erased, and why ("erasure" or
	// "retention").
	Erased(reason string, conversations, messages int64)
	// RetentionOverdue reports how long past retention the oldest conversation left to erase
	// is (0: none).
	RetentionOverdue(d time.Duration)
}

// EraserDeps are what an Eraser is made of.
type EraserDeps struct {
	Jobs    Jobs
	Records Records
	Events  Events
	Caches  Caches
	Limits  Limits
	Lease   Lease
	// Audit records requests and finished erasures; it may be nil.
	Audit    Trail
	Observer Observer
	Now      func() time.Time
	NewID    func() string
	Logger   *slog.Logger
	// Settle is the pause between the two passes (DefaultSettle when zero); Interval how often
	// Run looks for jobs (a second when zero); Pause the rest between two batches (10 ms when
	// zero); LeaseTTL how long a replica holds a job without renewing it (30 s when zero).
	Settle, Interval, Pause, LeaseTTL time.Duration
}

// Eraser requests erasures and runs them.
type Eraser struct {
	d    EraserDeps
	wake chan struct{}
}

// NewEraser returns the Eraser of d.
func NewEraser(d EraserDeps) *Eraser {
	if d.Settle <= 0 {
		d.Settle = DefaultSettle
	}
	if d.Interval <= 0 {
		d.Interval = time.Second
	}
	if d.Pause <= 0 {
		d.Pause = 10 * time.Millisecond
	}
	if d.LeaseTTL <= 0 {
		d.LeaseTTL = defaultJobLease
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Eraser{d: d, wake: make(chan struct{}, 1)}
}

// Request asks for the erasure of a customer of the tenant by an admin and returns it: the
// customer's pending erasure if there is one (asking twice is one erasure), else a new one,
// which this replica starts at once.
func (e *Eraser) Request(ctx context.Context, tenantID, customerID string, by chat.Caller) (*Erasure, error) {
	if !chat.ValidID(customerID) {
		return nil, chat.FieldError("customer_id", "must be a user id: 1 to 255 visible ASCII characters")
	}
	job, err := e.d.Jobs.ActiveErasure(ctx, tenantID, customerID)
	if err != nil || job != nil {
		return job, err
	}
	job = &Erasure{ID: e.d.NewID(), TenantID: tenantID, CustomerID: customerID, RequestedBy: by.ID,
		RequestedAt: e.d.Now().UTC().Truncate(time.Millisecond), State: Pending}
	if err := e.d.Jobs.AddErasure(ctx, job); err != nil {
		return nil, err
	}
	e.record(ctx, audit.Entry{TenantID: tenantID, Actor: audit.Actor{ID: by.ID, Role: string(by.Role)}, Action: audit.ErasureRequested,
		Subject: audit.Subject(tenantID, customerID), Target: job.ID})
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return job, nil
}

// Status returns erasure id of the tenant, or ErrNotFound.
func (e *Eraser) Status(ctx context.Context, tenantID, id string) (*Erasure, error) {
	return e.d.Jobs.Erasure(ctx, tenantID, id)
}

// Run takes up pending erasures until ctx ends: every Interval, and at once after Request.
func (e *Eraser) Run(ctx context.Context) {
	t := time.NewTicker(e.d.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.wake:
		}
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.d.Logger.WarnContext(ctx, "erasures: will try again", "error", err)
		}
	}
}

// Tick makes the steps that are due of the pending erasures this replica can lease.
func (e *Eraser) Tick(ctx context.Context) error {
	jobs, err := e.d.Jobs.PendingErasures(ctx, jobsPerTick)
	if err != nil {
		return err
	}
	var errs []error
	for i := range jobs {
		job := &jobs[i]
		if job.Passes > 0 && e.d.Now().Before(job.SettleAt) {
			continue
		}
		if e.d.Lease != nil && !e.d.Lease.Take(ctx, leaseName(job), e.d.LeaseTTL) {
			continue // another replica has it
		}
		if err := e.step(ctx, job); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func leaseName(job *Erasure) string { return "erasure:" + job.ID }

// step makes the next pass of job, and finishes it after its second.
func (e *Eraser) step(ctx context.Context, job *Erasure) error {
	if err := e.pass(ctx, job); err != nil {
		return err
	}
	job.Passes++
	now := e.d.Now().UTC()
	if job.Passes == 1 {
		job.SettleAt = now.Add(e.d.Settle)
		return e.d.Jobs.SaveErasure(ctx, job)
	}
	subject := audit.Subject(job.TenantID, job.CustomerID)
	job.State, job.CustomerID, job.DoneAt = Done, "", now
	if err := e.d.Jobs.SaveErasure(ctx, job); err != nil {
		return err
	}
	if e.d.Observer != nil {
		e.d.Observer.Erased("erasure", job.Counts.Conversations, job.Counts.Messages)
	}
	e.record(ctx, audit.Entry{TenantID: job.TenantID, Actor: audit.Actor{ID: "erasure", Role: string(chat.RoleSystem)},
		Action: audit.CustomerErased, Subject: subject, Target: job.ID, Counts: job.Counts.Map()})
	return nil
}

// pass erases what MongoDB and Redis hold of the job's customer, saving its progress after
// every batch of conversations.
func (e *Eraser) pass(ctx context.Context, job *Erasure) error {
	ids, err := e.conversations(ctx, job.TenantID, job.CustomerID)
	if err != nil {
		return err
	}
	for batch := range slices.Chunk(ids, eraseBatch) {
		c, _, err := eraseConversations(ctx, e.d.Records, job.TenantID, batch, e.d.Now().UTC().Truncate(time.Millisecond), nil, nil)
		job.Counts.Add(c)
		if err != nil {
			return errors.Join(err, e.d.Jobs.SaveErasure(ctx, job))
		}
		if err := e.d.Jobs.SaveErasure(ctx, job); err != nil {
			return err
		}
		if e.d.Lease != nil && !e.d.Lease.Take(ctx, leaseName(job), e.d.LeaseTTL) {
			return errors.New("erasure: lease lost")
		}
		pause(ctx, e.d.Pause)
	}
	n, err := e.d.Events.EraseEvents(ctx, job.TenantID, job.CustomerID, nil)
	job.Counts.Events += n
	if err != nil {
		return errors.Join(err, e.d.Jobs.SaveErasure(ctx, job))
	}
	keys, err := e.d.Caches.Forget(ctx, job.TenantID, []string{job.CustomerID}, true)
	job.Counts.RedisKeys += keys
	if err == nil {
		keys, err = e.d.Limits.Forget(ctx, job.TenantID, job.CustomerID)
		job.Counts.RedisKeys += keys
	}
	return errors.Join(err, e.d.Jobs.SaveErasure(ctx, job))
}

// conversations returns the ids of the customer's conversations: those with a view and those
// with log entries (a view may be missing while a write is in flight, or after one died).
func (e *Eraser) conversations(ctx context.Context, tenantID, customerID string) ([]string, error) {
	convs := conversationsOf(ctx, e.d.Records, tenantID, customerID)
	var ids []string
	for {
		id, _, ok, err := convs.next()
		if err != nil || !ok {
			return ids, err
		}
		ids = append(ids, id)
	}
}

// record adds r to the audit trail; a failure is logged, as the erasure itself is done.
func (e *Eraser) record(ctx context.Context, r audit.Entry) {
	if e.d.Audit == nil {
		return
	}
	if err := e.d.Audit.Record(ctx, r); err != nil {
		e.d.Logger.WarnContext(ctx, "audit record not stored", "tenant", r.TenantID, "action", r.Action, "error", err)
	}
}

// pause waits for d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
