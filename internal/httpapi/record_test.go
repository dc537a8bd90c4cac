package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/httpapi"
	"github.com/supportchat/supportchat/internal/testenv"
	"github.com/supportchat/supportchat/internal/webhook"
)

// The record's guarantees, one defect of the earlier design each (docs/CONSISTENCY.md): every
// test here failed on the design with write marks.

// TestConsistencyTwinStartsAnswerAlike sends one start with one Idempotency-Key to two replicas
// at once while support is away, ten times: both twins, and a later replay, answer the same
// bytes, the away notice included.
func TestConsistencyTwinStartsAnswerAlike(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		a, b := replicas(t, srv)
		reps := []*stack{a, b}
		for i := range 10 {
			ada := a.customer(shop, fmt.Sprintf("cust-twin-%d", i))
			key := fmt.Sprintf("twin-%d", i)
			answers := make([]response, 2)
			var wg sync.WaitGroup
			for j := range 2 {
				wg.Go(func() {
					r, err := ada.on(reps[j]).retry("POST", "/api/v1/chat/start", map[string]string{"message": "where is my order?"}, "Idempotency-Key", key)
					if err != nil {
						t.Errorf("twin %d: %v", j, err)
					}
					answers[j] = r
				})
			}
			wg.Wait()
			replay, err := ada.on(a).retry("POST", "/api/v1/chat/start", map[string]string{"message": "where is my order?"}, "Idempotency-Key", key)
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range append(answers, replay) {
				if r.Status != http.StatusCreated {
					t.Fatalf("try %d, answer %d = %d %s", i, j, r.Status, r.Body)
				}
				if !bytes.Equal(r.Body, answers[0].Body) || r.Header.Get("Location") != answers[0].Header.Get("Location") {
					t.Errorf("try %d: answer %d differs from the first:\n%s\n%s", i, j, r.Body, answers[0].Body)
				}
			}
			var c conversationJSON
			answers[0].JSON(t, &c)
			if len(c.Messages) != 2 || c.Messages[1].Sender.Role != "system" {
				t.Errorf("try %d: the start answers messages %+v, want the first message and the away notice", i, c.Messages)
			}
		}
	})
}

// failingProject wraps a replica's log store: its armed Project fails, as when the database
// becomes unreachable right after a write's entries are committed.
type failingProject struct {
	convlog.Store
	mu    sync.Mutex
	armed bool
}

func (f *failingProject) Project(ctx context.Context, c *chat.Conversation) error {
	f.mu.Lock()
	armed := f.armed
	f.armed = false
	f.mu.Unlock()
	if armed {
		return &chat.Error{Code: chat.Unavailable, Message: "database unavailable", Err: context.DeadlineExceeded}
	}
	return f.Store.Project(ctx, c)
}

// TestConsistencyStartWhoseViewFailed has a start whose entries are committed but whose view
// cannot be written. It is not acknowledged (503), yet the conversation is there: GET, the
// history and sending answer at once from its log; the lists show it once the relay made its
// view; and a retry with the key answers it.
func TestConsistencyStartWhoseViewFailed(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		failing := &failingProject{}
		a, b := replicas(t, srv, stackOptions{store: func(s convlog.Store) convlog.Store { failing.Store = s; return failing }})
		ada := a.customer(shop, "cust-noview")
		a.admin(shop, "admin-1").setPresence("online")
		failing.mu.Lock()
		failing.armed = true
		failing.mu.Unlock()
		body := map[string]string{"message": "hello?"}
		if r := ada.do("POST", "/api/v1/chat/start", body, "Idempotency-Key", "noview"); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("the start whose view failed = %d %s, want 503", r.Status, r.Body)
		}
		conv := startedConversation(t, ada.on(b)) // from the log: a list would make the view
		if conv == "" {
			t.Fatal("the start's entries are not in the log")
		}
		var c conversationJSON
		if r := ada.on(b).do("GET", "/api/v1/chat/"+conv, nil); r.Status != http.StatusOK {
			t.Fatalf("GET /chat/%s = %d %s, want 200", conv, r.Status, r.Body)
		} else if r.JSON(t, &c); len(c.Messages) != 1 || c.Messages[0].Body != "hello?" {
			t.Errorf("GET /chat/%s shows %+v, want the first message", conv, c.Messages)
		}
		if h := ada.on(b).history(conv); len(h) != 1 {
			t.Errorf("history = %+v, want the first message", h)
		}
		ada.on(b).send(conv, "still there?")
		waitListed(t, ada.on(a), conv)
		r := ada.on(b).do("POST", "/api/v1/chat/start", body, "Idempotency-Key", "noview")
		if r.Status != http.StatusCreated {
			t.Fatalf("the retry = %d %s", r.Status, r.Body)
		}
		r.JSON(t, &c)
		if c.ID != conv {
			t.Errorf("the retry answers conversation %s, want %s", c.ID, conv)
		}
		history := ada.fullHistory(conv)
		checkSummary(t, conv, []user{ada}, []*stack{a, b}, summaryCheck{unread: map[string][]int{ada.id: {unreadIn(history, "customer")}}})
	})
}

// dyingWriter wraps a replica's log store: while armed, every request dies right after its
// entries are appended, before its view is written or its events published.
type dyingWriter struct {
	convlog.Store
	mu    sync.Mutex
	armed bool
}

func (d *dyingWriter) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	n, err := d.Store.Append(ctx, entries)
	d.mu.Lock()
	armed := d.armed
	d.mu.Unlock()
	if armed && err == nil {
		runtime.Goexit() // as if the process died here
	}
	return n, err
}

// TestConsistencyManyDeadWriters has writers die after their commit in twelve conversations
// of one customer, with the relay held off: the very next list, on another replica, agrees
// with every history.
func TestConsistencyManyDeadWriters(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		dying := &dyingWriter{}
		a, b := replicas(t, srv, stackOptions{
			store:      func(s convlog.Store) convlog.Store { dying.Store = s; return dying },
			relayGrace: time.Hour, // only readers may bring the views up to the log here
		})
		ada, grace := a.customer(shop, "cust-dead"), a.admin(shop, "admin-1")
		grace.setPresence("online")
		var convs []string
		for i := range 12 {
			convs = append(convs, ada.start(fmt.Sprintf("conversation %d", i)).ID)
		}
		dying.mu.Lock()
		dying.armed = true
		dying.mu.Unlock()
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for _, conv := range convs {
			if r, err := a.send(client, "POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": "the last word"},
				map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + grace.token}); err == nil {
				t.Fatalf("the dying write was answered: %d %s", r.Status, r.Body)
			}
		}
		dying.mu.Lock()
		dying.armed = false
		dying.mu.Unlock()
		for _, viewer := range []user{ada.on(b), b.admin(shop, "admin-viewer")} {
			l := viewer.list("?limit=100")
			for _, conv := range convs {
				i := slices.IndexFunc(l.Conversations, func(c conversationJSON) bool { return c.ID == conv })
				if i < 0 {
					t.Errorf("%s's list lacks conversation %s", viewer.id, conv)
					continue
				}
				if c := l.Conversations[i]; len(c.Messages) != 1 || c.Messages[0].Body != "the last word" {
					t.Errorf("%s's list shows conversation %s with %+v, want the last word", viewer.id, conv, c.Messages)
				}
			}
		}
	})
}

// olderView wraps a replica's store of lists: its armed ListConversations first writes an
// older view of a conversation back over the stored one, as a slow writer's update does on
// FerretDB when it lands after a newer writer's, between the list's start and its query.
type olderView struct {
	chat.Store
	s     *stack
	mu    sync.Mutex
	armed bson.Raw
}

func (o *olderView) ListConversations(ctx context.Context, tenantID string, f chat.ListFilter, after *chat.Position, limit int) ([]*chat.Conversation, error) {
	o.mu.Lock()
	doc := o.armed
	o.armed = nil
	o.mu.Unlock()
	if doc != nil {
		if _, err := o.s.raw.Collection("conversations").ReplaceOne(ctx, bson.M{"_id": doc.Lookup("_id").StringValue()}, doc); err != nil {
			return nil, err
		}
	}
	return o.Store.ListConversations(ctx, tenantID, f, after, limit)
}

// TestConsistencyViewMovedBackBeforeTheList lets a conversation's view move back in time
// after a write was acknowledged and just before a list reads it: the list and GET still
// show the acknowledged write, with the unread counts the history implies.
func TestConsistencyViewMovedBackBeforeTheList(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		older := &olderView{}
		a, b := replicas(t, srv, stackOptions{listStore: func(s chat.Store) chat.Store { older.Store = s; return older }})
		older.s = a
		ada, grace := a.customer(shop, "cust-back"), a.admin(shop, "admin-1")
		grace.setPresence("online")
		conv := ada.start("hello").ID
		grace.send(conv, "hi, how can I help?")
		var doc bson.Raw
		if err := a.raw.Collection("conversations").FindOne(context.Background(), bson.M{"_id": conv}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		ada.on(b).send(conv, "where is my order?") // acknowledged
		older.mu.Lock()
		older.armed = doc
		older.mu.Unlock()
		l := ada.list("")
		if len(l.Conversations) != 1 || len(l.Conversations[0].Messages) != 1 || l.Conversations[0].Messages[0].Body != "where is my order?" {
			t.Fatalf("the list after the view moved back shows %+v, want the acknowledged message", l.Conversations)
		}
		history := ada.fullHistory(conv)
		checkSummary(t, conv, []user{ada, grace}, []*stack{a, b}, summaryCheck{unread: map[string][]int{
			ada.id: {unreadIn(history, "customer")}, grace.id: {unreadIn(history, "admin")},
		}})
	})
}

// rival wraps a replica's log store: for its armed number of appends, another writer takes
// the sequence number first, with a message of its own.
type rival struct {
	convlog.Store
	mu    sync.Mutex
	races int
}

func (r *rival) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	r.mu.Lock()
	race := r.races > 0
	if race {
		r.races--
	}
	r.mu.Unlock()
	if race {
		first := entries[0]
		first.ID = fmt.Sprintf("%024x", time.Now().UnixNano())
		m := *first.Message
		m.ID, m.Body = first.ID, "a rival's message"
		first.Message = &m
		if _, err := r.Store.Append(ctx, []chat.Entry{first}); err != nil {
			return 0, err
		}
	}
	return r.Store.Append(ctx, entries)
}

// TestConsistencyLongLosingStreak has a send lose the race for its sequence number forty times
// in a row: it is not refused with 409, it commits once, after the rivals.
func TestConsistencyLongLosingStreak(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		rivals := &rival{}
		s := newStack(t, stackOptions{server: &srv, store: func(st convlog.Store) convlog.Store { rivals.Store = st; return rivals }})
		ada, grace := s.customer(shop, "cust-race"), s.admin(shop, "admin-1")
		grace.setPresence("online")
		conv := ada.start("hello").ID
		rivals.mu.Lock()
		rivals.races = 40
		rivals.mu.Unlock()
		if r := grace.do("POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": "at last"}); r.Status != http.StatusCreated {
			t.Fatalf("the send that lost 40 races = %d %s, want 201", r.Status, r.Body)
		}
		history := ada.fullHistory(conv)
		if n := countBodies(history, "at last"); n != 1 || history[len(history)-1].Body != "at last" {
			t.Errorf("the send is in the history %d times, last %q; want once, last", n, history[len(history)-1].Body)
		}
		if n := countBodies(history, "a rival's message"); n != 40 {
			t.Errorf("the history holds %d rival messages, want 40", n)
		}
	})
}

// TestConsistencyNothingPilesUp has a write die after its commit, then sends twenty messages
// into the conversation: once the relay ran, no entry is pending and nothing is left behind
// outside the log, its views and the keys' records.
func TestConsistencyNothingPilesUp(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		dying := &dyingWriter{}
		a, b := replicas(t, srv, stackOptions{store: func(s convlog.Store) convlog.Store { dying.Store = s; return dying }})
		ada, grace := a.customer(shop, "cust-pile"), a.admin(shop, "admin-1")
		grace.setPresence("online")
		conv := ada.start("hello").ID
		dying.mu.Lock()
		dying.armed = true
		dying.mu.Unlock()
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if _, err := a.send(client, "POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": "dies"},
			map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + ada.token}); err == nil {
			t.Fatal("the dying write was answered")
		}
		dying.mu.Lock()
		dying.armed = false
		dying.mu.Unlock()
		for i := range 20 {
			ada.on([]*stack{a, b}[i%2]).send(conv, fmt.Sprintf("message %d", i))
		}
		ctx := context.Background()
		waitNothingPending(t, a)
		drainHooks(t, a)
		names, err := a.raw.ListCollectionNames(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			// migrations records, once, the migrations a server ran (customer_id on FerretDB).
			if slices.Contains([]string{"entries", "conversations", "idempotency", "settings", "admins", "migrations"}, name) {
				continue
			}
			if n, err := a.raw.Collection(name).CountDocuments(ctx, bson.M{}); err != nil || n > 0 {
				t.Errorf("collection %s holds %d documents (%v), want none", name, n, err)
			}
		}
	})
}

// TestConsistencyReadAgainstAViewBehind marks a conversation read while its view is behind its
// log (its last writer died after the commit, and the relay is held off): the read mark goes
// to the log's newest message, not the view's, which the admin had read already.
func TestConsistencyReadAgainstAViewBehind(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		dying := &dyingWriter{}
		a, b := replicas(t, srv, stackOptions{
			store:      func(s convlog.Store) convlog.Store { dying.Store = s; return dying },
			relayGrace: time.Hour,
		})
		ada, grace := a.customer(shop, "cust-behind"), a.admin(shop, "admin-1")
		grace.setPresence("online")
		conv := ada.start("hello").ID
		grace.send(conv, "hi!") // the team has read everything
		dying.mu.Lock()
		dying.armed = true
		dying.mu.Unlock()
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if _, err := a.send(client, "POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": "one more thing"},
			map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + ada.token}); err == nil {
			t.Fatal("the dying write was answered")
		}
		dying.mu.Lock()
		dying.armed = false
		dying.mu.Unlock()
		r := grace.on(b).do("POST", "/api/v1/chat/"+conv+"/read", nil)
		var st struct {
			Unread int `json:"unread_count"`
		}
		if r.Status != http.StatusOK {
			t.Fatalf("POST /read = %d %s", r.Status, r.Body)
		}
		r.JSON(t, &st)
		if st.Unread != 0 {
			t.Errorf("POST /read answers unread_count %d, want 0: the customer's last message is read", st.Unread)
		}
		history := ada.fullHistory(conv)
		checkSummary(t, conv, []user{grace}, []*stack{a, b}, summaryCheck{unread: map[string][]int{grace.id: {0}}})
		if got := history[len(history)-1].Body; got != "one more thing" {
			t.Errorf("the history ends with %q, want the dead writer's message", got)
		}
	})
}

// drainHooks makes fan-out passes of the webhook workers, as every replica of the service runs
// them, until no change of the record waits for webhooks: the stack runs no workers of its own.
func drainHooks(t *testing.T, s *stack) {
	t.Helper()
	hooks := webhook.NewWorkers(webhook.Options{
		Store:   s.store,
		Sources: []webhook.Source{s.log, s.store.SupportChanges()},
		Render: func(e chat.Event) (json.RawMessage, error) {
			p, err := httpapi.RenderEvent(e)
			return p.Admin, err
		},
	})
	ctx := context.Background()
	for range 100 {
		left := 0
		for _, src := range []webhook.Source{s.log, s.store.SupportChanges()} {
			recs, err := src.Hooked(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			left += len(recs)
		}
		if left == 0 {
			return
		}
		if _, err := hooks.FanOut(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("changes still wait for webhooks after 100 fan-out passes")
}
