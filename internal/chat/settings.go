package chat

import (
	"context"
	"fmt"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// Settings are a tenant's effective chat settings: the tenant file's defaults with the
// overrides its admins stored through the API.
type Settings struct {
	AwayPrompt     string
	BusinessHours  *tenant.BusinessHours
	UnassignOnAway bool
	// Retention is how long resolved conversations are kept (the zero Retention: forever).
	Retention tenant.Retention
}

// Overrides are the chat settings a tenant's admins set through the API. A nil field falls back
// to the tenant file; BusinessHoursSet with a nil BusinessHours means "no business hours", a
// Retention of 0 days "keep resolved conversations forever".
type Overrides struct {
	AwayPrompt       *string
	BusinessHoursSet bool
	BusinessHours    *tenant.BusinessHours
	UnassignOnAway   *bool
	Retention        *tenant.Retention
	UpdatedAt        time.Time
	UpdatedBy        string
}

// Apply returns the settings of file overlaid with o.
func (o Overrides) Apply(file tenant.Chat) Settings {
	s := Settings{AwayPrompt: file.AwayPrompt, BusinessHours: file.BusinessHours, UnassignOnAway: file.UnassignOnAway, Retention: file.Retention}
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
	if o.Retention != nil {
		s.Retention = *o.Retention
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
	if o.Retention != nil {
		v.Overridden = append(v.Overridden, "retention")
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

// Retention returns how many days after its resolution a resolved conversation of t is kept
// (0: forever), from t's effective settings read from the database: the background erasure of
// old conversations runs rarely, and must follow an override as soon as it is stored.
func (s *Service) Retention(ctx context.Context, t *tenant.Tenant) (days int, err error) {
	settings, err := s.freshSettings(ctx, t)
	if err != nil {
		return 0, fmt.Errorf("retention of tenant %s: %w", t.ID, err)
	}
	return settings.Retention.ResolvedAfterDays, nil
}

// checkRetention reports a retention admins may not set: more than tenant.MaxRetentionDays, or
// fewer than 0 (0 keeps resolved conversations forever).
func checkRetention(r tenant.Retention) error {
	if r.ResolvedAfterDays < 0 || r.ResolvedAfterDays > tenant.MaxRetentionDays {
		return RetentionError()
	}
	return nil
}

// RetentionError is the error of a retention.resolved_after_days admins may not set.
func RetentionError() *Error {
	return FieldError("retention.resolved_after_days", "must be a whole number of days from 1 to %d, or null to keep resolved conversations forever", tenant.MaxRetentionDays)
}
