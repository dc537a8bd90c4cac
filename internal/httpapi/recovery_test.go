package httpapi_test

import (
	"slices"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/testenv"
)

// recoveryBound is the longest a list may show what it showed before a write that was
// acknowledged while Redis was unreachable, counted from Redis answering again: the log's
// relay takes up the write's entries, which stay pending until the caches heard of it
// (docs/CACHING.md, "Recovery"). Wide, for -race on a loaded machine; the measured time is
// logged.
const recoveryBound = 30 * time.Second

// TestListsComeBackToTheTruthAfterARedisOutage is the outage of issue 23 on three replicas: a
// customer and an admin list (their pages are cached in Redis and in every replica's memory),
// Redis becomes unreachable with its data kept (a network cut of one server; on a Redis Cluster
// a lost master, which fails the whole cluster while the tenant's node keeps its keys), the
// admin answers (201), and Redis comes back. Every replica's lists then show the answer and
// the customer's unread count.
func TestListsComeBackToTheTruthAfterARedisOutage(t *testing.T) {
	for _, v := range []struct {
		name string
		o    stackOptions
	}{{"redis", stackOptions{redisProxied: true}}, {"cluster", stackOptions{cluster: true}}} {
		t.Run(v.name, func(t *testing.T) {
			a, b, c := threeReplicas(t, v.o)
			replicas := []*stack{a, b, c}
			ada, grace := a.customer(shop, "ada"), a.admin(shop, "grace")
			conv := ada.start("Where is my order?")
			for _, r := range replicas {
				for _, u := range []user{ada, grace} {
					if l := u.on(r).list(""); len(l.Conversations) != 1 {
						t.Fatalf("list before the outage: %+v", l)
					}
				}
			}

			if cluster, ok := a.redis.(*testenv.RedisCluster); ok {
				cluster.StopNodeNotServing(t, "chat:{"+shop+"}:gen:a")
			} else {
				a.redis.Stop(t)
			}
			answer := grace.on(b).send(conv.ID, "It left the warehouse this morning.")
			a.redis.Start(t)
			back := time.Now()

			has := func(l listJSON) bool {
				return len(l.Conversations) == 1 && slices.ContainsFunc(l.Conversations[0].Messages, func(m messageJSON) bool { return m.ID == answer.ID })
			}
			shows := func(r *stack) bool {
				l := ada.on(r).list("")
				return has(l) && l.Conversations[0].Unread == 1 && has(grace.on(r).list(""))
			}
			for _, r := range replicas {
				for !shows(r) {
					if time.Since(back) > recoveryBound {
						t.Fatalf("%s after Redis came back, a replica's lists still miss the answer sent during the outage", recoveryBound)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			t.Logf("every replica's lists show the answer %s after Redis answers again", time.Since(back).Round(100*time.Millisecond))
		})
	}
}
