package redisconn

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease hands out named turns of background work to one replica at a time, through Redis. The
// replica that holds a turn keeps it while it asks again within its time; another replica
// takes it over once it expires (its holder stopped or stalled). It is an economy for work
// that any replica may do, never a lock that correctness rests on: a Redis that is down grants
// every turn, and two holders at once only repeat work.
type Lease struct {
	rdb   redis.UniversalClient
	owner string // this replica, among the holders of turns
}

// NewLease returns a Lease on rdb for one replica.
func NewLease(rdb redis.UniversalClient) *Lease { return &Lease{rdb: rdb, owner: rand.Text()} }

// leaseTimeout bounds the question to Redis.
const leaseTimeout = 500 * time.Millisecond

// takeTurn gives the turn KEYS[1] to ARGV[1] for ARGV[2] ms when nobody holds it or ARGV[1]
// does already, and returns 1 then.
var takeTurn = redis.NewScript(`
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)

// Take reports whether the caller may do the turn named name, and holds it for ttl: false when
// another replica holds it; true when Redis cannot be asked.
func (l *Lease) Take(ctx context.Context, name string, ttl time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, leaseTimeout)
	defer cancel()
	n, err := takeTurn.Run(ctx, l.rdb, []string{"chat:lease:" + name}, l.owner, ttl.Milliseconds()).Int()
	return n == 1 || err != nil
}
