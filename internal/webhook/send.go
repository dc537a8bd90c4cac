package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/netguard"
)

// work sends the due deliveries of one endpoint in order, while this replica holds its lease,
// until none is due, one waits for its retry (holding the later ones back), or ctx ends.
func (w *Workers) work(ctx context.Context, tenantID, endpointID string) {
	for ctx.Err() == nil {
		queue, err := w.store.Queue(ctx, tenantID, endpointID, queueBatch)
		if err != nil || len(queue) == 0 {
			return
		}
		e, err := w.store.Endpoint(ctx, tenantID, endpointID)
		if err != nil {
			return // deleted (its queue goes with it), or the database is out of reach
		}
		for _, q := range queue {
			if q.NextAt.After(w.now()) {
				return // it waits for its retry, and the later ones behind it
			}
			if !w.take(ctx, leaseName(endpointID), w.leaseTTL) {
				return // another replica took the endpoint over
			}
			d, err := w.store.Delivery(ctx, tenantID, q.ID)
			if errors.Is(err, chat.ErrNotFound) {
				d = &Delivery{ID: q.ID, TenantID: tenantID, EndpointID: endpointID}
			} else if err != nil {
				return
			}
			if d.State != Pending { // its endpoint was deleted, or it ended meanwhile
				if err := w.store.SaveDelivery(ctx, d); err != nil {
					return
				}
				continue
			}
			if !e.Enabled {
				d.State, d.NextAt = Dead, time.Time{}
				d.Attempts = keepLast(append(d.Attempts, Attempt{At: w.now().UTC(), Error: "endpoint disabled"}))
				if err := w.store.SaveDelivery(ctx, d); err != nil {
					return
				}
				continue
			}
			held, ok := w.deliver(ctx, e, d)
			if !ok || held {
				return
			}
			if !e.Enabled {
				return // the receiver answered 410
			}
		}
	}
}

// deliver makes one attempt of d and records it. It reports whether the delivery now holds its
// endpoint back (it waits for a retry), and false in ok when nothing was recorded (ctx ended,
// or the record failed).
func (w *Workers) deliver(ctx context.Context, e *Endpoint, d *Delivery) (held, ok bool) {
	a, retryAfter, err := w.attempt(ctx, e, d)
	if ctx.Err() != nil {
		return false, false // shutting down: not an attempt the receiver should be blamed for
	}
	now := a.At
	d.Attempts = keepLast(append(d.Attempts, a))
	d.Tries++
	outcome := "delivered"
	switch {
	case err == nil && a.Status >= 200 && a.Status < 300:
		d.State, d.NextAt = Delivered, time.Time{}
	case err == nil && a.Status == http.StatusGone:
		d.State, d.NextAt, outcome = Dead, time.Time{}, "dead"
		e.Enabled, e.DisabledReason, e.UpdatedAt = false, "the receiver answered 410 Gone", now
		if rerr := w.store.ReplaceEndpoint(ctx, e); rerr != nil {
			w.log.WarnContext(ctx, "webhook endpoint not disabled after 410", "tenant", e.TenantID, "endpoint", e.ID, "error", rerr)
		}
	case errors.Is(err, netguard.ErrForbidden) || err == nil && !retryable(a.Status):
		d.State, d.NextAt, outcome = Dead, time.Time{}, "dead"
	default:
		wait, more := retryWait(w.schedule, d.Tries, retryAfter)
		if !more || now.Sub(d.Since) > w.lifetime() {
			d.State, d.NextAt, outcome = Dead, time.Time{}, "dead"
		} else {
			d.NextAt, outcome, held = now.Add(wait), "retry", true
		}
	}
	if w.obs != nil {
		w.obs.WebhookAttempt(outcome, a.Duration)
	}
	if err := w.store.SaveDelivery(ctx, d); err != nil {
		w.log.WarnContext(ctx, "webhook attempt not recorded; it may be made again", "tenant", d.TenantID, "delivery", d.ID, "error", err)
		return false, false
	}
	return held, true
}

// lifetime is the longest a delivery may be tried: its whole schedule, with the most jitter
// and every attempt timing out. A delivery held back behind an endpoint's failing one may reach
// it before its own schedule ran out; its next failure then makes it dead.
func (w *Workers) lifetime() time.Duration {
	return time.Duration(float64(span(w.schedule))*(1+jitter)) + time.Duration(len(w.schedule)+1)*w.timeout
}

// attempt sends d to e once, signed with e's secrets, and returns the attempt, the wait a
// Retry-After header asked for, and the error of a request that got no answer.
func (w *Workers) attempt(ctx context.Context, e *Endpoint, d *Delivery) (Attempt, time.Duration, error) {
	start := time.Now()
	a := Attempt{At: w.now().UTC().Truncate(time.Millisecond)}
	secrets := make([]string, 0, len(e.Secrets))
	for _, s := range e.signing(start) {
		secrets = append(secrets, s.Value)
	}
	sig, err := Sign(secrets, d.ID, start, d.Body)
	if err != nil {
		a.Error = "signing secret unreadable"
		return a, 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, e.URL, bytes.NewReader(d.Body))
	if err != nil {
		a.Error = "invalid URL"
		return a, 0, netguard.ErrForbidden
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "SupportChat-Webhooks/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(start.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	client := w.strict
	if req.URL.Scheme == "http" {
		client = w.within
	}
	resp, err := client.Do(req)
	a.Duration = time.Since(start)
	if err != nil {
		a.Error = describe(err)
		return a, 0, err
	}
	defer resp.Body.Close()
	// Read a little of the answer, so the connection can be reused; never keep it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReadBody))
	a.Duration = time.Since(start)
	a.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		a.Error = "status " + strconv.Itoa(resp.StatusCode)
	}
	var retryAfter time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return a, retryAfter, nil
}

// describe says what went wrong with a request that got no answer, without addresses or
// anything of the receiver's.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, netguard.ErrForbidden):
		return "address not allowed"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return "connection failed: " + op.Op
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "name not resolved"
	}
	return "request failed"
}

// keepLast keeps the last maxAttemptsKept attempts.
func keepLast(a []Attempt) []Attempt {
	if len(a) > maxAttemptsKept {
		return a[len(a)-maxAttemptsKept:]
	}
	return a
}
