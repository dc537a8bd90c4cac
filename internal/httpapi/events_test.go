package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/testenv"
)

// eventSchemas are the schemas of api/openapi.yaml that each event type's data follows.
var eventSchemas = map[string]string{
	"conversation.created": "Conversation",
	"conversation.updated": "Conversation",
	"message.created":      "MessageEvent",
	"support.changed":      "Support",
}

var (
	apiDocOnce sync.Once
	apiDoc     *openapi3.T
	apiDocErr  error
)

// checkEventData validates an event's data against api/openapi.yaml.
func checkEventData(t *testing.T, ev sseEvent) {
	t.Helper()
	name, ok := eventSchemas[ev.Type]
	if !ok {
		return
	}
	apiDocOnce.Do(func() { apiDoc, apiDocErr = openapi3.NewLoader().LoadFromFile("../../api/openapi.yaml") })
	if apiDocErr != nil {
		t.Fatal(apiDocErr)
	}
	var v any
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("%s data is not JSON: %v", ev.Type, err)
	}
	if err := apiDoc.Components.Schemas[name].Value.VisitJSON(v); err != nil {
		t.Errorf("%s data does not match schema %s: %v\n%s", ev.Type, name, err, ev.Data)
	}
}

// sseEvent is one event read from an event stream; comments are events with only Comment.
type sseEvent = testenv.SSEEvent

// eventStream is an open GET /chat/events of one user.
type eventStream struct {
	t      *testing.T
	status int
	header http.Header
	events chan sseEvent
	// ended is closed when the server ends the stream.
	ended  chan struct{}
	cancel context.CancelFunc
}

// streamTimeout bounds the wait for one event: wide, for -race on a loaded machine.
const streamTimeout = 30 * time.Second

// events opens u's event stream, resuming after lastID when it is not "".
func (u user) events(t *testing.T, lastID string) *eventStream {
	t.Helper()
	return u.eventsOn(t, u.s.srv.URL, http.DefaultClient, lastID)
}

// eventsOn opens u's event stream at base with client.
func (u user) eventsOn(t *testing.T, base string, client *http.Client, lastID string) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/chat/events", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	req.Header.Set("X-Tenant-ID", u.tenant)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /chat/events: %v", err)
	}
	es := &eventStream{t: t, status: resp.StatusCode, header: resp.Header, events: make(chan sseEvent, 1000), ended: make(chan struct{}), cancel: cancel}
	t.Cleanup(es.close)
	go func() {
		defer close(es.ended)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		testenv.ReadSSE(resp.Body, es.events)
	}()
	return es
}

func (es *eventStream) close() { es.cancel() }

// next returns the next event that is not a comment (or a comment when comments is true).
func (es *eventStream) next(comments bool) sseEvent {
	es.t.Helper()
	timeout := time.After(streamTimeout)
	for {
		select {
		case ev := <-es.events:
			if ev.Type == "" && !comments {
				continue
			}
			checkEventData(es.t, ev)
			return ev
		case <-es.ended:
			select {
			case ev := <-es.events:
				if ev.Type == "" && !comments {
					continue
				}
				return ev
			default:
			}
			es.t.Fatal("the event stream ended")
		case <-timeout:
			es.t.Fatal("no event within the timeout")
		}
	}
}

// expect reads events until one of type typ arrives and returns it, failing on any other
// event type not in skip.
func (es *eventStream) expect(typ string, skip ...string) sseEvent {
	es.t.Helper()
	for {
		ev := es.next(false)
		if ev.Type == typ {
			return ev
		}
		ok := false
		for _, s := range skip {
			ok = ok || ev.Type == s
		}
		if !ok {
			es.t.Fatalf("got event %s %s, want %s", ev.Type, ev.Data, typ)
		}
	}
}

// quiet checks that no event (other than comments) arrives for a while.
func (es *eventStream) quiet(d time.Duration) {
	es.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-es.events:
			if ev.Type != "" {
				es.t.Fatalf("unexpected event %s %s", ev.Type, ev.Data)
			}
		case <-timeout:
			return
		}
	}
}

// waitEnd waits until the server ends the stream.
func (es *eventStream) waitEnd() {
	es.t.Helper()
	select {
	case <-es.ended:
	case <-time.After(streamTimeout):
		es.t.Fatal("the event stream did not end")
	}
}

type messageEvent struct {
	ConversationID string      `json:"conversation_id"`
	Message        messageJSON `json:"message"`
}

func decode[T any](t *testing.T, data string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

// threeReplicas returns three replicas of one stack (one database, one Redis or Redis Cluster).
func threeReplicas(t *testing.T, o stackOptions) (a, b, c *stack) {
	a = newStack(t, o)
	o.replicaOf = a
	return a, newStack(t, o), newStack(t, o)
}

func TestEventsReachEveryReplicaScopedToTheirCaller(t *testing.T) {
	for _, v := range []struct {
		name    string
		cluster bool
	}{{"redis", false}, {"cluster", true}} {
		t.Run(v.name, func(t *testing.T) {
			a, b, c := threeReplicas(t, stackOptions{cluster: v.cluster})
			ada, bob, grace := a.customer(shop, "ada"), a.customer(shop, "bob"), a.admin(shop, "grace")

			adminStream := grace.on(b).events(t, "")
			adaStream := ada.on(c).events(t, "")
			bobStream := bob.on(c).events(t, "")
			for _, es := range []*eventStream{adminStream, adaStream, bobStream} {
				if es.status != http.StatusOK || es.header.Get("Content-Type") != "text/event-stream" {
					t.Fatalf("GET /chat/events = %d %s", es.status, es.header.Get("Content-Type"))
				}
				if ev := es.next(true); ev.Comment != "retry 2000" {
					t.Fatalf("first field %+v, want retry", ev)
				}
			}

			// A write on replica a reaches streams on b and c, once it is acknowledged.
			conv := ada.start("Where is my order?")
			for _, es := range []*eventStream{adminStream, adaStream} {
				ev := es.expect("conversation.created")
				created := decode[conversationJSON](t, ev.Data)
				if created.ID != conv.ID || len(created.Messages) != 1 {
					t.Errorf("conversation.created = %+v", created)
				}
				// As the list shows it: admins see the assignee, customers do not.
				_, assignee := decode[map[string]any](t, ev.Data)["assignee"]
				if (es == adminStream) != assignee {
					t.Errorf("assignee shown = %v to admin=%v", assignee, es == adminStream)
				}
				m := decode[messageEvent](t, es.expect("message.created", "conversation.updated").Data)
				if m.ConversationID != conv.ID || m.Message.Body != "Where is my order?" {
					t.Errorf("message.created = %+v", m)
				}
			}

			reply := grace.on(a).send(conv.ID, "It ships today.")
			for _, es := range []*eventStream{adminStream, adaStream} {
				m := decode[messageEvent](t, es.expect("message.created", "message.created", "conversation.updated").Data)
				for m.Message.ID != reply.ID {
					m = decode[messageEvent](t, es.expect("message.created", "conversation.updated").Data)
				}
				if m.Message.Body != "It ships today." || m.Message.Sender.ID != "grace" {
					t.Errorf("reply event = %+v", m)
				}
			}

			// Presence reaches everyone of the tenant, customers included.
			grace.on(c).setPresence("online")
			for _, es := range []*eventStream{adminStream, adaStream, bobStream} {
				sup := decode[supportJSON](t, es.expect("support.changed", "message.created", "conversation.updated").Data)
				if sup.Status != "online" || !sup.Available {
					t.Errorf("support.changed = %+v", sup)
				}
			}
			// A heartbeat while already online changes nothing, so it is not an event.
			grace.on(c).setPresence("online")
			// Bob saw nothing of Ada's conversation.
			bobStream.quiet(500 * time.Millisecond)
			// Another tenant's events never reach this tenant's streams.
			a.customer(outdoor, "ada").start("Tent question")
			adminStream.quiet(500 * time.Millisecond)
		})
	}
}

func TestEventReplayFromAnotherReplicaAndResync(t *testing.T) {
	a, b, c := threeReplicas(t, stackOptions{})
	ada := a.customer(shop, "ada")
	conv := ada.start("First")

	first := ada.on(a).events(t, "")
	first.next(true)
	ada.on(b).send(conv.ID, "one")
	seen := first.expect("message.created")
	first.close()

	// Missed while disconnected: two messages of Ada, one reply, an update.
	ada.on(c).send(conv.ID, "two")
	grace := a.admin(shop, "grace")
	grace.on(a).send(conv.ID, "reply")
	ada.on(b).send(conv.ID, "three")

	// Resuming on another replica replays exactly what followed, in order.
	resumed := ada.on(c).events(t, seen.ID)
	var chatBodies []string
	for len(chatBodies) < 3 {
		m := decode[messageEvent](t, resumed.expect("message.created", "conversation.updated").Data)
		chatBodies = append(chatBodies, m.Message.Body)
	}
	if strings.Join(chatBodies, ",") != "two,reply,three" {
		t.Errorf("replayed %v, want two, reply, three", chatBodies)
	}

	// An id outside the window (or never issued) starts with resync, whose id resumes.
	stale := ada.on(b).events(t, "1-1")
	rs := stale.expect("resync")
	if rs.ID == "" {
		t.Fatal("resync has no id")
	}
	// The largest id there is, which Redis cannot read after, starts with resync too.
	if rs := ada.on(a).events(t, "18446744073709551615-18446744073709551615").expect("resync"); rs.ID == "" {
		t.Fatal("resync has no id")
	}
	ada.on(a).send(conv.ID, "after resync")
	m := decode[messageEvent](t, stale.expect("message.created").Data)
	if m.Message.Body != "after resync" {
		t.Errorf("after resync got %+v", m)
	}
}

func TestEventStreamLifecycle(t *testing.T) {
	s := newStack(t, stackOptions{heartbeat: 100 * time.Millisecond})
	ada := s.customer(shop, "ada")

	t.Run("heartbeat", func(t *testing.T) {
		es := ada.events(t, "")
		es.next(true) // retry
		if ev := es.next(true); ev.Comment != "keep-alive" {
			t.Errorf("idle stream sent %+v, want a keep-alive comment", ev)
		}
	})
	t.Run("a token never goes in the URL", func(t *testing.T) {
		r := ada.do("GET", "/api/v1/chat/events?access_token="+ada.token, nil)
		if p := r.Problem(t, http.StatusBadRequest); p.Field() != "access_token" {
			t.Errorf("field %q", p.Field())
		}
		if r := s.request("GET", "/api/v1/chat/events", nil, map[string]string{"X-Tenant-ID": shop}); r.Status != http.StatusUnauthorized {
			t.Errorf("without a token: %d", r.Status)
		}
	})
	t.Run("ends when the token expires", func(t *testing.T) {
		token, err := s.issuers[shop].Mint("ada", "Ada", false, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		short := user{s: s, tenant: shop, id: "ada", token: token}
		es := short.events(t, "")
		es.waitEnd()
	})
	t.Run("over HTTP/2 the handler streams itself", func(t *testing.T) {
		h2 := httptest.NewUnstartedServer(s.handler)
		h2.EnableHTTP2 = true
		h2.StartTLS()
		t.Cleanup(h2.Close) // after the stream is closed (cleanups run last first)
		es := ada.eventsOn(t, h2.URL, h2.Client(), "")
		if es.status != http.StatusOK || es.header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("over HTTP/2: %d %q", es.status, es.header.Get("Content-Type"))
		}
		if ev := es.next(true); ev.Comment != "retry 2000" {
			t.Fatalf("first field %+v", ev)
		}
		conv := ada.start("over h2")
		if ev := es.expect("conversation.created"); !strings.Contains(ev.Data, conv.ID) {
			t.Errorf("conversation.created = %s", ev.Data)
		}
		if ev := es.next(true); ev.Type == "" && ev.Comment == "" {
			t.Errorf("got %+v", ev)
		}
	})
	t.Run("ends cleanly on shutdown", func(t *testing.T) {
		es := ada.events(t, "")
		es.next(true)
		s.hub.Close()
		es.waitEnd()
		if r := ada.do("GET", "/api/v1/chat/events", nil); r.Status != http.StatusServiceUnavailable {
			t.Errorf("after shutdown: %d", r.Status)
		}
	})
}

func TestEventStreamsSurviveARedisRestart(t *testing.T) {
	for _, v := range []struct {
		name    string
		cluster bool
	}{{"redis", false}, {"cluster", true}} {
		t.Run(v.name, func(t *testing.T) {
			a, b, _ := threeReplicas(t, stackOptions{cluster: v.cluster})
			ada, grace := a.customer(shop, "ada"), a.admin(shop, "grace")
			conv := ada.start("Hello")
			es := grace.on(b).events(t, "")
			es.next(true)
			ada.send(conv.ID, "before")
			last := es.expect("message.created")

			a.redis.Stop(t)
			es.waitEnd()
			// Writes go on without Redis; their events wait in the log (pending).
			ada.send(conv.ID, "during")
			a.redis.Start(t)

			// Reconnecting resyncs (the stream is gone with Redis), then events flow again.
			var again *eventStream
			deadline := time.Now().Add(streamTimeout)
			for {
				again = grace.on(b).events(t, last.ID)
				if again.status == http.StatusOK {
					break
				}
				if again.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					t.Fatalf("reconnect: %d", again.status)
				}
				time.Sleep(100 * time.Millisecond)
			}
			again.expect("resync")
			// Replica a's breaker lets Redis calls through again shortly after Redis is back.
			for deadline := time.Now().Add(streamTimeout); a.rdb.Ping(context.Background()).Err() != nil; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("replica a does not reach Redis again")
				}
			}
			// The message sent while Redis was down is not lost to the streams either: the
			// log's relay publishes it once Redis is back. Whether this stream sees it depends
			// on which came first, the relay or the stream's subscription (before it, resync
			// told the client to read the lists again), so the test looks for it on the bus.
			for deadline := time.Now().Add(streamTimeout); !onBus(t, a.rdb, shop, `"body":"during"`); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the message sent while Redis was down never reached the event bus")
				}
			}
			// A message sent now follows it on the bus and reaches the stream; neither comes twice.
			ada.on(a).send(conv.ID, "after")
			seen := map[string]int{}
			for seen["after"] == 0 {
				m := decode[messageEvent](t, again.expect("message.created", "conversation.updated").Data)
				seen[m.Message.Body]++
			}
			again.quiet(time.Second)
			if seen["during"] > 1 || seen["after"] != 1 {
				t.Errorf("message.created by body after the restart = %v, want after once and during at most once", seen)
			}
			// The list never depended on Redis: it has the message sent while it was down.
			found := false
			for _, msg := range grace.on(b).history(conv.ID) {
				found = found || msg.Body == "during"
			}
			if !found {
				t.Error("the message sent while Redis was down is missing")
			}
		})
	}
}

// onBus reports whether an event of the tenant on the Redis bus has a field holding text.
func onBus(t *testing.T, rdb redis.UniversalClient, tenantID, text string) bool {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), events.Key(tenantID), "-", "+").Result()
	if err != nil {
		return false
	}
	for _, e := range entries {
		for _, v := range e.Values {
			if s, ok := v.(string); ok && strings.Contains(s, text) {
				return true
			}
		}
	}
	return false
}
