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
//	chat:{<tenant>}:support:state  "<unix ms computed>\n<support state>" last announced
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

// unlockScript deletes the lock KEYS[1] if it still holds ARGV[1].
const unlockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`

// announceScript releases the lock KEYS[2] if it holds ARGV[4], and stores ARGV[2], a support state computed at ARGV[1] (unix ms), as KEYS[1]'s
// unless KEYS[1] holds one computed later, and answers 0 when ARGV[2] was computed earlier
// than the stored state, 1 when it equals it, 2 when there was none and 3 when it replaced
// another. Comparing the times makes a replica that computed before another cannot undo the
// other's newer state, whatever order their calls arrive in.
const announceScript = `
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
local new = ARGV[1] .. '\n' .. ARGV[2]
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], new, 'PX', ARGV[3])
  return 2
end
local sep = string.find(cur, '\n', 1, true)
if not sep then
  redis.call('SET', KEYS[1], new, 'PX', ARGV[3])
  return 3
end
if tonumber(ARGV[1]) < tonumber(string.sub(cur, 1, sep - 1)) then return 0 end
redis.call('SET', KEYS[1], new, 'PX', ARGV[3])
if string.sub(cur, sep + 1) == ARGV[2] then return 1 end
return 3`

// LockSupport takes the tenant's support lock, so that its support is computed and announced
// by one caller at a time: a computation that read presence before another's cannot then be
// announced after it. It waits up to lockWait for a holder, then goes on without the lock
// (lock ""), which the state's computation time still orders. AnnounceSupport releases it.
func (s *Store) LockSupport(ctx context.Context, tenantID string) (lock string, err error) {
	token := newToken()
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	for {
		ok, err := s.rdb.SetNX(ctx, lockKey(tenantID), token, lockLife).Result()
		switch {
		case ok:
			return token, nil
		case err != nil && ctx.Err() == nil:
			return "", fmt.Errorf("lock support: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", nil
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
// computed at at, as the one its customers were last told of, and reports whether that changes
// what they were told. The tenant is due to be computed again at until, or sooner if an
// earlier moment is already due (a zero until: only when something changes it).
func (s *Store) AnnounceSupport(ctx context.Context, tenantID, lock string, at time.Time, state string, until time.Time) (chat.Announcement, error) {
	n, err := s.announce.Run(ctx, s.rdb, []string{stateKey(tenantID), lockKey(tenantID)}, at.UnixMilli(), state, stateLife.Milliseconds(), lock).Int()
	if err != nil {
		return chat.AnnouncedStale, fmt.Errorf("announce support: %w", err)
	}
	// Never later than a moment already due: two announcements arriving out of order then
	// leave the earlier moment, and the computation at that moment sets the next one.
	due := math.Inf(1)
	if !until.IsZero() {
		due = float64(until.UnixMilli())
	}
	if err := s.rdb.ZAddLT(ctx, dueKey, redis.Z{Score: due, Member: tenantID}).Err(); err != nil {
		return chat.AnnouncedStale, fmt.Errorf("schedule support: %w", err)
	}
	return chat.Announcement(n), nil
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
