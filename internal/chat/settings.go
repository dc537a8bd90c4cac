package chat

import (
	"context"
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

// SettingsReport is what admins are shown of a tenant's chat settings: the effective settings,
// the fields its admins override, and when and by whom they last did.
type SettingsReport struct {
	Settings
	Overridden []string
	UpdatedAt  *time.Time
	UpdatedBy  string
}

// settingsReport returns the effective settings of t with overrides o.
func settingsReport(t *tenant.Tenant, o Overrides) *SettingsReport {
	v := &SettingsReport{Settings: o.Apply(t.Chat), Overridden: []string{}, UpdatedBy: o.UpdatedBy}
	if o.AwayPrompt != nil {
		v.Overridden = append(v.Overridden, "away_prompt")
	}
	if o.BusinessHoursSet {
		v.Overridden = append(v.Overridden, "business_hours")
	}
	if o.UnassignOnAway != nil {
		v.Overridden = append(v.Overridden, "unassign_on_away")
	}
	if !o.UpdatedAt.IsZero() {
		at := o.UpdatedAt
		v.UpdatedAt = &at
	}
	return v
}

// effectiveSettings returns the settings of t with its stored overrides, cached for a few seconds.
func (s *Service) effectiveSettings(ctx context.Context, t *tenant.Tenant) (Settings, Overrides, error) {
	o, err := s.overrides.get(ctx, t.ID, func(ctx context.Context) (Overrides, error) {
		return s.settings.Overrides(ctx, t.ID)
	})
	if err != nil {
		return Settings{}, Overrides{}, err
	}
	return o.Apply(t.Chat), o, nil
}

// freshSettings returns t's effective settings read from the database, not from this
// replica's cache of them (which it primes): a settings write that returned is in them.
func (s *Service) freshSettings(ctx context.Context, t *tenant.Tenant) (Settings, error) {
	o, err := s.settings.Overrides(ctx, t.ID)
	if err != nil {
		return Settings{}, err
	}
	s.overrides.put(t.ID, o)
	return o.Apply(t.Chat), nil
}
