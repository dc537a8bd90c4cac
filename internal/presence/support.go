package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
)

// Keys of the support clock (docs/EVENTS.md, "The support clock").
//
//	chat:{<tenant>}:support:state  hash: issued (last computation number handed out),
//	                               at (the number of the state stored), state (last announced)
//	chat:{<tenant>}:support:lock   the token of the replica computing the tenant's support
//	chat:support:due               sorted set: tenant id → unix ms its support may change by itself
const dueKey = "chat:support:due"

func stateKey(tenantID string) string { return "chat:{" + tenantID + "}:support:state" }
func lockKey(tenantID string) string  { return "chat:{" + tenantID + "}:support:lock" }

// lockLife bounds how long a replica that died holding a tenant's support lock keeps it;
// lockWait how long another waits for it before computing without it.
const (
	lockLife = 2 * time.Second
	lockWait = 2 * time.Second
)

// stateLife is how long a tenant's last announced support state is kept after it was last
// computed. Every tenant is computed at least once per reconcile pass, so it only lapses for
// tenants that are gone.
const stateLife = 30 * 24 * time.Hour

// beginScript takes the lock KEYS[1] with token ARGV[1] for ARGV[2] ms unless ARGV[1] is ""
// (computing without it) or another holds it (then it answers -1), and hands out the next
// computation number of the tenant, counted in KEYS[2], the state's hash: numbers come from
// Redis, in the order the computations begin, whatever the replicas' clocks say.
const beginScript = `
if ARGV[1] ~= '' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
local n = redis.call('HINCRBY', KEYS[2], 'issued', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return n`

// unlockScript deletes the lock KEYS[1] if it still holds ARGV[1].
const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`

// announceScript releases the lock KEYS[2] if it holds ARGV[3], and stores ARGV[2], the
// support state of computation ARGV[1], in the hash KEYS[1] unless the hash holds the state of
// a later computation. It answers 0 when a later computation's state is stored, 1 when the
// stored state equals ARGV[2], 2 when there was none and 3 when it replaced another.
const announceScript = `
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '-1')
local n = tonumber(ARGV[1])
if n < at then return 0 end
local cur = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'at', n, 'state', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if not cur then return 2 end
if cur == ARGV[2] then return 1 end
return 3`

// LockSupport begins a computation of the tenant's support: it takes the tenant's lock, so
// computations run one at a time (one that read presence before another's cannot be announced
// after it), and returns the computation's number. It waits up to lockWait for a holder, then
// goes on without the lock (lock ""): the numbers still order the states. AnnounceSupport or
// UnlockSupport releases the lock.
func (s *Store) LockSupport(ctx context.Context, tenantID string) (lock string, seq int64, err error) {
	token := newToken()
	keys := []string{lockKey(tenantID), stateKey(tenantID)}
	wait, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	for {
		n, err := s.begin.Run(wait, s.rdb, keys, token, lockLife.Milliseconds(), stateLife.Milliseconds()).Int64()
		switch {
		case err == nil && n >= 0:
			return token, n, nil
		case err != nil && wait.Err() == nil:
			return "", 0, fmt.Errorf("lock support: %w", err)
		}
		select {
		case <-wait.Done():
			n, err := s.begin.Run(ctx, s.rdb, keys, "", 0, stateLife.Milliseconds()).Int64()
			if err != nil {
				return "", 0, fmt.Errorf("number a support computation: %w", err)
			}
			return "", n, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// UnlockSupport releases a lock LockSupport returned, when no announcement follows.
func (s *Store) UnlockSupport(ctx context.Context, tenantID, lock string) {
	if lock != "" {
		_ = s.unlock.Run(ctx, s.rdb, []string{lockKey(tenantID)}, lock).Err() // else it expires
	}
}

// AnnounceSupport releases lock (see LockSupport) and records state, the tenant's support state
// computed by computation seq, as the one its customers were last told of, and reports whether
// that changes what they were told. The tenant is due to be computed again at until, or sooner
// if an earlier moment is already due (a zero until: only when something changes it).
func (s *Store) AnnounceSupport(ctx context.Context, tenantID, lock string, seq int64, state string, until time.Time) (chat.Announcement, error) {
	n, err := s.announce.Run(ctx, s.rdb, []string{stateKey(tenantID), lockKey(tenantID)}, seq, state, lock, stateLife.Milliseconds()).Int()
	if err != nil {
		return chat.AnnouncedStale, fmt.Errorf("announce support: %w", err)
	}
	due := math.Inf(1)
	if !until.IsZero() {
		due = float64(until.UnixMilli())
	}
	if err := s.ScheduleSupport(ctx, tenantID, due); err != nil {
		return chat.AnnouncedStale, err
	}
	return chat.Announcement(n), nil
}

// ScheduleSupport makes the tenant due at unix ms due, unless an earlier moment is due
// already: two schedules arriving out of order then leave the earlier moment, and the
// computation at that moment sets the next one.
func (s *Store) ScheduleSupport(ctx context.Context, tenantID string, due float64) error {
	if err := s.rdb.ZAddLT(ctx, dueKey, redis.Z{Score: due, Member: tenantID}).Err(); err != nil {
		return fmt.Errorf("schedule support: %w", err)
	}
	return nil
}

// UnscheduleSupport forgets the schedule of the tenants of ids (removed tenants).
func (s *Store) UnscheduleSupport(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, dueKey, members...).Err(); err != nil {
		return fmt.Errorf("unschedule support: %w", err)
	}
	return nil
}

// ClaimDueSupport returns up to limit tenants whose support is due to be computed at now,
// removing them so no other replica gets them.
func (s *Store) ClaimDueSupport(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ids, err := s.claimLapses.Run(ctx, s.rdb, []string{dueKey}, now.UnixMilli(), limit).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("claim due support: %w", err)
	}
	return ids, nil
}

// UnscheduledSupport returns the tenants of ids that have no moment due (never announced, or
// Redis lost it), in one round trip.
func (s *Store) UnscheduledSupport(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	scores, err := s.rdb.ZMScore(ctx, dueKey, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read support schedule: %w", err)
	}
	var missing []string
	for i, sc := range scores {
		if sc == 0 {
			missing = append(missing, ids[i])
		}
	}
	return missing, nil
}

// newToken returns a random token that tells one lock holder from another.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
