package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/events"
)

// EventSource is what the event stream needs of the event hub (*events.Hub).
type EventSource interface {
	// Subscribe starts receiving the tenant's events after the newest one.
	Subscribe(ctx context.Context, tenantID string) (*events.Subscription, error)
	// Replay calls emit with each page of the caller's events after id, up to until, and
	// returns the id of the last event it read; events.ErrGone when id is not in the replay
	// window, events.ErrReplayBudget when the replay stopped at its budget, emit's error.
	Replay(ctx context.Context, tenantID string, caller chat.Caller, id, until string, emit func([]events.Record) error) (string, error)
}

var _ EventSource = (*events.Hub)(nil)

// StreamObserver counts event streams and the events written to them; telemetry implements it.
type StreamObserver interface {
	SSEStreamOpened()
	SSEStreamClosed()
	EventDelivered(eventType string)
}

// Event stream timing defaults (PRODUCT.md: a heartbeat at least every 15 s).
const (
	defaultHeartbeat = 15 * time.Second
	// retryMillis is the reconnection delay the stream asks browsers for.
	retryMillis = 2000
)

// eventsRoute is the route of the event stream, which the request timeout does not bound.
const eventsRoute = "/api/v1/chat/events"

// streamer serves GET /chat/events.
type streamer struct {
	source    EventSource
	obs       StreamObserver
	limits    Limiter // nil: no limit on open streams
	heartbeat time.Duration
	now       func() time.Time
	// tenants and auth verify an open stream's token again every recheck.
	tenants Tenants
	auth    Authenticator
	recheck time.Duration
	// maxAge is the longest a stream lives: the verifier's key set max age.
	maxAge time.Duration
}

// serve streams the caller's events as Server-Sent Events until the client leaves, the token
// expires or is no longer accepted, the stream reaches its longest lifetime, the service shuts
// down, the client falls too far behind, or the bus fails. A
// Last-Event-ID within the replay window resumes after that event; any other starts with
// resync.
func (s *streamer) serve(c *gin.Context) {
	ctx := c.Request.Context()
	t, caller, ok := requestScope(c)
	if !ok {
		return
	}
	if _, err := query(c); err != nil {
		abortWithError(c, err)
		return
	}
	if s.source == nil {
		abortWithError(c, &chat.Error{Code: chat.Unavailable, Message: "live events are not configured"})
		return
	}
	release, ok := openStream(c, s.limits, t, caller)
	if !ok {
		return
	}
	sub, err := s.source.Subscribe(ctx, t.ID)
	if err != nil {
		release()
		abortWithError(c, &chat.Error{Code: chat.Unavailable, Message: "live events are unavailable", Err: err})
		return
	}
	token, _ := bearerToken(c.GetHeader("Authorization")) // authenticate accepted it
	st := &stream{
		streamer: s, sub: sub, tenantID: t.ID, caller: caller, token: token, release: release,
		last: strings.TrimSpace(c.GetHeader("Last-Event-ID")), log: loggerFrom(c),
	}
	// An idle stream should cost little: over HTTP/1.1 the connection is taken from net/http
	// (its serving goroutine, background reader and buffers go), and one small goroutine of
	// ours writes the events. Where it cannot be taken (HTTP/2), the handler streams itself.
	rc := http.NewResponseController(c.Writer)
	if c.Request.ProtoMajor == 1 {
		if conn, brw, err := rc.Hijack(); err == nil {
			if brw.Reader.Buffered() > 0 {
				_ = conn.Close() // a client that pipelines requests after a stream
				sub.Close()
				release()
				return
			}
			_ = conn.SetDeadline(time.Time{})
			st.w = &sseWriter{w: deadlineWriter{w: conn, setDeadline: conn.SetWriteDeadline}, flush: func() error { return nil }, obs: s.obs}
			st.w.printf("%s", hijackedHead(c.Writer.Header()))
			go func() {
				defer func() { _ = conn.Close() }() // the stream is over either way
				st.run(context.WithoutCancel(ctx), clientGone(conn))
			}()
			return
		}
	}
	// The server's WriteTimeout bounds ordinary responses, not a stream: each write has its own.
	_ = rc.SetWriteDeadline(time.Time{})
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	dw := deadlineWriter{w: c.Writer, setDeadline: rc.SetWriteDeadline}
	st.w = &sseWriter{w: dw, flush: dw.flushing(rc), obs: s.obs}
	st.run(ctx, ctx.Done())
}

// hijackedHead returns the response head of a stream on a hijacked connection: the headers the
// middleware set (X-Request-ID, CORS for a storefront's origin, ...) and the stream's own.
func hijackedHead(set http.Header) string {
	h := set.Clone()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "close") // the body ends with the connection
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&b) // writes to a Builder do not fail
	b.WriteString("\r\n")
	return b.String()
}

// streamWriteTimeout bounds one write to a stream's connection: a client that stops reading
// is let go rather than holding the stream's goroutine.
const streamWriteTimeout = 10 * time.Second

// deadlineWriter writes a stream with a deadline on each write (and flush), set by setDeadline:
// the hijacked connection's over HTTP/1.1, the response controller's over HTTP/2. A client that
// stops reading, or stops granting flow control, is let go rather than holding the stream's
// goroutine, so that the stream's endings (expiry, revocation, its longest lifetime) are seen.
type deadlineWriter struct {
	w           io.Writer
	setDeadline func(time.Time) error
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.setDeadline(time.Now().Add(streamWriteTimeout))
	return d.w.Write(p)
}

// flushing returns a flush of the response controller rc under the same deadline.
func (d deadlineWriter) flushing(rc *http.ResponseController) func() error {
	return func() error {
		_ = d.setDeadline(time.Now().Add(streamWriteTimeout))
		return rc.Flush()
	}
}

// stream is one open event stream.
type stream struct {
	*streamer
	sub      *events.Subscription
	tenantID string
	caller   chat.Caller
	// token is the bearer token the stream verifies again; it is never logged or written.
	token string
	last  string // Last-Event-ID
	log   *slog.Logger
	w     *sseWriter
	// release gives the caller's stream slot back when the stream ends.
	release func()
}

// run writes the stream until the token expires or is no longer accepted, the stream reaches
// its longest lifetime, the service shuts down, the subscription is dropped or the bus fails, a
// write fails, or gone is closed (the client left).
func (st *stream) run(ctx context.Context, gone <-chan struct{}) {
	started := st.now()
	defer st.release()
	defer st.sub.Close()
	if st.obs != nil {
		st.obs.SSEStreamOpened()
		defer st.obs.SSEStreamClosed()
	}
	w := st.w
	w.printf("retry: %d\n\n", retryMillis)
	sent := st.sub.Start
	if st.last != "" {
		var err error
		if sent, err = st.replay(ctx, w, st.tenantID, st.caller, st.last, st.sub.Start); err != nil {
			st.log.WarnContext(ctx, "event replay failed", "tenant", st.tenantID, "error", err)
			return
		}
	}
	if w.flushNow() != nil {
		return
	}
	heartbeat := time.NewTicker(st.heartbeat)
	defer heartbeat.Stop()
	end, endReason := st.deadline(started)
	ending := time.NewTimer(end.Sub(st.now()))
	defer ending.Stop()
	// The token is verified again every recheck, on a goroutine of its own, so that a slow
	// verification (a key set fetch) never holds up delivery; one at a time.
	recheck := time.NewTicker(st.recheck)
	defer recheck.Stop()
	checked := make(chan error, 1) // the goroutine never blocks, and ends within recheckTimeout
	checking := false
	// deliver writes r unless the replay already covered it.
	deliver := func(r *events.Record) {
		if events.Less(sent, r.ID) {
			w.event(*r, st.caller)
			sent = r.ID
		}
	}
	for {
		select {
		case r := <-st.sub.C():
			deliver(r)
			// Write what else is queued before flushing once.
			for more := true; more; {
				select {
				case r := <-st.sub.C():
					deliver(r)
				default:
					more = false
				}
			}
		case <-heartbeat.C:
			w.printf(": keep-alive\n\n")
		case <-st.sub.Done():
			// Slow, shut down or the bus failed: the client reconnects with its last id.
			w.printf(": closing: %s\n\n", st.sub.Err())
			_ = w.flushNow()
			return
		case <-ending.C:
			w.printf(": closing: %s\n\n", endReason)
			_ = w.flushNow()
			return
		case <-recheck.C:
			if !checking {
				checking = true
				go func() { checked <- st.reauthorize(ctx) }()
			}
		case err := <-checked:
			checking = false
			if err != nil {
				st.log.InfoContext(ctx, "event stream ends: its token is no longer accepted", "tenant", st.tenantID, "reason", err)
				w.printf(": closing: the token is no longer accepted\n\n")
				_ = w.flushNow()
				return
			}
		case <-gone:
			return
		}
		if w.flushNow() != nil {
			return
		}
	}
}

// replay writes the caller's events after last up to (at least) start, the subscription's
// first position, flushing each page as it is read, and returns the id of the last event it
// covered. When last is not in the window, or the replay reaches its budget, it writes resync
// instead and returns start. A failed write ends the replay; it sticks in w.
func (s *streamer) replay(ctx context.Context, w *sseWriter, tenantID string, caller chat.Caller, last, start string) (string, error) {
	sent, err := s.source.Replay(ctx, tenantID, caller, last, start, func(page []events.Record) error {
		for _, r := range page {
			w.event(r, caller)
		}
		return w.flushNow()
	})
	switch {
	case w.err != nil:
		return start, nil // the client left
	case errors.Is(err, events.ErrGone), errors.Is(err, events.ErrReplayBudget):
		w.resync(start)
		return start, nil
	case err != nil:
		return "", err
	}
	return sent, nil
}

// sseWriter writes the event stream's fields into a buffer that flushNow writes out; the first
// error sticks.
type sseWriter struct {
	w     io.Writer
	flush func() error
	obs   StreamObserver
	buf   bytes.Buffer
	err   error
}

func (w *sseWriter) printf(format string, args ...any) {
	if w.err == nil {
		fmt.Fprintf(&w.buf, format, args...)
	}
}

// event writes r when caller may see it.
func (w *sseWriter) event(r events.Record, caller chat.Caller) {
	if r.Type == events.EventResync {
		w.resync(r.ID)
		return
	}
	data, ok := r.For(caller)
	if !ok {
		return
	}
	w.printf("id: %s\nevent: %s\ndata: %s\n\n", r.ID, r.Type, data)
	if w.obs != nil && w.err == nil {
		w.obs.EventDelivered(string(r.Type))
	}
}

// resync tells the client it missed events that cannot be replayed.
func (w *sseWriter) resync(id string) {
	w.printf("id: %s\nevent: resync\ndata: {\"reason\":\"some events are no longer available; list again with updated_since\"}\n\n", id)
	if w.obs != nil && w.err == nil {
		w.obs.EventDelivered("resync")
	}
}

// flushNow writes the buffered fields to the client.
func (w *sseWriter) flushNow() error {
	if w.err == nil && w.buf.Len() > 0 {
		if _, w.err = w.w.Write(w.buf.Bytes()); w.err == nil {
			w.err = w.flush()
		}
		w.buf.Reset()
	}
	return w.err
}

// RenderEvent renders an event's payloads in the JSON shapes of the API: conversation events
// carry the conversation as the list shows it to admins and to its customer, with its newest
// message; message.created the conversation id and the message; support.changed the support
// block.
func RenderEvent(e chat.Event) (events.Payload, error) {
	var p events.Payload
	var err error
	switch e.Type {
	case chat.EventConversationCreated, chat.EventConversationUpdated:
		if e.Conversation == nil {
			return p, fmt.Errorf("%s without a conversation", e.Type)
		}
		if p.Admin, err = json.Marshal(conversationOf(*e.Summary(true))); err != nil {
			return p, err
		}
		p.Customer, err = json.Marshal(conversationOf(*e.Summary(false)))
	case chat.EventMessageCreated:
		if e.Message == nil {
			return p, errors.New("message.created without a message")
		}
		p.Admin, err = json.Marshal(messageEventJSON{ConversationID: e.ConversationID, Message: messageOf(*e.Message)})
	case chat.EventSupportChanged:
		if e.Support == nil {
			return p, errors.New("support.changed without support")
		}
		p.Admin, err = json.Marshal(supportOf(*e.Support))
	default:
		return p, fmt.Errorf("unknown event type %q", e.Type)
	}
	return p, err
}

// messageEventJSON is the data of message.created.
type messageEventJSON struct {
	ConversationID string      `json:"conversation_id"`
	Message        messageJSON `json:"message"`
}
