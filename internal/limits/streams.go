package limits

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript takes a slot of a caller's open event streams. KEYS[1] is the caller's sorted
// set of slot ids scored by lease expiry (Unix milliseconds); ARGV: now, the new slot's expiry,
// the most slots, the new slot's id, the key's time to live (milliseconds). Expired slots (of
// replicas that stopped refreshing them) are dropped first. It returns {1, open} when it took
// the slot, {0, open} when all are taken; open counts the slots held afterwards.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[3]) then
  return {0, open}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, open + 1}
`)

// acquireSlot runs acquireScript for slot id at key.
func acquireSlot(ctx context.Context, rdb redis.Scripter, key, id string, most int, now time.Time, lease time.Duration) (open int, ok bool, err error) {
	res, err := acquireScript.Run(ctx, rdb, []string{key},
		now.UnixMilli(), now.Add(lease).UnixMilli(), most, id, lease.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, false, err
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("acquire stream slot: unexpected reply %v", res)
	}
	return int(res[1]), res[0] == 1, nil
}

// extendSlots moves the expiry of every slot held to now+lease, in one pipeline. It also
// writes slots taken while Redis was down, so they count across replicas once it is back.
func extendSlots(ctx context.Context, rdb redis.UniversalClient, held map[string][]string, now time.Time, lease time.Duration) error {
	expiry := float64(now.Add(lease).UnixMilli())
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, ids := range held {
			members := make([]redis.Z, len(ids))
			for i, id := range ids {
				members[i] = redis.Z{Score: expiry, Member: id}
			}
			p.ZAdd(ctx, key, members...)
			p.PExpire(ctx, key, lease)
		}
		return nil
	})
	return err
}

// newSlotID returns a random id for one stream's slot.
func newSlotID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// slots are the event stream slots this replica holds, by key: what it refreshes, and what it
// counts while Redis is down.
type slots struct {
	mu   sync.Mutex
	held map[string]map[string]struct{}
}

func newSlots() *slots { return &slots{held: map[string]map[string]struct{}{}} }

// add records slot id at key.
func (s *slots) add(key, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(key, id)
}

func (s *slots) addLocked(key, id string) {
	ids := s.held[key]
	if ids == nil {
		ids = map[string]struct{}{}
		s.held[key] = ids
	}
	ids[id] = struct{}{}
}

// addAtMost records slot id at key unless this replica already holds most there. It returns
// the slots held at key afterwards and whether it took the slot.
func (s *slots) addAtMost(key, id string, most int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.held[key]); n >= most {
		return n, false
	}
	s.addLocked(key, id)
	return len(s.held[key]), true
}

// remove forgets slot id at key.
func (s *slots) remove(key, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held[key], id)
	if len(s.held[key]) == 0 {
		delete(s.held, key)
	}
}

// snapshot returns the slot ids held, by key.
func (s *slots) snapshot() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]string, len(s.held))
	for key, ids := range s.held {
		for id := range ids {
			out[key] = append(out[key], id)
		}
	}
	return out
}
