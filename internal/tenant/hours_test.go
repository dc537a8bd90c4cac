package tenant_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/tenant"
)

// mustHours parses business hours.
func mustHours(tb testing.TB, timezone string, weekly map[string][]string) *tenant.BusinessHours {
	tb.Helper()
	h, err := tenant.ParseBusinessHours(timezone, weekly)
	if err != nil {
		tb.Fatalf("ParseBusinessHours(%s, %v) = %v", timezone, weekly, err)
	}
	return h
}

// at returns the instant clocks in loc show "2006-01-02 15:04".
func at(tb testing.TB, loc *time.Location, clock string) time.Time {
	tb.Helper()
	t, err := time.ParseInLocation("2006-01-02 15:04", clock, loc)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// utc returns the UTC instant "2006-01-02 15:04".
func utc(tb testing.TB, clock string) time.Time {
	tb.Helper()
	return at(tb, time.UTC, clock)
}

// openCase is one instant and whether the hours are open then.
type openCase struct {
	name string
	at   time.Time
	open bool
}

// checkOpen asserts Open for each case.
func checkOpen(t *testing.T, h *tenant.BusinessHours, cases []openCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := h.Open(c.at); got != c.open {
				t.Errorf("Open(%s) = %t, want %t", c.at.In(h.Location).Format(time.RFC3339), got, c.open)
			}
		})
	}
}

func TestOpenBerlinWeekdays(t *testing.T) {
	berlin := mustLocation(t, "Europe/Berlin")
	weekdays := []string{"09:00-18:00"}
	h := mustHours(t, "Europe/Berlin", map[string][]string{"mon": weekdays, "tue": weekdays, "wed": weekdays, "thu": weekdays, "fri": {"09:00-17:00"}})
	checkOpen(t, h, []openCase{
		{"Monday just before nine is closed", at(t, berlin, "2026-06-15 08:59"), false},
		{"Monday at nine is open", at(t, berlin, "2026-06-15 09:00"), true},
		{"Monday at nine is 07:00 UTC in summer", utc(t, "2026-06-15 07:00"), true},
		{"Monday 17:59 is open", at(t, berlin, "2026-06-15 17:59"), true},
		{"Monday at six in the evening is closed", at(t, berlin, "2026-06-15 18:00"), false},
		{"Friday 17:30 is closed: Friday ends at five", at(t, berlin, "2026-06-19 17:30"), false},
		{"Saturday noon is closed", at(t, berlin, "2026-06-20 12:00"), false},
		{"Sunday noon is closed", at(t, berlin, "2026-06-21 12:00"), false},
		{"Monday at nine in winter is 08:00 UTC", utc(t, "2026-01-05 08:00"), true},
		{"Monday 07:30 UTC in winter is 08:30 local: closed", utc(t, "2026-01-05 07:30"), false},
	})
}

func TestOpenNewYorkAcrossDST(t *testing.T) {
	ny := mustLocation(t, "America/New_York")
	// On 2026-03-08 clocks jump from 02:00 EST to 03:00 EDT; on 2026-11-01 they fall back
	// from 02:00 EDT to 01:00 EST, so 01:00-02:00 happens twice.
	h := mustHours(t, "America/New_York", map[string][]string{
		"sun": {"01:30-03:00", "09:00-17:00"},
		"mon": {"09:00-17:00"},
	})
	checkOpen(t, h, []openCase{
		{"Sunday before spring forward opens at 09:00 EST (14:00 UTC)", utc(t, "2026-03-01 14:00"), true},
		{"Sunday before spring forward is closed at 13:59 UTC", utc(t, "2026-03-01 13:59"), false},
		{"spring-forward Sunday opens at 09:00 EDT (13:00 UTC)", utc(t, "2026-03-08 13:00"), true},
		{"spring-forward Sunday 16:59 EDT is open", at(t, ny, "2026-03-08 16:59"), true},
		{"spring-forward Sunday closes at 17:00 EDT (21:00 UTC)", utc(t, "2026-03-08 21:00"), false},
		{"spring-forward Sunday 01:30 EST is open", utc(t, "2026-03-08 06:30"), true},
		{"spring-forward Sunday: 01:59 EST is followed by 03:00 EDT, the end", utc(t, "2026-03-08 07:00"), false},
		{"Monday after spring forward opens at 13:00 UTC", utc(t, "2026-03-09 13:00"), true},
		{"fall-back Sunday opens at the first 01:30 (EDT, 05:30 UTC)", utc(t, "2026-11-01 05:30"), true},
		{"fall-back Sunday is closed just before the first 01:30", utc(t, "2026-11-01 05:29"), false},
		{"fall-back Sunday is open through the repeated hour", utc(t, "2026-11-01 06:45"), true},
		{"fall-back Sunday is open until 03:00 EST (08:00 UTC)", utc(t, "2026-11-01 07:59"), true},
		{"fall-back Sunday closes at 03:00 EST", utc(t, "2026-11-01 08:00"), false},
		{"fall-back Sunday opens at 09:00 EST (14:00 UTC)", utc(t, "2026-11-01 14:00"), true},
		{"fall-back Sunday 13:30 UTC is 08:30 EST: closed", utc(t, "2026-11-01 13:30"), false},
	})
}

func TestOpenRangeStartingInSpringForwardGap(t *testing.T) {
	// 02:30 does not exist on 2026-03-08 in New York: the range opens when the gap ends, 03:00 EDT.
	h := mustHours(t, "America/New_York", map[string][]string{"sun": {"02:30-05:00"}})
	checkOpen(t, h, []openCase{
		{"01:59 EST is closed", utc(t, "2026-03-08 06:59"), false},
		{"03:00 EDT, the end of the gap, is open", utc(t, "2026-03-08 07:00"), true},
		{"04:59 EDT is open", utc(t, "2026-03-08 08:59"), true},
		{"05:00 EDT is closed", utc(t, "2026-03-08 09:00"), false},
		{"an ordinary Sunday opens at 02:30 EST", utc(t, "2026-03-01 07:30"), true},
	})
	next, ok := h.NextOpening(utc(t, "2026-03-08 05:00"))
	if want := utc(t, "2026-03-08 07:00"); !ok || !next.Equal(want) {
		t.Errorf("NextOpening(spring-forward Sunday 00:00 EST) = %s, %t; want %s (03:00 EDT), true", next, ok, want)
	}
}

func TestOpenOvernightAcrossWeekEnd(t *testing.T) {
	berlin := mustLocation(t, "Europe/Berlin")
	h := mustHours(t, "Europe/Berlin", map[string][]string{"sun": {"22:00-02:00"}, "fri": {"18:00-24:00"}, "sat": {"00:00-01:00"}})
	checkOpen(t, h, []openCase{
		{"Sunday 21:59 is closed", at(t, berlin, "2026-06-14 21:59"), false},
		{"Sunday 22:00 is open", at(t, berlin, "2026-06-14 22:00"), true},
		{"Sunday late night runs into Monday 01:59", at(t, berlin, "2026-06-15 01:59"), true},
		{"Monday 02:00 is closed", at(t, berlin, "2026-06-15 02:00"), false},
		{"Saturday 23:00 is closed", at(t, berlin, "2026-06-13 23:00"), false},
		{"Friday until 24:00 is open at 23:59", at(t, berlin, "2026-06-19 23:59"), true},
		{"Saturday 00:00 continues Friday's hours", at(t, berlin, "2026-06-20 00:00"), true},
		{"Saturday 01:00 is closed", at(t, berlin, "2026-06-20 01:00"), false},
	})
}

// nextCase is one instant and the next instant a method of BusinessHours must find from it.
type nextCase struct {
	name   string
	hours  *tenant.BusinessHours
	from   time.Time
	want   time.Time
	wantOK bool
}

// checkNext runs next, the method called name, on each case.
func checkNext(t *testing.T, name string, next func(*tenant.BusinessHours, time.Time) (time.Time, bool), cases []nextCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := next(tt.hours, tt.from)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("%s(%s) = %s, %t; want %s, %t", name, tt.from.UTC(), got.UTC(), ok, tt.want.UTC(), tt.wantOK)
			}
		})
	}
}

func TestNextOpening(t *testing.T) {
	berlin := mustLocation(t, "Europe/Berlin")
	weekdays := []string{"09:00-18:00"}
	office := mustHours(t, "Europe/Berlin", map[string][]string{"mon": weekdays, "tue": weekdays, "wed": weekdays, "thu": weekdays, "fri": {"09:00-17:00"}})
	lateShift := mustHours(t, "Europe/Berlin", map[string][]string{"sat": {"22:00-02:00"}})
	checkNext(t, "NextOpening", (*tenant.BusinessHours).NextOpening, []nextCase{
		{"Friday evening waits for Monday 09:00", office, at(t, berlin, "2026-06-19 18:30"), at(t, berlin, "2026-06-22 09:00"), true},
		{"Saturday waits for Monday 09:00", office, at(t, berlin, "2026-06-20 10:00"), at(t, berlin, "2026-06-22 09:00"), true},
		{"early Tuesday waits for 09:00 the same day", office, at(t, berlin, "2026-06-16 06:00"), at(t, berlin, "2026-06-16 09:00"), true},
		{"open now answers now", office, at(t, berlin, "2026-06-16 10:17"), at(t, berlin, "2026-06-16 10:17"), true},
		{"Friday evening before the spring DST switch waits for Monday 09:00 CEST", office, at(t, berlin, "2026-03-27 20:00"), at(t, berlin, "2026-03-30 09:00"), true},
		{"a weekly late shift is a week away right after it closes", lateShift, at(t, berlin, "2026-06-14 02:00"), at(t, berlin, "2026-06-20 22:00"), true},
		{"inside an overnight range answers now", lateShift, at(t, berlin, "2026-06-21 01:00"), at(t, berlin, "2026-06-21 01:00"), true},
		{"no ranges never open", mustHours(t, "Europe/Berlin", nil), at(t, berlin, "2026-06-19 18:30"), time.Time{}, false},
	})
}

func TestNextChange(t *testing.T) {
	berlin := mustLocation(t, "Europe/Berlin")
	ny := mustLocation(t, "America/New_York")
	office := mustHours(t, "Europe/Berlin", map[string][]string{"mon": {"09:00-18:00"}, "fri": {"09:00-17:00"}})
	// Friday 18:00-24:00 and Saturday 00:00-01:00 meet at midnight: one opening, no change there.
	overnight := mustHours(t, "Europe/Berlin", map[string][]string{"fri": {"18:00-24:00"}, "sat": {"00:00-01:00"}})
	// New York: clocks spring forward on 2026-03-08 and fall back on 2026-11-01.
	dst := mustHours(t, "America/New_York", map[string][]string{"sun": {"01:30-03:00", "09:00-17:00"}})
	always := mustHours(t, "Europe/Berlin", map[string][]string{
		"mon": {"00:00-24:00"}, "tue": {"00:00-24:00"}, "wed": {"00:00-24:00"}, "thu": {"00:00-24:00"},
		"fri": {"00:00-24:00"}, "sat": {"00:00-24:00"}, "sun": {"00:00-24:00"},
	})
	checkNext(t, "NextChange", (*tenant.BusinessHours).NextChange, []nextCase{
		{"open Monday closes at 18:00", office, at(t, berlin, "2026-06-15 10:00"), at(t, berlin, "2026-06-15 18:00"), true},
		{"at the closing instant the next change is Friday's opening", office, at(t, berlin, "2026-06-15 18:00"), at(t, berlin, "2026-06-19 09:00"), true},
		{"closed Friday evening waits for Monday's opening", office, at(t, berlin, "2026-06-19 17:00"), at(t, berlin, "2026-06-22 09:00"), true},
		{"ranges that meet at midnight close at Saturday 01:00", overnight, at(t, berlin, "2026-06-19 23:00"), at(t, berlin, "2026-06-20 01:00"), true},
		{"spring-forward Sunday closes at 03:00 EDT, the gap's end", dst, utc(t, "2026-03-08 06:45"), utc(t, "2026-03-08 07:00"), true},
		{"spring-forward Sunday opens at 09:00 EDT (13:00 UTC)", dst, utc(t, "2026-03-08 07:00"), utc(t, "2026-03-08 13:00"), true},
		{"spring-forward Sunday closes at 17:00 EDT (21:00 UTC)", dst, utc(t, "2026-03-08 13:00"), utc(t, "2026-03-08 21:00"), true},
		{"fall-back Sunday opens at the first 01:30 (EDT)", dst, at(t, ny, "2026-11-01 00:00"), utc(t, "2026-11-01 05:30"), true},
		{"fall-back Sunday closes at 03:00 EST, through the repeated hour", dst, utc(t, "2026-11-01 05:30"), utc(t, "2026-11-01 08:00"), true},
		{"fall-back Sunday opens at 09:00 EST (14:00 UTC)", dst, utc(t, "2026-11-01 08:00"), utc(t, "2026-11-01 14:00"), true},
		{"open around the clock never changes", always, at(t, berlin, "2026-06-15 10:00"), time.Time{}, false},
		{"no ranges never change", mustHours(t, "Europe/Berlin", nil), at(t, berlin, "2026-06-15 10:00"), time.Time{}, false},
	})
}

func TestParseBusinessHoursErrors(t *testing.T) {
	tests := []struct {
		name     string
		timezone string
		weekly   map[string][]string
		want     string
	}{
		{"no time zone", "", nil, "timezone: required"},
		{"an unknown time zone", "Europe/Atlantis", nil, `timezone: unknown time zone "Europe/Atlantis"`},
		{"the machine's local zone", "Local", nil, `timezone: "Local" is not an IANA time zone`},
		{"an unknown day", "UTC", map[string][]string{"monday": {"09:00-17:00"}}, `weekly: unknown day "monday"`},
		{"hours without leading zeros", "UTC", map[string][]string{"mon": {"9:00-18:00"}}, `weekly.mon: "9:00-18:00" is not HH:MM-HH:MM`},
		{"minutes past 59", "UTC", map[string][]string{"tue": {"09:60-18:00"}}, `weekly.tue: "09:60-18:00" has a time outside 00:00-24:00`},
		{"a start at 24:00", "UTC", map[string][]string{"wed": {"24:00-02:00"}}, `weekly.wed: "24:00-02:00" starts at 24:00`},
		{"an empty range", "UTC", map[string][]string{"thu": {"10:00-10:00"}}, `weekly.thu: "10:00-10:00" starts and ends at the same time`},
		{"overlapping ranges", "UTC", map[string][]string{"fri": {"09:00-13:00", "12:30-17:00"}}, `weekly.fri: "12:30-17:00" overlaps "09:00-13:00"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := tenant.ParseBusinessHours(tt.timezone, tt.weekly)
			if h != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseBusinessHours(%q, %v) = %v, %v; want an error %q", tt.timezone, tt.weekly, h, err, tt.want)
			}
		})
	}
}

func TestParseBusinessHoursAcceptsAdjacentAndOvernightRanges(t *testing.T) {
	h := mustHours(t, "UTC", map[string][]string{"mon": {"13:00-17:00", "09:00-13:00", "22:00-02:00"}, "sun": {"00:00-24:00"}})
	want := [7][]tenant.Range{
		time.Sunday: {{Start: 0, End: 1440}},
		time.Monday: {{Start: 540, End: 780}, {Start: 780, End: 1020}, {Start: 1320, End: 120}},
	}
	if diff := cmp.Diff(want, h.Weekly); diff != "" {
		t.Errorf("ParseBusinessHours ranges mismatch (-want +got):\n%s", diff)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		timezone string
		weekly   map[string][]string
		want     map[string][]string
	}{
		{"office hours come back as written", "Europe/Berlin",
			map[string][]string{"mon": {"09:00-18:00"}, "fri": {"09:00-12:00", "13:00-17:00"}},
			map[string][]string{"mon": {"09:00-18:00"}, "fri": {"09:00-12:00", "13:00-17:00"}}},
		{"ranges come back sorted and empty days are left out", "America/New_York",
			map[string][]string{"sat": {"22:00-02:00", "10:00-14:00"}, "sun": {}, "wed": {"00:00-24:00"}},
			map[string][]string{"sat": {"10:00-14:00", "22:00-02:00"}, "wed": {"00:00-24:00"}}},
		{"no ranges", "UTC", nil, map[string][]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tz, weekly := mustHours(t, tt.timezone, tt.weekly).Spec()
			if tz != tt.timezone {
				t.Errorf("Spec() time zone = %q, want %q", tz, tt.timezone)
			}
			if diff := cmp.Diff(tt.want, weekly); diff != "" {
				t.Errorf("Spec() weekly mismatch (-want +got):\n%s", diff)
			}
			again := mustHours(t, tz, weekly)
			if diff := cmp.Diff(mustHours(t, tt.timezone, tt.weekly), again, compareLocations); diff != "" {
				t.Errorf("ParseBusinessHours(Spec()) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
