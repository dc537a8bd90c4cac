package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/convlog"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/testenv"
)

// chaosDurationEnv sets how long TestChaos's clients write (the long form, make soak); the
// short form of make test writes for defaultChaosDuration.
const (
	chaosDurationEnv     = "CHAT_CHAOS_DURATION"
	defaultChaosDuration = 12 * time.Second
)

// killer wraps a replica's stores and kills requests at random write steps: after a store
// call returns, the request's goroutine exits on the spot with probability 1 in every, as if
// its process died there. The relay is spared: it stands for the replicas that stay up.
type killer struct {
	convlog.Store
	idem  idempotency.Store
	every int
	kills atomic.Int64
}

func (k *killer) maybeDie(ctx context.Context) {
	if !isRelay(ctx) && rand.IntN(k.every) == 0 { //nolint:gosec // chaos, not a secret
		k.kills.Add(1)
		runtime.Goexit()
	}
}

func (k *killer) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	defer k.maybeDie(ctx)
	return k.Store.Append(ctx, entries)
}

func (k *killer) Project(ctx context.Context, c *chat.Conversation) error {
	defer k.maybeDie(ctx)
	return k.Store.Project(ctx, c)
}

func (k *killer) Published(ctx context.Context, entries []chat.Entry) error {
	defer k.maybeDie(ctx)
	return k.Store.Published(ctx, entries)
}

func (k *killer) Reserve(ctx context.Context, rec idempotency.Record) (idempotency.Record, bool, error) {
	defer k.maybeDie(ctx)
	return k.idem.Reserve(ctx, rec)
}

func (k *killer) SaveResponse(ctx context.Context, rec idempotency.Record, resp idempotency.Response) (idempotency.Response, error) {
	defer k.maybeDie(ctx)
	return k.idem.SaveResponse(ctx, rec, resp)
}

func (k *killer) Release(ctx context.Context, tenantID, key string) error {
	defer k.maybeDie(ctx)
	return k.idem.Release(ctx, tenantID, key)
}

// chaosLedger is what the clients of TestChaos were told, by Idempotency-Key.
type chaosLedger struct {
	mu sync.Mutex
	// answers are the 2xx answers of each key, every attempt's.
	answers map[string][][]byte
	// body is what each key posted.
	body map[string]string
	// acked are the keys acknowledged, with the message or conversation id they were given.
	acked map[string]string
	// convs are the conversations started, with their customers.
	convs    map[string]user
	statuses map[int]int
	failed   []string
	attempts int
}

func (l *chaosLedger) answer(key string, r response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses[r.Status]++
	if r.Status/100 == 2 {
		l.answers[key] = append(l.answers[key], r.Body)
	}
}

// TestChaos runs three replicas on one database and one Redis. Each replica reaches MongoDB
// through a proxy that cuts its connections at random; requests die at random write steps;
// clients give up after short timeouts and retry with the same Idempotency-Key, on any
// replica, and send a quarter of their requests as twins to two replicas at once; an admin
// goes online and away, so customers' messages race for away notices. Customers start
// conversations and write into them, admins reply and mark them read. Afterwards:
//   - every acknowledged write is in the log once, under the id its answer gave, and nothing
//     else is (no message of a key that was never tried);
//   - every answer of one key is the same bytes, and no request answered 409;
//   - every message reached an admin's event stream on every replica exactly once;
//   - every summary on every replica equals its history, and no entry stays pending.
//
// make test runs it for a few seconds a server; make soak for longer, many times
// (CHAT_CHAOS_DURATION).
func TestChaos(t *testing.T) {
	duration := defaultChaosDuration
	if v := os.Getenv(chaosDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", chaosDurationEnv, v, err)
		}
		duration = d
	}
	forEachServer(t, func(t *testing.T, srv testenv.MongoServer) { runChaos(t, srv, duration) })
}

func runChaos(t *testing.T, srv testenv.MongoServer, duration time.Duration) {
	var killers []*killer
	opts := func(o stackOptions) stackOptions {
		k := &killer{every: 25}
		killers = append(killers, k)
		o.proxied = true
		o.store = func(s convlog.Store) convlog.Store { k.Store = s; return k }
		o.idempotency = func(s idempotency.Store) idempotency.Store { k.idem = s; return k }
		return o
	}
	a := newStack(t, opts(stackOptions{server: &srv}))
	reps := []*stack{a, newStack(t, opts(stackOptions{replicaOf: a})), newStack(t, opts(stackOptions{replicaOf: a}))}
	ledger := &chaosLedger{answers: map[string][][]byte{}, body: map[string]string{}, acked: map[string]string{}, convs: map[string]user{}, statuses: map[int]int{}}

	// Every replica's admin stream, open from the start.
	watchers := make([]*chaosWatcher, len(reps))
	for i, r := range reps {
		watchers[i] = watch(t, r.admin(shop, fmt.Sprintf("admin-watcher-%d", i)))
	}

	done := make(chan struct{}) // closed when the clients stop
	var chaos sync.WaitGroup
	for _, r := range reps {
		chaos.Go(func() { cutAtRandom(done, r.proxy) })
	}
	toggler := a.admin(shop, "admin-toggler")
	chaos.Go(func() {
		for i := 0; !closed(done); i++ {
			_, _ = toggler.on(reps[i%3]).retry("PUT", "/api/v1/chat/presence", map[string]string{"status": []string{"online", "away"}[i%2]})
			sleep(done, time.Duration(800+rand.IntN(800))*time.Millisecond) //nolint:gosec // chaos
		}
	})

	var writers sync.WaitGroup
	for i := range 3 {
		customer := a.customer(shop, fmt.Sprintf("cust-chaos-%d", i))
		admin := a.admin(shop, fmt.Sprintf("admin-chaos-%d", i))
		writers.Go(func() { chaosCustomer(done, t, reps, customer, ledger) })
		writers.Go(func() { chaosAdmin(done, t, reps, admin, ledger) })
	}
	time.Sleep(duration)
	close(done)
	writers.Wait()
	chaos.Wait()
	for _, r := range reps {
		r.proxy.Restore()
	}
	kills := int64(0)
	for _, k := range killers {
		kills += k.kills.Load()
	}
	ledger.mu.Lock()
	t.Logf("chaos on %s for %s: %d keys acknowledged in %d attempts, %d requests killed, answers by status %v",
		srv.Name, duration, len(ledger.acked), ledger.attempts, kills, ledger.statuses)
	for _, f := range ledger.failed {
		t.Errorf("never acknowledged: %s", f)
	}
	if n := ledger.statuses[http.StatusConflict]; n > 0 {
		t.Errorf("%d requests answered 409", n)
	}
	for key, answers := range ledger.answers {
		for _, b := range answers[1:] {
			if !bytes.Equal(b, answers[0]) {
				t.Errorf("key %s answered differently:\n%s\n%s", key, answers[0], b)
			}
		}
	}
	ledger.mu.Unlock()
	if t.Failed() {
		return
	}
	waitNothingPending(t, a)
	reconcileChaos(t, a, reps, ledger, watchers)
}

// chaosCustomer starts a conversation, writes into it, and now and then starts another, until
// done is closed; every write is sent until acknowledged.
func chaosCustomer(done <-chan struct{}, t *testing.T, reps []*stack, u user, l *chaosLedger) {
	var conv string
	for n := 0; !closed(done); n++ {
		key := fmt.Sprintf("%s-%d", u.id, n)
		if n%8 == 0 {
			body := fmt.Sprintf("start %s", key)
			id, ok := sendChaos(t, reps, u, "POST", "/api/v1/chat/start", map[string]string{"message": body}, key, body, l)
			if !ok {
				return
			}
			conv = id
			l.mu.Lock()
			l.convs[conv] = u
			l.mu.Unlock()
			continue
		}
		body := fmt.Sprintf("message %s", key)
		if _, ok := sendChaos(t, reps, u, "POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": body}, key, body, l); !ok {
			return
		}
	}
}

// chaosAdmin replies into the conversations started so far and marks them read, until done
// is closed.
func chaosAdmin(done <-chan struct{}, t *testing.T, reps []*stack, u user, l *chaosLedger) {
	for n := 0; !closed(done); n++ {
		l.mu.Lock()
		convs := make([]string, 0, len(l.convs))
		for c := range l.convs {
			convs = append(convs, c)
		}
		l.mu.Unlock()
		if len(convs) == 0 {
			sleep(done, 50*time.Millisecond)
			continue
		}
		sort.Strings(convs)
		conv := convs[rand.IntN(len(convs))] //nolint:gosec // chaos
		key := fmt.Sprintf("%s-%d", u.id, n)
		body := fmt.Sprintf("reply %s", key)
		if _, ok := sendChaos(t, reps, u, "POST", "/api/v1/chat/"+conv+"/messages", map[string]string{"body": body}, key, body, l); !ok {
			return
		}
		if n%3 == 0 {
			_, _ = u.on(reps[n%3]).retry("POST", "/api/v1/chat/"+conv+"/read", nil)
		}
	}
}

// sendChaos sends one write with key until it is acknowledged, as a client with a short
// timeout would: on a timeout, a cut connection or a 5xx it sends it again, on a replica
// picked at random, and a quarter of its attempts go to two replicas at once. It records
// every answer and returns the id the write was acknowledged with.
func sendChaos(t *testing.T, reps []*stack, u user, method, path string, body any, key, text string, l *chaosLedger) (string, bool) {
	l.mu.Lock()
	l.body[key] = text
	l.mu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		twins := 1
		if rand.IntN(4) == 0 { //nolint:gosec // chaos
			twins = 2
		}
		first := rand.IntN(len(reps)) //nolint:gosec // chaos
		got := make([]response, twins)
		var wg sync.WaitGroup
		for i := range twins {
			wg.Go(func() {
				r := reps[(first+i)%len(reps)]
				client := &http.Client{Timeout: time.Duration(300+rand.IntN(2700)) * time.Millisecond} //nolint:gosec // chaos
				resp, err := r.send(client, method, path, body, map[string]string{
					"X-Tenant-ID": u.tenant, "Authorization": "Bearer " + u.token, "Idempotency-Key": key})
				if err == nil {
					got[i] = resp
					l.answer(key, resp)
				}
			})
		}
		wg.Wait()
		l.mu.Lock()
		l.attempts += twins
		l.mu.Unlock()
		for _, r := range got {
			switch {
			case r.Status/100 == 2:
				var v struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(r.Body, &v); err != nil || v.ID == "" {
					t.Errorf("key %s: answer %s", key, r.Body)
					return "", false
				}
				l.mu.Lock()
				l.acked[key] = v.ID
				l.mu.Unlock()
				return v.ID, true
			case r.Status != 0 && r.Status < 500 && r.Status != http.StatusConflict && r.Status != http.StatusTooManyRequests:
				t.Errorf("key %s: %d %s", key, r.Status, r.Body)
				return "", false
			}
		}
		time.Sleep(time.Duration(20+rand.IntN(100)) * time.Millisecond) //nolint:gosec // chaos
	}
	l.mu.Lock()
	l.failed = append(l.failed, key)
	l.mu.Unlock()
	return "", false
}

// cutAtRandom cuts the proxy for a moment every second or two until done is closed.
func cutAtRandom(done <-chan struct{}, p *testenv.Proxy) {
	for !closed(done) {
		sleep(done, time.Duration(700+rand.IntN(1500))*time.Millisecond) //nolint:gosec // chaos
		p.Cut()
		sleep(done, time.Duration(50+rand.IntN(300))*time.Millisecond) //nolint:gosec // chaos
		p.Restore()
	}
}

// sleep waits for d, or until done is closed.
func sleep(done <-chan struct{}, d time.Duration) {
	select {
	case <-done:
	case <-time.After(d):
	}
}

// closed reports whether done is closed.
func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// waitNothingPending waits until the relay published every entry.
func waitNothingPending(t *testing.T, s *stack) {
	t.Helper()
	for deadline := time.Now().Add(streamTimeout); ; time.Sleep(100 * time.Millisecond) {
		n := s.pending(t)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still pending %s after the writes", n, streamTimeout)
		}
	}
}

// reconcileChaos checks the log against the ledger, the event streams against the log, and
// every summary against its history.
func reconcileChaos(t *testing.T, a *stack, reps []*stack, l *chaosLedger, watchers []*chaosWatcher) {
	t.Helper()
	cur, err := a.entries(t).Find(context.Background(), bson.M{"kind": "message"})
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ConversationID string `bson:"conversation_id"`
		Message        struct {
			ID     string `bson:"id"`
			Body   string `bson:"body"`
			Sender struct {
				Role string `bson:"role"`
			} `bson:"sender"`
		} `bson:"message"`
	}
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	keyOf := map[string]string{} // body -> key
	for key, body := range l.body {
		keyOf[body] = key
	}
	stored := map[string][]string{} // key -> message ids stored
	var messages []string
	for _, d := range docs {
		messages = append(messages, d.Message.ID)
		if d.Message.Sender.Role == "system" {
			continue
		}
		key, ok := keyOf[d.Message.Body]
		if !ok {
			t.Errorf("message %q (%s) is stored, but no client sent it", d.Message.Body, d.Message.ID)
			continue
		}
		id := d.Message.ID
		if strings.HasPrefix(d.Message.Body, "start ") {
			id = d.ConversationID
		}
		stored[key] = append(stored[key], id)
	}
	for key, id := range l.acked {
		if got := stored[key]; len(got) != 1 || got[0] != id {
			t.Errorf("key %s was acknowledged as %s; the log holds %v", key, id, got)
		}
	}
	for key, got := range stored {
		if len(got) > 1 {
			t.Errorf("key %s is stored %d times", key, len(got))
		}
	}
	for i, w := range watchers {
		w.expectOnce(t, fmt.Sprintf("replica %d", i), messages)
	}
	for conv, customer := range l.convs {
		history := customer.on(a).fullHistory(conv)
		checkSummary(t, conv, []user{customer, a.admin(shop, "admin-viewer")}, reps, summaryCheck{unread: map[string][]int{
			customer.id: {unreadIn(history, "customer")},
		}})
	}
}

// chaosWatcher counts the message.created events of one admin's stream, reconnecting with its
// last event id when the stream ends.
type chaosWatcher struct {
	mu     sync.Mutex
	count  map[string]int
	resync bool
	// open is closed once the first stream is open.
	open     chan struct{}
	openOnce sync.Once
}

// watch opens u's event stream and returns once it is open.
func watch(t *testing.T, u user) *chaosWatcher {
	t.Helper()
	w := &chaosWatcher{count: map[string]int{}, open: make(chan struct{})}
	defer func() {
		select {
		case <-w.open:
		case <-time.After(streamTimeout):
			t.Fatalf("%s's event stream does not open", u.id)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		last := ""
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", u.s.srv.URL+"/api/v1/chat/events", nil)
			req.Header.Set("Authorization", "Bearer "+u.token)
			req.Header.Set("X-Tenant-ID", u.tenant)
			if last != "" {
				req.Header.Set("Last-Event-ID", last)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				sleep(ctx.Done(), 100*time.Millisecond)
				continue
			}
			events := make(chan sseEvent, 64)
			go func() { testenv.ReadSSE(resp.Body, events); close(events) }()
			for ev := range events {
				if ev.ID != "" {
					last = ev.ID
				}
				w.note(ev)
			}
			resp.Body.Close()
		}
	}()
	return w
}

func (w *chaosWatcher) note(ev sseEvent) {
	w.openOnce.Do(func() { close(w.open) }) // the stream's first field: retry
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Type {
	case "resync":
		w.resync = true
	case "message.created":
		var m messageEvent
		if json.Unmarshal([]byte(ev.Data), &m) == nil {
			w.count[m.Message.ID]++
		}
	}
}

// expectOnce waits until the stream delivered every message of msgs, and checks that it
// delivered each once, unless the stream was told to resync.
func (w *chaosWatcher) expectOnce(t *testing.T, name string, msgs []string) {
	t.Helper()
	for deadline := time.Now().Add(streamTimeout); ; time.Sleep(100 * time.Millisecond) {
		w.mu.Lock()
		missing := slices.DeleteFunc(slices.Clone(msgs), func(id string) bool { return w.count[id] > 0 })
		resync := w.resync
		w.mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if resync {
			t.Logf("%s's stream was told to resync; %d messages not delivered are excused", name, len(missing))
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s's stream never delivered %d of %d messages, e.g. %v", name, len(missing), len(msgs), missing[:min(3, len(missing))])
			return
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, n := range w.count {
		if n > 1 && !w.resync {
			t.Errorf("%s's stream delivered message %s %d times", name, id, n)
		}
	}
}
