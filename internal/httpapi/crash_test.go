package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/testenv"
)

// crasher wraps a replica's stores and kills the request that makes its armed write step: once
// the store call returns, the handler's goroutine exits on the spot, as if the process died
// there. The steps are every write the request makes (each entry appended, each view
// projected, each publication marked, each idempotency record or response written), so arming
// step 1, 2, ... puts a crash between each pair of write steps.
type crasher struct {
	convlog.Store
	idem idempotency.Store

	mu      sync.Mutex
	armed   int // the step after which to crash; 0 for none
	steps   int
	crashed bool
}

var (
	_ convlog.Store     = (*crasher)(nil)
	_ idempotency.Store = (*crasher)(nil)
)

// arm makes the request that follows crash after its step n (0: count steps, crash never).
func (c *crasher) arm(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.steps, c.crashed = n, 0, false
}

// result returns how many steps the armed request made and whether it crashed.
func (c *crasher) result() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.steps, c.crashed
}

// step counts one write step of a request and crashes when it is the armed one; the relay's
// steps, and what writes leave to it once they answered, are not the request's.
func (c *crasher) step(ctx context.Context) {
	if isRelay(ctx) {
		return
	}
	c.mu.Lock()
	c.steps++
	crash := c.armed > 0 && c.steps == c.armed
	if crash {
		c.crashed, c.armed = true, 0
	}
	c.mu.Unlock()
	if crash {
		runtime.Goexit()
	}
}

// Append appends one entry at a time, so a crash can fall between two entries of one write.
func (c *crasher) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	for i, e := range entries {
		if _, err := c.Store.Append(ctx, []chat.Entry{e}); err != nil {
			return i, err
		}
		c.step(ctx)
	}
	return len(entries), nil
}

func (c *crasher) Project(ctx context.Context, conv *chat.Conversation) error {
	defer c.step(ctx)
	return c.Store.Project(ctx, conv)
}

func (c *crasher) Published(ctx context.Context, entries []chat.Entry) error {
	defer c.step(ctx)
	return c.Store.Published(ctx, entries)
}

func (c *crasher) Reserve(ctx context.Context, rec idempotency.Record) (idempotency.Record, bool, error) {
	defer c.step(ctx)
	return c.idem.Reserve(ctx, rec)
}

func (c *crasher) SaveResponse(ctx context.Context, rec idempotency.Record, resp idempotency.Response) (idempotency.Response, error) {
	defer c.step(ctx)
	return c.idem.SaveResponse(ctx, rec, resp)
}

func (c *crasher) Release(ctx context.Context, tenantID, key string) error {
	defer c.step(ctx)
	return c.idem.Release(ctx, tenantID, key)
}

// crashWrite is a write whose every crash point the crash test tries.
type crashWrite struct {
	name string
	// prepare makes what the write needs, for the n-th attempt, and returns the customer and
	// the conversation ("" when the write starts it).
	prepare func(t *testing.T, a *stack, n int) (customer user, conv string)
	// send makes the write as it would be retried: same body, same Idempotency-Key.
	send func(r *stack, customer user, conv string, client *http.Client) (response, error)
	// after checks the conversation once the write is known to be done exactly once; before
	// the retry, the summary must show the state before or after the write.
	after func(t *testing.T, a *stack, customer user, conv string, history []messageJSON)
	// summary returns what the summary may show before the retry (done: after the retry).
	summary func(a *stack, customer user, history []messageJSON, done bool) summaryCheck
	// updates is how many conversation.updated events the write publishes.
	updates int
	// answer, when set, checks the answer of the retry against the history.
	answer func(t *testing.T, r response, history []messageJSON)
}

// TestConsistencyCrashBetweenWriteSteps kills each kind of write after each of its write steps
// on one replica, then checks on the other replica that the next read agrees with the
// history at once, that retrying the write (with its Idempotency-Key where it has one) leaves
// it done exactly once, and that an admin's event stream, open throughout, receives every
// committed message exactly once: from the write, from its retry, or from the log's relay.
func TestConsistencyCrashBetweenWriteSteps(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		// crashingReplicas returns two replicas, the first with its stores wrapped by crash. A
		// database of their own keeps each write's runs quick on FerretDB, which scans whole
		// collections.
		crashingReplicas := func(t *testing.T) (*crasher, *stack, *stack) {
			crash := &crasher{}
			a, b := replicas(t, srv, stackOptions{
				store:       func(s convlog.Store) convlog.Store { crash.Store = s; return crash },
				idempotency: func(s idempotency.Store) idempotency.Store { crash.idem = s; return crash },
			})
			return crash, a, b
		}
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // no transparent retries
		for _, w := range crashWrites() {
			t.Run(w.name, func(t *testing.T) {
				crash, a, b := crashingReplicas(t)
				customer, conv := w.prepare(t, a, 0)
				crash.arm(0)
				if r, err := w.send(a, customer, conv, client); err != nil || r.Status/100 != 2 {
					t.Fatalf("the write without a crash = %d %s %v", r.Status, r.Body, err)
				}
				steps, _ := crash.result()
				if steps == 0 {
					t.Fatal("the write made no write steps")
				}
				for n := 1; n <= steps; n++ {
					t.Run(fmt.Sprintf("after step %d of %d", n, steps), func(t *testing.T) {
						watcher := b.admin(shop, "admin-watcher").events(t, "")
						customer, conv := w.prepare(t, a, n)
						crash.arm(n)
						if r, err := w.send(a, customer, conv, client); err == nil {
							t.Fatalf("the crashed write was answered: %d %s", r.Status, r.Body)
						}
						if _, crashed := crash.result(); !crashed {
							t.Fatal("the write did not reach the crash")
						}
						crash.arm(0)
						// A reader on the other replica finds the conversation as its log stands.
						if conv == "" {
							conv = startedConversation(t, customer.on(b))
						}
						if conv != "" {
							if r := customer.on(b).do("GET", "/api/v1/chat/"+conv, nil); r.Status != http.StatusOK {
								t.Fatalf("GET /chat/%s after the crash = %d %s, want 200: it is committed", conv, r.Status, r.Body)
							}
							// A start that died before making its view is in the lists once the
							// log's relay made it, within seconds.
							waitListed(t, customer.on(b), conv)
							history := customer.on(b).fullHistory(conv)
							checkSummary(t, conv, []user{customer, b.admin(shop, "admin-viewer")}, []*stack{b, a}, w.summary(a, customer, history, false))
						}
						// The client retries on the other replica: the write is then done once.
						retried, err := w.send(b, customer, conv, http.DefaultClient)
						if err != nil || retried.Status/100 != 2 {
							t.Fatalf("the retry = %d %s %v", retried.Status, retried.Body, err)
						}
						if conv == "" {
							conv = onlyConversation(t, customer.on(b))
						}
						history := customer.on(b).fullHistory(conv)
						checkSummary(t, conv, []user{customer, b.admin(shop, "admin-viewer")}, []*stack{b, a}, w.summary(a, customer, history, true))
						w.after(t, a, customer, conv, history)
						if w.answer != nil {
							w.answer(t, retried, history)
						}
						watcher.expectMessagesOnce(ids(history), w.updates)
					})
				}
			})
		}
	})
}

// waitListed waits until u's list shows conversation conv.
func waitListed(t *testing.T, u user, conv string) {
	t.Helper()
	for deadline := time.Now().Add(streamTimeout); ; time.Sleep(50 * time.Millisecond) {
		for _, c := range u.list("?limit=100").Conversations {
			if c.ID == conv {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's list does not show conversation %s within %s", u.id, conv, streamTimeout)
		}
	}
}

// startedConversation returns the id of the one conversation u has started, as its log holds
// it, or "" when u has none. It reads the log itself, not a list: a start that died before
// making its view is in no list until the relay makes it, but its id answers at once.
func startedConversation(t *testing.T, u user) string {
	t.Helper()
	var e struct {
		ConversationID string `bson:"conversation_id"`
	}
	err := u.s.entries(t).FindOne(context.Background(), bson.M{"tenant_id": u.tenant, "customer_id": u.id}).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return e.ConversationID
}

// expectMessagesOnce reads the stream until it has delivered a message.created for each of
// msgs and at least updates conversation.updated events, failing when a message's event
// comes twice or another event arrives for a message not in msgs.
func (es *eventStream) expectMessagesOnce(msgs []string, updates int) {
	es.t.Helper()
	want := map[string]bool{}
	for _, id := range msgs {
		want[id] = true
	}
	seen := map[string]int{}
	for len(seen) < len(want) || updates > 0 {
		ev := es.next(false)
		switch ev.Type {
		case "message.created":
			m := decode[messageEvent](es.t, ev.Data)
			if !want[m.Message.ID] {
				es.t.Fatalf("message.created for %s, which is in no history", m.Message.ID)
			}
			if seen[m.Message.ID]++; seen[m.Message.ID] > 1 {
				es.t.Fatalf("message.created for %s twice", m.Message.ID)
			}
		case "conversation.updated":
			updates--
		}
	}
}

// onlyConversation returns the id of the one conversation u lists, or "" when u has none.
func onlyConversation(t *testing.T, u user) string {
	t.Helper()
	l := u.list("")
	switch len(l.Conversations) {
	case 0:
		return ""
	case 1:
		return l.Conversations[0].ID
	}
	t.Fatalf("%s lists %d conversations, want at most 1", u.id, len(l.Conversations))
	return ""
}

// countBodies returns how many messages of history have body.
func countBodies(history []messageJSON, body string) int {
	n := 0
	for _, m := range history {
		if m.Body == body {
			n++
		}
	}
	return n
}

// countSystem returns how many system messages history has.
func countSystem(history []messageJSON) int {
	n := 0
	for _, m := range history {
		if m.Sender.Role == "system" {
			n++
		}
	}
	return n
}

// crashWrites are the writes the crash test kills: starting a conversation and a customer's
// message while support is away (each with its away notice), an admin's reply, a read mark and
// an admin's update.
func crashWrites() []crashWrite {
	key := func(customer user) string { return "crash-" + customer.id }
	admin := func(a *stack) user { return a.admin(shop, "admin-crash") }
	messagesSummary := func(a *stack, customer user, history []messageJSON, _ bool) summaryCheck {
		return summaryCheck{unread: map[string][]int{
			customer.id:    {unreadIn(history, "customer")},
			"admin-viewer": {unreadIn(history, "admin")},
		}}
	}
	post := func(sender func(a *stack, customer user) user) func(r *stack, customer user, conv string, client *http.Client) (response, error) {
		return func(r *stack, customer user, conv string, client *http.Client) (response, error) {
			who := sender(r, customer).on(r)
			return r.send(client, "POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": "crash?"},
				map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + who.token, "Idempotency-Key": key(customer)})
		}
	}
	onceWith := func(notices int) func(t *testing.T, a *stack, customer user, conv string, history []messageJSON) {
		return func(t *testing.T, _ *stack, _ user, _ string, history []messageJSON) {
			if n := countBodies(history, "crash?"); n != 1 {
				t.Errorf("the retried message is in the history %d times, want once", n)
			}
			if n := countSystem(history); n != notices {
				t.Errorf("the history holds %d away notices, want %d", n, notices)
			}
		}
	}
	return []crashWrite{
		{
			name: "start while away",
			prepare: func(t *testing.T, a *stack, n int) (user, string) {
				return a.customer(shop, fmt.Sprintf("cust-start-%d", n)), ""
			},
			send: func(r *stack, customer user, _ string, client *http.Client) (response, error) {
				return r.send(client, "POST", "/api/v1/chat/start", map[string]string{"message": "crash?"},
					map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + customer.on(r).token, "Idempotency-Key": key(customer)})
			},
			summary: messagesSummary,
			after:   onceWith(1),
			// The retry answers what the write committed, whichever attempt committed it:
			// the first message and its away notice, which is the whole history.
			answer: func(t *testing.T, r response, history []messageJSON) {
				var c conversationJSON
				r.JSON(t, &c)
				if diff := cmp.Diff(ids(history), ids(c.Messages)); diff != "" {
					t.Errorf("the retried start answers other messages than it committed (-history +answer):\n%s", diff)
				}
			},
		},
		{
			name: "customer message while away",
			prepare: func(t *testing.T, a *stack, n int) (user, string) {
				customer := a.customer(shop, fmt.Sprintf("cust-send-%d", n))
				admin(a).setPresence("online")
				conv := customer.start("hello").ID
				admin(a).setPresence("away")
				return customer, conv
			},
			send:    post(func(_ *stack, customer user) user { return customer }),
			summary: messagesSummary,
			after:   onceWith(1),
		},
		{
			name: "admin reply",
			prepare: func(t *testing.T, a *stack, n int) (user, string) {
				customer := a.customer(shop, fmt.Sprintf("cust-reply-%d", n))
				admin(a).setPresence("online")
				return customer, customer.start("hello").ID
			},
			send:    post(func(r *stack, _ user) user { return admin(r) }),
			summary: messagesSummary,
			after:   onceWith(0),
		},
		{
			name: "read mark",
			prepare: func(t *testing.T, a *stack, n int) (user, string) {
				customer := a.customer(shop, fmt.Sprintf("cust-read-%d", n))
				admin(a).setPresence("online")
				conv := customer.start("hello").ID
				customer.send(conv, "are you there?")
				return customer, conv
			},
			send: func(r *stack, customer user, conv string, client *http.Client) (response, error) {
				return r.send(client, "POST", "/api/v1/chat/"+conv+"/read", nil,
					map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + admin(r).token})
			},
			summary: func(_ *stack, customer user, history []messageJSON, done bool) summaryCheck {
				team := []int{unreadIn(history, "admin", history[len(history)-1].ID)}
				if !done {
					team = append(team, unreadIn(history, "admin"))
				}
				return summaryCheck{unread: map[string][]int{"admin-viewer": team, customer.id: {unreadIn(history, "customer")}}}
			},
			after:   func(*testing.T, *stack, user, string, []messageJSON) {},
			updates: 1,
		},
		{
			name: "admin update",
			prepare: func(t *testing.T, a *stack, n int) (user, string) {
				customer := a.customer(shop, fmt.Sprintf("cust-update-%d", n))
				admin(a).setPresence("online")
				return customer, customer.start("hello").ID
			},
			send: func(r *stack, _ user, conv string, client *http.Client) (response, error) {
				return r.send(client, "PATCH", "/api/v1/chat/"+conv, map[string]string{"status": "resolved", "assignee": "admin-crash"},
					map[string]string{"X-Tenant-ID": shop, "Authorization": "Bearer " + admin(r).token})
			},
			summary: func(_ *stack, _ user, _ []messageJSON, done bool) summaryCheck {
				if done {
					return summaryCheck{status: []string{"resolved"}}
				}
				return summaryCheck{status: []string{"open", "resolved"}}
			},
			after: func(t *testing.T, a *stack, _ user, conv string, _ []messageJSON) {
				var c conversationJSON
				admin(a).do("GET", "/api/v1/chat/"+conv, nil).JSON(t, &c)
				if c.Assignee == nil || *c.Assignee != "admin-crash" {
					t.Errorf("assignee = %v, want admin-crash", c.Assignee)
				}
			},
			updates: 1,
		},
	}
}

// lostAnswer wraps a conversation store: its armed Append stores the entries and then reports a
// timeout, as when the database applied an insert whose answer never arrived.
type lostAnswer struct {
	convlog.Store
	mu    sync.Mutex
	armed bool
}

func (l *lostAnswer) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	n, err := l.Store.Append(ctx, entries)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || !l.armed {
		return n, err
	}
	l.armed = false
	return 0, &chat.Error{Code: chat.Unavailable, Message: "database unavailable", Err: context.DeadlineExceeded}
}

// TestConsistencyRetryAfterALostAnswer has a send time out after its insert landed: the client
// gets 503, the key is released for a corrected request, yet a retry of the same request answers
// the stored message and a request with another body under the key is refused, not stored. The
// message's event reaches an open stream once.
func TestConsistencyRetryAfterALostAnswer(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		lost := &lostAnswer{}
		a, b := replicas(t, srv, stackOptions{store: func(s convlog.Store) convlog.Store {
			lost.Store = s
			return lost
		}})
		ada := a.customer(shop, "cust-ada")
		a.admin(shop, "admin-1").setPresence("online")
		watcher := b.admin(shop, "admin-watcher").events(t, "")
		conv := ada.start("hello").ID
		post := func(u user, body string) response {
			return u.do("POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": body}, "Idempotency-Key", "lost-1")
		}
		lost.mu.Lock()
		lost.armed = true
		lost.mu.Unlock()
		if r := post(ada, "where is it?"); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("the write whose answer was lost = %d %s, want 503", r.Status, r.Body)
		}
		other := post(ada.on(b), "something else")
		if p := other.Problem(t, http.StatusUnprocessableEntity); p.Slug() != "idempotency-key-reused" {
			t.Errorf("another body under the key = %s, want idempotency-key-reused", p.Slug())
		}
		var m messageJSON
		r := post(ada.on(b), "where is it?")
		if r.Status != http.StatusCreated {
			t.Fatalf("the retry = %d %s", r.Status, r.Body)
		}
		r.JSON(t, &m)
		history := ada.on(b).fullHistory(conv)
		if n := countBodies(history, "where is it?"); n != 1 || m.Body != "where is it?" {
			t.Errorf("the retried message is in the history %d times (answer %q), want once", n, m.Body)
		}
		if n := countBodies(history, "something else"); n != 0 {
			t.Errorf("the other body was stored %d times, want never", n)
		}
		// The first attempt published nothing; the retry publishes what it found committed.
		watcher.expectMessagesOnce(ids(history), 0)
	})
}

// failingNotice wraps a conversation store: appending an away notice fails, as when the
// database becomes unreachable right after a message is committed.
type failingNotice struct{ convlog.Store }

func (f failingNotice) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	for i, e := range entries {
		if e.Message != nil && e.Message.Sender.Role == chat.RoleSystem {
			if _, err := f.Store.Append(ctx, entries[:i]); err != nil {
				return 0, err
			}
			return i, &chat.Error{Code: chat.Unavailable, Message: "database unavailable", Err: context.DeadlineExceeded}
		}
	}
	return f.Store.Append(ctx, entries)
}

// TestConsistencyMessageWithoutItsNotice checks that a message whose away notice
// cannot be stored is still answered 201: the message is committed, and failing the request
// would invite the client to send it again.
func TestConsistencyMessageWithoutItsNotice(t *testing.T) {
	s := newStack(t, stackOptions{store: func(st convlog.Store) convlog.Store { return failingNotice{st} }})
	ada := s.customer(shop, "cust-ada")
	r := ada.do("POST", "/api/v1/chat/start", map[string]string{"message": "anyone there?"})
	if r.Status != http.StatusCreated {
		t.Fatalf("start while the notice cannot be stored = %d %s, want 201", r.Status, r.Body)
	}
	var c conversationJSON
	r.JSON(t, &c)
	ada.send(c.ID, "hello?")
	history := ada.history(c.ID)
	if len(history) != 2 || countSystem(history) != 0 {
		t.Errorf("history = %+v, want the two messages and no notice", history)
	}
	checkSummary(t, c.ID, []user{ada}, []*stack{s}, summaryCheck{unread: map[string][]int{ada.id: {0}}})
}
