package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The consistency suite: the write path under concurrency, across two replicas sharing one
// database, on every MongoDB wire server testenv offers (FerretDB on SQLite and on PostgreSQL,
// and MongoDB when CHAT_TEST_MONGODB_URI names one). docs/CONSISTENCY.md says what it proves;
// run it repeatedly with
//
//	go test -race -count=20 -run '^TestConsistency' ./internal/httpapi/

// forEachServer runs test once per MongoDB wire server, as parallel subtests named by the
// server.
func forEachServer(t *testing.T, test func(t *testing.T, srv testenv.MongoServer)) {
	for _, srv := range testenv.MongoServers() {
		t.Run(srv.Name, func(t *testing.T) {
			t.Parallel()
			test(t, srv)
		})
	}
}

// replicas returns two replicas of the service over one database of srv; opts vary the first.
func replicas(t *testing.T, srv testenv.MongoServer, opts ...stackOptions) (a, b *stack) {
	t.Helper()
	var o stackOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.server = &srv
	a = newStack(t, o)
	b = newStack(t, stackOptions{replicaOf: a, relayGrace: o.relayGrace})
	return a, b
}

// on returns u calling replica r instead.
func (u user) on(r *stack) user {
	u.s = r
	return u
}

// try sends a request as u from any goroutine; a request that gets no answer is an error.
func (u user) try(method, path string, body any, headers ...string) (response, error) {
	h := map[string]string{"X-Tenant-ID": u.tenant, "Authorization": "Bearer " + u.token}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return u.s.send(u.s.srv.Client(), method, path, body, h)
}

// retry sends a request as u like a careful client: an answer of 5xx or none at all leaves the
// outcome unknown, so it sends the same request again (same Idempotency-Key, if any), a few
// times, and returns the last answer. On a loaded machine the embedded servers may time out.
func (u user) retry(method, path string, body any, headers ...string) (response, error) {
	var r response
	var err error
	for attempt := range 5 {
		if r, err = u.try(method, path, body, headers...); err == nil && r.Status < 500 {
			return r, nil
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	return r, err
}

// fullHistory returns every message of a conversation as u sees it, oldest first, page by page.
func (u user) fullHistory(convID string) []messageJSON {
	u.s.t.Helper()
	var pages [][]messageJSON
	cursor := ""
	for {
		q := "?limit=7"
		if cursor != "" {
			q += "&before=" + cursor
		}
		r := u.do("GET", "/api/v1/chat/"+convID+"/messages"+q, nil)
		if r.Status != http.StatusOK {
			u.s.t.Fatalf("GET /chat/%s/messages%s = %d %s", convID, q, r.Status, r.Body)
		}
		var page struct {
			Messages   []messageJSON `json:"messages"`
			NextCursor *string       `json:"next_cursor"`
		}
		r.JSON(u.s.t, &page)
		pages = append(pages, page.Messages)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	var all []messageJSON
	for i := len(pages) - 1; i >= 0; i-- {
		all = append(all, pages[i]...)
	}
	return all
}

// unreadIn returns how many messages of the other side come after what role ("customer" or
// "admin") has read in history: its own messages, and the messages readTo it marked read.
// System messages count for neither side.
func unreadIn(history []messageJSON, role string, readTo ...string) int {
	pos := -1
	for i, m := range history {
		if m.Sender.Role == role || slices.Contains(readTo, m.ID) {
			pos = i
		}
	}
	other := "admin"
	if role == "admin" {
		other = "customer"
	}
	n := 0
	for _, m := range history[pos+1:] {
		if m.Sender.Role == other {
			n++
		}
	}
	return n
}

// summaryCheck is what a conversation's summary must show, beyond what its history implies.
type summaryCheck struct {
	// unread are the acceptable unread counts of each viewer, by user id.
	unread map[string][]int
	// status, when set, are the acceptable statuses.
	status []string
}

// checkSummary fails the test unless the conversation's summary, as every viewer sees it on
// every replica in the list and on its own, agrees with its history: the newest messages, the
// participants, updated_at and the unread counts.
func checkSummary(t *testing.T, convID string, viewers []user, reps []*stack, want summaryCheck) []messageJSON {
	t.Helper()
	history := viewers[0].on(reps[0]).fullHistory(convID)
	if len(history) == 0 {
		t.Fatalf("conversation %s has no history", convID)
	}
	tail := history[max(0, len(history)-20):]
	wantParticipants := []string{}
	for _, m := range history {
		if m.Sender.Role != "system" && !slices.Contains(wantParticipants, m.Sender.ID) {
			wantParticipants = append(wantParticipants, m.Sender.ID)
		}
	}
	for _, r := range reps {
		for _, v := range viewers {
			v = v.on(r)
			var views []conversationJSON
			// Every page, with the most messages a page may embed per conversation at 25 a page.
			for q := "?limit=25&messages=20"; q != ""; {
				l := v.list(q)
				for _, c := range l.Conversations {
					if c.ID == convID {
						views = append(views, c)
					}
				}
				q = ""
				if l.NextCursor != nil {
					q = "?limit=25&messages=20&cursor=" + url.QueryEscape(*l.NextCursor)
				}
			}
			if len(views) != 1 {
				t.Fatalf("%s's list on %s shows conversation %s %d times, want once", v.id, r.srv.URL, convID, len(views))
			}
			var one conversationJSON
			v.do("GET", "/api/v1/chat/"+convID+"?messages=20", nil).JSON(t, &one)
			views = append(views, one)
			for i, c := range views {
				where := fmt.Sprintf("%s's %s on %s", v.id, []string{"list", "GET /chat/{id}"}[i], r.srv.URL)
				if diff := cmp.Diff(ids(tail), ids(c.Messages)); diff != "" {
					t.Errorf("%s: the newest messages differ from the history's (-history +summary):\n%s", where, diff)
				}
				var parts []string
				for _, p := range c.Participants {
					parts = append(parts, p.ID)
				}
				if diff := cmp.Diff(wantParticipants, parts); diff != "" {
					t.Errorf("%s: participants differ from the history's (-history +summary):\n%s", where, diff)
				}
				if c.Updated < history[len(history)-1].CreatedAt {
					t.Errorf("%s: updated_at %s is before the newest message, %s", where, c.Updated, history[len(history)-1].CreatedAt)
				}
				if ok := want.unread[v.id]; ok != nil && !slices.Contains(ok, int(c.Unread)) {
					t.Errorf("%s: unread_count = %d, want one of %v", where, c.Unread, ok)
				}
				if want.status != nil && !slices.Contains(want.status, c.Status) {
					t.Errorf("%s: status = %q, want one of %v", where, c.Status, want.status)
				}
			}
		}
	}
	return history
}

// ids returns the ids of msgs.
func ids(msgs []messageJSON) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// TestConsistencyConcurrentWriters has 4 clients of a customer and 4 admins post 4 messages each
// into one conversation at once, through two replicas, while support is away (so the
// customer's messages race for the one away notice of the period) and readers list. Half of
// the posts are sent twice at once with the same Idempotency-Key, one to each replica. Every
// acknowledged message must be in the history exactly once, in each client's order, with one
// away notice, and the summaries must agree with the history.
func TestConsistencyConcurrentWriters(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		a, b := replicas(t, srv)
		reps := []*stack{a, b}
		ada := a.customer(shop, "cust-ada")
		admins := []user{a.admin(shop, "admin-1"), a.admin(shop, "admin-2"), a.admin(shop, "admin-3"), a.admin(shop, "admin-4")}
		admins[0].setPresence("online")
		conv := ada.start("hello").ID
		admins[0].setPresence("away") // a new away period begins: its notice is up for grabs

		const writers, perWriter = 8, 4
		type ack struct {
			writer, n int
			id, body  string
		}
		var (
			mu   sync.Mutex
			acks []ack
		)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf(format, args...)
		}
		var wg sync.WaitGroup
		for w := range writers {
			who := ada
			if w%2 == 1 {
				who = admins[w/2]
			}
			wg.Go(func() {
				for n := range perWriter {
					body := fmt.Sprintf("writer %d message %d", w, n)
					key := fmt.Sprintf("%s-%d-%d", conv, w, n)
					twins := 1
					if n%2 == 0 {
						twins = 2 // the same request on both replicas at once
					}
					got := make([]string, twins)
					var tw sync.WaitGroup
					for i := range twins {
						tw.Go(func() {
							r, err := who.on(reps[(w+i)%2]).retry("POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": body}, "Idempotency-Key", key)
							if err != nil || r.Status != http.StatusCreated {
								fail("writer %d message %d: %d %s %v", w, n, r.Status, r.Body, err)
								return
							}
							var m messageJSON
							if err := json.Unmarshal(r.Body, &m); err != nil || m.Body != body {
								fail("writer %d message %d: answer %s", w, n, r.Body)
							}
							got[i] = m.ID
						})
					}
					tw.Wait()
					if twins == 2 && got[0] != got[1] {
						fail("writer %d message %d: twins were answered with messages %s and %s", w, n, got[0], got[1])
					}
					mu.Lock()
					acks = append(acks, ack{writer: w, n: n, id: got[0], body: body})
					mu.Unlock()
				}
			})
		}
		stop := make(chan struct{})
		var readers sync.WaitGroup
		for i, viewer := range []user{ada, admins[0]} {
			readers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if r, err := viewer.on(reps[i]).retry("GET", "/api/v1/chat/list?messages=5", nil); err != nil || r.Status != http.StatusOK {
						fail("list while writing: %d %v", r.Status, err)
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		if t.Failed() {
			t.FailNow()
		}

		history := checkSummary(t, conv, []user{ada, admins[1]}, reps, summaryCheck{unread: map[string][]int{}})
		seen := map[string]int{}
		var notices int
		for _, m := range history {
			seen[m.ID]++
			if m.Sender.Role == "system" {
				notices++
			}
		}
		if notices != 1 {
			t.Errorf("the history holds %d away notices, want 1 for the one away period", notices)
		}
		if want := 1 + writers*perWriter + 1; len(history) != want {
			t.Errorf("the history holds %d messages, want %d: the first, %d acknowledged and one notice", len(history), want, writers*perWriter)
		}
		position := map[string]int{}
		for i, m := range history {
			position[m.ID] = i
		}
		last := make([]int, writers)
		for _, a := range acks {
			if seen[a.id] != 1 {
				t.Errorf("acknowledged message %q (%s) is in the history %d times, want once", a.body, a.id, seen[a.id])
			}
		}
		slices.SortFunc(acks, func(x, y ack) int { return (x.writer*perWriter + x.n) - (y.writer*perWriter + y.n) })
		for _, a := range acks {
			if p, ok := position[a.id]; ok {
				if a.n > 0 && p < last[a.writer] {
					t.Errorf("writer %d's message %d comes before its message %d in the history", a.writer, a.n, a.n-1)
				}
				last[a.writer] = p
			}
		}
		// Whoever wrote last has read everything before; the summaries say what the history implies.
		checkSummary(t, conv, []user{ada, admins[1]}, reps, summaryCheck{unread: map[string][]int{
			ada.id:       {unreadIn(history, "customer")},
			admins[1].id: {unreadIn(history, "admin")},
		}})
	})
}

// TestConsistencyReadMarks has a customer and two admins post while the customer and two
// admins mark messages read, each a message it has seen, through both replicas at once; then
// the readers race on their own, each marking the newest message and then the oldest. Read
// marks never move back, so afterwards each side's unread count must be what the history
// implies from the furthest acknowledged read of the side and its own messages.
func TestConsistencyReadMarks(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		a, b := replicas(t, srv)
		reps := []*stack{a, b}
		ada := a.customer(shop, "cust-ada")
		grace, alan := a.admin(shop, "admin-grace"), a.admin(shop, "admin-alan")
		grace.setPresence("online")
		conv := ada.start("hello").ID

		var (
			mu    sync.Mutex
			reads = map[string][]string{} // role → message ids acknowledged as read
		)
		fail := func(format string, args ...any) { t.Errorf(format, args...) }
		// read marks as who, on replica rep, the message pick chooses from the history.
		read := func(who user, rep int, pick func([]messageJSON) messageJSON) {
			r, err := who.on(reps[rep%2]).retry("GET", "/api/v1/chat/"+conv+"/messages?limit=100", nil)
			if err != nil || r.Status != http.StatusOK {
				fail("history: %d %v", r.Status, err)
				return
			}
			var page struct {
				Messages []messageJSON `json:"messages"`
			}
			_ = json.Unmarshal(r.Body, &page)
			target := pick(page.Messages)
			r, err = who.on(reps[(rep+1)%2]).retry("POST", "/api/v1/chat/"+conv+"/read", map[string]string{"message_id": target.ID})
			if err != nil || r.Status != http.StatusOK {
				fail("read: %d %s %v", r.Status, r.Body, err)
				return
			}
			role := "admin"
			if who.id == ada.id {
				role = "customer"
			}
			mu.Lock()
			reads[role] = append(reads[role], target.ID)
			mu.Unlock()
		}
		newest := func(h []messageJSON) messageJSON { return h[len(h)-1] }
		older := func(h []messageJSON) messageJSON { return h[max(0, len(h)-3)] }
		oldest := func(h []messageJSON) messageJSON { return h[0] }
		readers := []user{ada, grace, alan}

		var wg sync.WaitGroup
		for w, who := range []user{ada, grace, alan, ada} {
			wg.Go(func() {
				for n := range 4 {
					r, err := who.on(reps[(w+n)%2]).retry("POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": fmt.Sprintf("%s %d", who.id, n)},
						"Idempotency-Key", fmt.Sprintf("%d-%d", w, n))
					if err != nil || r.Status != http.StatusCreated {
						fail("post: %d %s %v", r.Status, r.Body, err)
					}
				}
			})
		}
		for rd, who := range readers {
			wg.Go(func() {
				for n := range 6 {
					// An older message every other time: late, lower marks must not win.
					read(who, rd+n, []func([]messageJSON) messageJSON{newest, older}[n%2])
				}
			})
		}
		wg.Wait()
		// The writers are done; the readers race on: each reader's last mark is the lowest.
		for rd, who := range readers {
			wg.Go(func() {
				read(who, rd, newest)
				read(who, rd+1, oldest)
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		history := ada.fullHistory(conv)
		want := summaryCheck{unread: map[string][]int{
			ada.id:   {unreadIn(history, "customer", reads["customer"]...)},
			grace.id: {unreadIn(history, "admin", reads["admin"]...)},
			alan.id:  {unreadIn(history, "admin", reads["admin"]...)},
		}}
		checkSummary(t, conv, []user{ada, grace, alan}, reps, want)
		// The team's unread filter agrees with the team's count.
		unreadList := grace.list("?unread=true")
		listed := slices.ContainsFunc(unreadList.Conversations, func(c conversationJSON) bool { return c.ID == conv })
		if wantListed := want.unread[grace.id][0] > 0; listed != wantListed {
			t.Errorf("unread=true lists the conversation: %v, want %v (team unread %d)", listed, wantListed, want.unread[grace.id][0])
		}
	})
}

// lateView wraps a replica's conversation store: after the armed Project lands, it holds the
// writer until released, then writes the view that writer wrote once more over whatever is
// stored by then. That is what an update on FerretDB does when it read the document before a
// newer writer's update and writes back after it: its filter is not checked again.
type lateView struct {
	convlog.Store
	views *mongo.Collection

	mu      sync.Mutex
	armed   bool
	held    chan struct{} // closed once the armed Project landed and the writer waits
	release chan struct{}
}

func (l *lateView) Project(ctx context.Context, c *chat.Conversation) error {
	if err := l.Store.Project(ctx, c); err != nil {
		return err
	}
	l.mu.Lock()
	armed := l.armed
	l.armed = false
	l.mu.Unlock()
	if !armed {
		return nil
	}
	var written bson.Raw
	if err := l.views.FindOne(ctx, bson.M{"_id": c.ID}).Decode(&written); err != nil {
		return err
	}
	close(l.held)
	<-l.release
	_, err := l.views.ReplaceOne(ctx, bson.M{"_id": c.ID}, written)
	return err
}

// waitViewAtEnd waits until the stored view of conversation conv is at its log's last entry.
func waitViewAtEnd(t *testing.T, s *stack, conv string) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(streamTimeout); ; time.Sleep(50 * time.Millisecond) {
		var view, last struct {
			Seq int64 `bson:"seq"`
		}
		if err := s.raw.Collection("conversations").FindOne(ctx, bson.M{"_id": conv}).Decode(&view); err != nil {
			t.Fatal(err)
		}
		if err := s.entries(t).FindOne(ctx, bson.M{"conversation_id": conv}, options.FindOne().SetSort(bson.M{"seq": -1})).Decode(&last); err != nil {
			t.Fatal(err)
		}
		if view.Seq == last.Seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored view of %s stays at entry %d, the log ends at %d", conv, view.Seq, last.Seq)
		}
	}
}

// TestConsistencyLateOlderViewIsRepaired makes the view of a conversation go back in time the
// way FerretDB's non-atomic updates can: a writer's view lands after a newer writer's. The
// older writer must notice that the log has moved on and bring the view up to it, so the
// summary still agrees with the history.
func TestConsistencyLateOlderViewIsRepaired(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) {
		late := &lateView{held: make(chan struct{}), release: make(chan struct{})}
		a, b := replicas(t, srv, stackOptions{store: func(s convlog.Store) convlog.Store {
			late.Store = s
			return late
		}})
		client, err := mongo.Connect(options.Client().ApplyURI(a.mongoURI))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
		late.views = client.Database(a.database).Collection("conversations")

		ada, grace := a.customer(shop, "cust-ada"), a.admin(shop, "admin-grace")
		grace.setPresence("online")
		conv := ada.start("hello").ID
		late.mu.Lock()
		late.armed = true
		late.mu.Unlock()
		first := make(chan response, 1)
		go func() {
			r, err := ada.try("POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": "older"})
			if err != nil {
				t.Errorf("the older write: %v", err)
			}
			first <- r
		}()
		<-late.held
		grace.on(b).send(conv, "newer") // commits, updates the view and checks it: all is well
		close(late.release)             // now the older view lands on top
		if r := <-first; r.Status != http.StatusCreated {
			t.Fatalf("the older write = %d %s", r.Status, r.Body)
		}
		history := checkSummary(t, conv, []user{ada, grace}, []*stack{b, a}, summaryCheck{unread: map[string][]int{
			ada.id:   {1}, // the newer message, grace's
			grace.id: {0},
		}})
		if got := []string{history[len(history)-2].Body, history[len(history)-1].Body}; !slices.Equal(got, []string{"older", "newer"}) {
			t.Errorf("the history ends with %q, want the older message, then the newer", got)
		}
		// And the stored view itself comes back to the log's end: lists filter and sort views,
		// so one left behind would misplace the conversation.
		waitViewAtEnd(t, a, conv)
	})
}
