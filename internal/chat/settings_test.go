package chat

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// memSettings is a SettingsStore in memory, for one tenant.
type memSettings struct {
	o   Overrides
	err error
}

func (m *memSettings) Overrides(context.Context, string) (Overrides, error) { return m.o, m.err }

func (m *memSettings) PutOverrides(_ context.Context, _ string, o Overrides) error {
	m.o = o
	return m.err
}

func TestRetention(t *testing.T) {
	store := &memSettings{}
	now := t0
	// A cache that never expires: Retention must read the store all the same.
	svc := NewService(Deps{Settings: store, Now: func() time.Time { return now }, SettingsTTL: time.Hour})
	shop := &tenant.Tenant{ID: "demo-shop", Chat: tenant.Chat{Retention: tenant.Retention{ResolvedAfterDays: 30}}}
	forever := &tenant.Tenant{ID: "forever"}
	ctx := context.Background()
	retention := func(tn *tenant.Tenant) int {
		t.Helper()
		days, err := svc.Retention(ctx, tn)
		if err != nil {
			t.Fatalf("Retention(%s) = %v", tn.ID, err)
		}
		return days
	}
	if got := retention(shop); got != 30 {
		t.Errorf("the file's retention = %d days, want 30", got)
	}
	if got := retention(forever); got != 0 {
		t.Errorf("a file without retention = %d days, want 0 (forever)", got)
	}
	// Cache the overrides, then change them behind the cache's back.
	if _, _, err := svc.effectiveSettings(ctx, shop); err != nil {
		t.Fatal(err)
	}
	store.o = Overrides{Retention: &tenant.Retention{ResolvedAfterDays: 90}}
	if got := retention(shop); got != 90 {
		t.Errorf("overridden retention = %d days, want 90 (read fresh, not from the cache)", got)
	}
	store.o = Overrides{Retention: &tenant.Retention{}}
	if got := retention(shop); got != 0 {
		t.Errorf("retention overridden to forever = %d days, want 0", got)
	}
	store.o = Overrides{Retention: &tenant.Retention{ResolvedAfterDays: 7}}
	if got := retention(forever); got != 7 {
		t.Errorf("retention overriding a file without = %d days, want 7", got)
	}
	store.err = errors.New("store down")
	if _, err := svc.Retention(ctx, shop); !errors.Is(err, store.err) {
		t.Errorf("Retention with the store down = %v, want its error", err)
	}
}

func TestPutSettingsRefusesABadRetention(t *testing.T) {
	store := &memSettings{}
	svc := NewService(Deps{Settings: store, Now: func() time.Time { return t0 }})
	ctx := WithCaller(tenant.NewContext(context.Background(), &tenant.Tenant{ID: "demo-shop"}), Caller{ID: "grace", Role: RoleAdmin})
	for _, days := range []int{-1, tenant.MaxRetentionDays + 1} {
		_, err := svc.PutSettings(ctx, Overrides{Retention: &tenant.Retention{ResolvedAfterDays: days}})
		var ce *Error
		if !errors.As(err, &ce) || ce.Code != Invalid || ce.Field != "retention.resolved_after_days" {
			t.Errorf("PutSettings(retention %d days) = %v, want Invalid naming retention.resolved_after_days", days, err)
		}
	}
	if store.o.Retention != nil {
		t.Errorf("a refused retention was stored: %+v", store.o)
	}
}

func TestSettingsReportNamesAnOverriddenRetention(t *testing.T) {
	shop := &tenant.Tenant{ID: "demo-shop", Chat: tenant.Chat{Retention: tenant.Retention{ResolvedAfterDays: 30}}}
	if got := settingsReport(shop, Overrides{}); got.Retention.ResolvedAfterDays != 30 || len(got.Overridden) != 0 {
		t.Errorf("report without overrides = %+v", got)
	}
	got := settingsReport(shop, Overrides{Retention: &tenant.Retention{}})
	if got.Retention.ResolvedAfterDays != 0 || len(got.Overridden) != 1 || got.Overridden[0] != "retention" {
		t.Errorf("report with retention overridden to forever = %+v", got)
	}
}
