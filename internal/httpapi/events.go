package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/tenant"
)

// EventSource is what the event stream needs of the event hub (*events.Hub).
type EventSource interface {
	// Subscribe starts receiving the tenant's events after the newest one.
	Subscribe(ctx context.Context, tenantID string) (*events.Subscription, error)
	// After returns up to limit events after id, or events.ErrGone when id is not in the
	// replay window.
	After(ctx context.Context, tenantID, id string, limit int) ([]events.Record, error)
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
	// replayPage is how many missed events one read of the replay window returns.
	replayPage = 500
)

// eventsRoute is the route of the event stream, which the request timeout does not bound.
const eventsRoute = "/api/v1/chat/events"

// streamer serves GET /chat/events.
type streamer struct {
	source    EventSource
	obs       StreamObserver
	heartbeat time.Duration
	now       func() time.Time
}

// serve streams the caller's events as Server-Sent Events until the client leaves, the token
// expires, the service shuts down, the client falls too far behind, or the bus fails. A
// Last-Event-ID within the replay window resumes after that event; any other starts with
// resync.
func (s *streamer) serve(c *gin.Context) {
	ctx := c.Request.Context()
	t, err := tenant.FromContext(ctx)
	if err != nil {
		abortWithError(c, err)
		return
	}
	caller, err := chat.CallerFromContext(ctx)
	if err != nil {
		abortWithError(c, err)
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
	sub, err := s.source.Subscribe(ctx, t.ID)
	if err != nil {
		abortWithError(c, &chat.Error{Code: chat.Unavailable, Message: "live events are unavailable", Err: err})
		return
	}
	defer sub.Close()

	// The server's WriteTimeout bounds ordinary responses; a stream lasts as long as the token.
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	if s.obs != nil {
		s.obs.SSEStreamOpened()
		defer s.obs.SSEStreamClosed()
	}
	w := &sseWriter{w: c.Writer, rc: rc, obs: s.obs}
	w.printf("retry: %d\n\n", retryMillis)

	sent := sub.Start
	if last := strings.TrimSpace(c.GetHeader("Last-Event-ID")); last != "" {
		if sent, err = s.replay(ctx, w, t.ID, caller, last, sub.Start); err != nil {
			loggerFrom(c).WarnContext(ctx, "event replay failed", "tenant", t.ID, "error", err)
			return
		}
	}
	if w.flush() != nil {
		return
	}

	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	var expired <-chan time.Time
	if !caller.Expires.IsZero() {
		timer := time.NewTimer(caller.Expires.Sub(s.now()))
		defer timer.Stop()
		expired = timer.C
	}
	for {
		select {
		case r := <-sub.C():
			if events.Less(sent, r.ID) {
				w.event(*r, caller)
				sent = r.ID
			}
			// Write what else is queued before flushing once.
			for more := true; more; {
				select {
				case r := <-sub.C():
					if events.Less(sent, r.ID) {
						w.event(*r, caller)
						sent = r.ID
					}
				default:
					more = false
				}
			}
		case <-heartbeat.C:
			w.printf(": keep-alive\n\n")
		case <-sub.Done():
			// Slow, shut down or the bus failed: the client reconnects with its last id.
			w.printf(": closing: %s\n\n", sub.Err())
			_ = w.flush()
			return
		case <-expired:
			w.printf(": closing: the token expired\n\n")
			_ = w.flush()
			return
		case <-ctx.Done():
			return
		}
		if w.flush() != nil {
			return
		}
	}
}

// replay writes the caller's events after last up to (at least) start, the subscription's
// first position, and returns the id of the last event it covered. When last is not in the
// window it writes resync instead and returns start.
func (s *streamer) replay(ctx context.Context, w *sseWriter, tenantID string, caller chat.Caller, last, start string) (string, error) {
	sent := last
	for {
		recs, err := s.source.After(ctx, tenantID, sent, replayPage)
		if errors.Is(err, events.ErrGone) {
			w.resync(start)
			return start, nil
		}
		if err != nil {
			return "", err
		}
		for _, r := range recs {
			w.event(r, caller)
			sent = r.ID
		}
		if len(recs) < replayPage || !events.Less(sent, start) {
			return sent, nil
		}
	}
}

// sseWriter writes the event stream's fields; the first error sticks.
type sseWriter struct {
	w   gin.ResponseWriter
	rc  *http.ResponseController
	obs StreamObserver
	err error
}

func (w *sseWriter) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
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

func (w *sseWriter) flush() error {
	if w.err == nil {
		w.err = w.rc.Flush()
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
		if p.Admin, err = json.Marshal(conversationOf(*e.View(true))); err != nil {
			return p, err
		}
		p.Customer, err = json.Marshal(conversationOf(*e.View(false)))
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
