package chat

import (
	"context"
	"slices"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// Reply statistics: the window of PRODUCT.md and how many samples one computation reads at most.
const (
	replyStatsWindow     = 7 * 24 * time.Hour
	replyStatsMaxSamples = 10000
	// replyStatsWait bounds how long a support block waits for the expected reply time: on a
	// server that scans (FerretDB) a large tenant's query may take seconds, and the block then
	// shows the last value (null at first) until the query finishes in the background.
	replyStatsWait = time.Second
)

// TeamPresence is what presence knows about a tenant's admins right now.
type TeamPresence struct {
	Online int
	Away   int
	// LastOnlineAt is the last time support was seen online (zero if never or unknown).
	LastOnlineAt time.Time
	// NextExpiry is when the first of the admins' online or away statuses expires without a
	// heartbeat (zero if none).
	NextExpiry time.Time
}

// supportAt combines business hours and presence into the support block at now. Without
// presence data (known false) nobody counts as online.
func supportAt(now time.Time, s Settings, p TeamPresence) Support {
	sup := Support{Until: p.NextExpiry}
	open := true
	if h := s.BusinessHours; h != nil {
		if change, ok := h.NextChange(now); ok && (sup.Until.IsZero() || change.Before(sup.Until)) {
			sup.Until = change.UTC()
		}
		if !h.Open(now) {
			open = false
			if next, ok := h.NextOpening(now); ok {
				next = next.UTC()
				sup.NextAvailableAt = &next
			}
		}
	}
	switch {
	case !open:
		sup.Status, sup.Reason = SupportAway, ReasonOutsideBusinessHours
	case p.Online > 0:
		sup.Status, sup.Available = SupportOnline, true
		return sup
	case p.Away > 0:
		sup.Status, sup.Reason = SupportAway, ReasonAdminsAway
	default:
		sup.Status, sup.Reason = SupportOffline, ReasonNoAdminOnline
	}
	sup.Prompt = s.AwayPrompt
	return sup
}

// support returns the support block of tenant t: presence combined with business hours, the
// away prompt and the expected reply time. Presence that cannot be read counts as nobody
// online; it never fails the request.
func (s *Service) support(ctx context.Context, t *tenant.Tenant) (Support, error) {
	settings, _, err := s.effectiveSettings(ctx, t)
	if err != nil {
		return Support{}, err
	}
	return s.supportWith(ctx, t, settings, s.teamPresence(ctx, t.ID)), nil
}

// supportWith returns the support block of tenant t now, with settings and presence p.
func (s *Service) supportWith(ctx context.Context, t *tenant.Tenant, settings Settings, p TeamPresence) Support {
	sup := supportAt(s.clock(), settings, p)
	sup.ExpectedReplySeconds = s.expectedReply(ctx, t.ID)
	return sup
}

// FreshSupport returns the support block of the request's tenant (see support), with the
// tenant's settings read from the database, not from this replica's cache of them: what it
// returns is cached for every replica.
func (s *Service) FreshSupport(ctx context.Context) (Support, error) {
	t, err := tenant.FromContext(ctx)
	if err != nil {
		return Support{}, Errorf(NotFound, "unknown tenant")
	}
	settings, err := s.freshSettings(ctx, t)
	if err != nil {
		return Support{}, err
	}
	return s.supportWith(ctx, t, settings, s.teamPresence(ctx, t.ID)), nil
}

// teamPresence reads the tenant's presence, treating an unreachable Redis as nobody online.
func (s *Service) teamPresence(ctx context.Context, tenantID string) TeamPresence {
	p, err := s.presence.TeamPresence(ctx, tenantID)
	if err != nil {
		s.logger.DebugContext(ctx, "presence unavailable; support reads as offline", "tenant", tenantID, "error", err)
		return TeamPresence{}
	}
	return p
}

// expectedReply returns the tenant's median time to first reply over the last seven days, or nil
// without data. It is computed at most once per StatsTTL per replica, from an indexed range of
// first replies, never from all conversations; a failure reads as no data.
func (s *Service) expectedReply(ctx context.Context, tenantID string) *int64 {
	v, err := s.replyStats.get(ctx, tenantID, func(ctx context.Context) (*int64, error) {
		samples, err := s.store.FirstReplySeconds(ctx, tenantID, s.clock().Add(-replyStatsWindow), replyStatsMaxSamples)
		if err != nil {
			return nil, err
		}
		return median(samples), nil
	})
	if err != nil {
		s.logger.WarnContext(ctx, "expected reply time unavailable", "tenant", tenantID, "error", err)
		return nil
	}
	return v
}

// median returns the median of samples (the mean of the middle two for an even count), or nil.
func median(samples []int64) *int64 {
	if len(samples) == 0 {
		return nil
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	n := len(sorted)
	m := sorted[n/2]
	if n%2 == 0 {
		m = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return &m
}
