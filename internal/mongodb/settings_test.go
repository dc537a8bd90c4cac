package mongodb_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// sameLocation compares time zones by name.
func sameLocation() cmp.Option {
	return cmp.Comparer(func(a, b *time.Location) bool {
		if a == nil || b == nil {
			return a == b
		}
		return a.String() == b.String()
	})
}

func TestOverridesRoundTrip(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("LoadLocation: %v", err)
	}
	prompt, empty, unassign := "Back at 9.", "", true
	weekdays := []tenant.Range{{Start: 9 * 60, End: 18 * 60}}
	hours := &tenant.BusinessHours{Location: berlin}
	for day := time.Monday; day <= time.Friday; day++ {
		hours.Weekly[day] = weekdays
	}
	hours.Weekly[time.Saturday] = []tenant.Range{{Start: 22 * 60, End: 2 * 60}, {Start: 600, End: 1440}}

	for _, tc := range []struct {
		name string
		put  *chat.Overrides // nil: store nothing
		want chat.Overrides
	}{
		{"nothing stored reads as no overrides", nil, chat.Overrides{}},
		{"every setting", &chat.Overrides{
			AwayPrompt: &prompt, BusinessHoursSet: true, BusinessHours: hours, UnassignOnAway: &unassign,
			Retention: &tenant.Retention{ResolvedAfterDays: 365}, UpdatedAt: t0, UpdatedBy: "admin-1",
		}, chat.Overrides{
			AwayPrompt: &prompt, BusinessHoursSet: true, BusinessHours: hours, UnassignOnAway: &unassign,
			Retention: &tenant.Retention{ResolvedAfterDays: 365}, UpdatedAt: t0, UpdatedBy: "admin-1",
		}},
		{"retention kept forever", &chat.Overrides{Retention: &tenant.Retention{}, UpdatedAt: t0},
			chat.Overrides{Retention: &tenant.Retention{}, UpdatedAt: t0}},
		{"no business hours", &chat.Overrides{BusinessHoursSet: true, UpdatedAt: t0, UpdatedBy: "admin-2"},
			chat.Overrides{BusinessHoursSet: true, UpdatedAt: t0, UpdatedBy: "admin-2"}},
		{"hours in UTC", &chat.Overrides{BusinessHoursSet: true, BusinessHours: &tenant.BusinessHours{Location: time.UTC}, UpdatedAt: t0},
			chat.Overrides{BusinessHoursSet: true, BusinessHours: &tenant.BusinessHours{Location: time.UTC}, UpdatedAt: t0}},
		{"an empty away prompt", &chat.Overrides{AwayPrompt: &empty, UpdatedAt: t0},
			chat.Overrides{AwayPrompt: &empty, UpdatedAt: t0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStore(t)
			ctx := context.Background()
			if tc.put != nil {
				// Replacing earlier overrides leaves nothing of them.
				if err := s.PutOverrides(ctx, shop, chat.Overrides{AwayPrompt: &prompt, UnassignOnAway: &unassign, BusinessHoursSet: true, BusinessHours: hours, Retention: &tenant.Retention{ResolvedAfterDays: 30}}); err != nil {
					t.Fatalf("PutOverrides(earlier): %v", err)
				}
				if err := s.PutOverrides(ctx, shop, *tc.put); err != nil {
					t.Fatalf("PutOverrides: %v", err)
				}
			}
			got, err := s.Overrides(ctx, shop)
			if err != nil {
				t.Fatalf("Overrides: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, sameLocation()); diff != "" {
				t.Errorf("Overrides(...) (-want +got):\n%s", diff)
			}
			if other, err := s.Overrides(ctx, outdoor); err != nil || !cmp.Equal(other, chat.Overrides{}) {
				t.Errorf("Overrides(other tenant) = %+v, %v; want none", other, err)
			}
		})
	}
}
