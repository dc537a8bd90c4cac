package chat

import (
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// Settings are a tenant's effective chat settings: the tenant file's defaults with the
// overrides its admins stored through the API.
type Settings struct {
	AwayPrompt     string
	BusinessHours  *tenant.BusinessHours
	UnassignOnAway bool
}

// Overrides are the chat settings a tenant's admins set through the API. A nil field falls back
// to the tenant file; BusinessHoursSet with a nil BusinessHours means "no business hours".
type Overrides struct {
	AwayPrompt       *string
	BusinessHoursSet bool
	BusinessHours    *tenant.BusinessHours
	UnassignOnAway   *bool
	UpdatedAt        time.Time
	UpdatedBy        string
}

// Apply returns the settings of file overlaid with o.
func (o Overrides) Apply(file tenant.Chat) Settings {
	s := Settings{AwayPrompt: file.AwayPrompt, BusinessHours: file.BusinessHours, UnassignOnAway: file.UnassignOnAway}
	if s.AwayPrompt == "" {
		s.AwayPrompt = tenant.DefaultAwayPrompt
	}
	if o.AwayPrompt != nil {
		s.AwayPrompt = *o.AwayPrompt
	}
	if o.BusinessHoursSet {
		s.BusinessHours = o.BusinessHours
	}
	if o.UnassignOnAway != nil {
		s.UnassignOnAway = *o.UnassignOnAway
	}
	return s
}

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
