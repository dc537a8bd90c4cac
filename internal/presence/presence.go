// Package presence keeps which admins are online or away in Redis, with heartbeats that lapse.
package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
)

// Keys. The tenant id is a hash tag, so one tenant's keys live on one Redis Cluster slot.
//
//	chat:{<tenant>}:presence:online     sorted set: admin id → expiry (unix ms)
//	chat:{<tenant>}:presence:away       sorted set: admin id → expiry (unix ms)
//	chat:{<tenant>}:presence:last_online  unix ms of the last time support was online
//	chat:presence:lapses               sorted set: "<tenant>\x00<admin>" → expiry of an online status
const lapsesKey = "chat:presence:lapses"

// keyLife is how long a tenant's presence keys outlive their newest entry, so idle tenants
// leave nothing behind.
const keyLife = time.Hour

// lastOnlineLife is how long the last-online mark of a tenant is kept.
const lastOnlineLife = 30 * 24 * time.Hour

func onlineKey(tenantID string) string     { return "chat:{" + tenantID + "}:presence:online" }
func awayKey(tenantID string) string       { return "chat:{" + tenantID + "}:presence:away" }
func lastOnlineKey(tenantID string) string { return "chat:{" + tenantID + "}:presence:last_online" }
func lapseMember(tenantID, adminID string) string {
	return tenantID + "\x00" + adminID
}

// claimLapsesScript removes and returns, atomically, up to ARGV[2] members of KEYS[1] whose
// score is at most ARGV[1]: each lapse goes to exactly one caller, however many replicas sweep.
const claimLapsesScript = `
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #m > 0 then redis.call('ZREM', KEYS[1], unpack(m)) end
return m`

// markOnlineScript sets KEYS[1] to ARGV[1] unless it holds a later time.
const markOnlineScript = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 0`

// Store is presence on Redis.
type Store struct {
	rdb         redis.Cmdable
	now         func() time.Time
	claimLapses *redis.Script
	markOnline  *redis.Script
	announce    *redis.Script
	unlock      *redis.Script
	begin       *redis.Script
}

var _ chat.Presence = (*Store)(nil)

// New returns presence on rdb with the clock now.
func New(rdb redis.Cmdable, now func() time.Time) *Store {
	return &Store{
		rdb:         rdb,
		now:         now,
		claimLapses: redis.NewScript(claimLapsesScript),
		markOnline:  redis.NewScript(markOnlineScript),
		announce:    redis.NewScript(announceScript),
		unlock:      redis.NewScript(unlockScript),
		begin:       redis.NewScript(beginScript),
	}
}

// SetAdminStatus records adminID as online or away until ttl passes without another call.
func (s *Store) SetAdminStatus(ctx context.Context, tenantID, adminID string, status chat.AdminStatus, ttl time.Duration) (time.Time, error) {
	now := s.now()
	expires := now.Add(ttl)
	exp := float64(expires.UnixMilli())
	set, unset := onlineKey(tenantID), awayKey(tenantID)
	if status == chat.AdminAway {
		set, unset = unset, set
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, set, redis.Z{Score: exp, Member: adminID})
		p.ZRem(ctx, unset, adminID)
		for _, k := range []string{set, unset} {
			p.ZRemRangeByScore(ctx, k, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
			p.PExpire(ctx, k, ttl+keyLife)
		}
		if status == chat.AdminOnline {
			p.ZAdd(ctx, lapsesKey, redis.Z{Score: exp, Member: lapseMember(tenantID, adminID)})
		} else {
			p.ZRem(ctx, lapsesKey, lapseMember(tenantID, adminID)) // going away is not a lapse
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("set presence: %w", err)
	}
	return expires, nil
}

// TeamPresence counts the tenant's admins online and away now, and finds the first of their
// statuses to expire, in one round trip.
func (s *Store) TeamPresence(ctx context.Context, tenantID string) (chat.TeamPresence, error) {
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	var online, away *redis.IntCmd
	var firstOnline, firstAway *redis.ZSliceCmd
	var last *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		first := &redis.ZRangeBy{Min: "(" + now, Max: "+inf", Count: 1}
		online = p.ZCount(ctx, onlineKey(tenantID), "("+now, "+inf")
		away = p.ZCount(ctx, awayKey(tenantID), "("+now, "+inf")
		firstOnline = p.ZRangeByScoreWithScores(ctx, onlineKey(tenantID), first)
		firstAway = p.ZRangeByScoreWithScores(ctx, awayKey(tenantID), first)
		last = p.Get(ctx, lastOnlineKey(tenantID))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return chat.TeamPresence{}, fmt.Errorf("read presence: %w", err)
	}
	tp := chat.TeamPresence{Online: int(online.Val()), Away: int(away.Val())}
	if ms, err := strconv.ParseInt(last.Val(), 10, 64); err == nil {
		tp.LastOnlineAt = time.UnixMilli(ms).UTC()
	}
	for _, first := range [][]redis.Z{firstOnline.Val(), firstAway.Val()} {
		if len(first) == 0 {
			continue
		}
		if exp := time.UnixMilli(int64(first[0].Score)).UTC(); tp.NextExpiry.IsZero() || exp.Before(tp.NextExpiry) {
			tp.NextExpiry = exp
		}
	}
	return tp, nil
}

// MarkSupportOnline records that the tenant's support was online at t (never moving it back).
func (s *Store) MarkSupportOnline(ctx context.Context, tenantID string, t time.Time) error {
	err := s.markOnline.Run(ctx, s.rdb, []string{lastOnlineKey(tenantID)}, t.UnixMilli(), lastOnlineLife.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("mark support online: %w", err)
	}
	return nil
}

// ClaimLapsed returns up to limit admins whose online status expired before now, removing them
// so no other replica gets them.
func (s *Store) ClaimLapsed(ctx context.Context, now time.Time, limit int) ([]chat.Lapse, error) {
	members, err := s.claimLapses.Run(ctx, s.rdb, []string{lapsesKey}, now.UnixMilli(), limit).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("claim lapses: %w", err)
	}
	lapses := make([]chat.Lapse, 0, len(members))
	for _, m := range members {
		tenantID, adminID, ok := strings.Cut(m, "\x00")
		if !ok {
			continue
		}
		lapses = append(lapses, chat.Lapse{TenantID: tenantID, AdminID: adminID})
	}
	return lapses, nil
}
