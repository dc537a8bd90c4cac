package tenant

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// minutesPerDay is the number of minutes from one local midnight to the next, ignoring DST.
const minutesPerDay = 24 * 60

// searchDays is how far ahead NextOpening looks for an opening.
const searchDays = 8

// rangePattern matches the "HH:MM-HH:MM" form of a Range.
var rangePattern = regexp.MustCompile(`^([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})$`)

// ParseBusinessHours builds a schedule from a time zone name (IANA, e.g. Europe/Berlin) and
// ranges per day (keys mon..sun, values "HH:MM-HH:MM"). An end before the start runs past
// midnight into the next day; "24:00" ends at midnight. The ranges of one day must not overlap.
// The error names every offending day and range.
func ParseBusinessHours(timezone string, weekly map[string][]string) (*BusinessHours, error) {
	loc, err := loadLocation(timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}
	h := &BusinessHours{Location: loc}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(weekly)) {
		day, err := parseWeekday(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("weekly: %w", err))
			continue
		}
		ranges, ok := make([]Range, 0, len(weekly[key])), true
		for _, s := range weekly[key] {
			r, err := parseRange(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("weekly.%s: %w", key, err))
				ok = false
				continue
			}
			ranges = append(ranges, r)
		}
		if !ok {
			continue
		}
		if _, err := checkOverlap(ranges); err != nil {
			errs = append(errs, fmt.Errorf("weekly.%s: %w", key, err))
			continue
		}
		h.Weekly[day] = sortRanges(ranges)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return h, nil
}

// parseRange parses one "HH:MM-HH:MM" range of a day. Times go from 00:00 to 24:00; the start
// and end differ; an end before the start runs past midnight into the next day.
func parseRange(s string) (Range, error) {
	m := rangePattern.FindStringSubmatch(s)
	if m == nil {
		return Range{}, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	start, okStart := clockMinutes(m[1], m[2])
	end, okEnd := clockMinutes(m[3], m[4])
	switch {
	case !okStart || !okEnd:
		return Range{}, fmt.Errorf("%q has a time outside 00:00-24:00", s)
	case start == minutesPerDay:
		return Range{}, fmt.Errorf("%q starts at 24:00; write 00:00 of the next day", s)
	case start == end:
		return Range{}, fmt.Errorf("%q starts and ends at the same time", s)
	}
	return Range{Start: start, End: end}, nil
}

// clockMinutes turns the two-digit hour and minute of a clock time into minutes after midnight,
// reporting false for a time outside 00:00..24:00.
func clockMinutes(hh, mm string) (int, bool) {
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

// String returns the range as "HH:MM-HH:MM".
func (r Range) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", r.Start/60, r.Start%60, r.End/60, r.End%60)
}

// length is how many wall-clock minutes the range covers from its start.
func (r Range) length() int {
	if r.End > r.Start {
		return r.End - r.Start
	}
	return r.End + minutesPerDay - r.Start
}

// checkOverlap reports the first range of one day that overlaps an earlier one, with its index.
// A range running past midnight counts as running until its end on the next day.
func checkOverlap(ranges []Range) (int, error) {
	for j, b := range ranges {
		for _, a := range ranges[:j] {
			if a.Start < b.Start+b.length() && b.Start < a.Start+a.length() {
				return j, fmt.Errorf("%q overlaps %q", b.String(), a.String())
			}
		}
	}
	return -1, nil
}

// sortRanges returns the ranges of one day ordered by start, the canonical order of Spec.
func sortRanges(ranges []Range) []Range {
	if len(ranges) == 0 {
		return nil
	}
	slices.SortFunc(ranges, func(a, b Range) int { return a.Start - b.Start })
	return ranges
}

// loadLocation loads an IANA time zone by name. Unlike time.LoadLocation it refuses the empty
// name and "Local", which depend on the machine.
func loadLocation(name string) (*time.Location, error) {
	if name == "" {
		return nil, errors.New("required")
	}
	if name == "Local" {
		return nil, errors.New(`"Local" is not an IANA time zone`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// dayKey returns the schedule key of a weekday: sun, mon, ... sat.
func dayKey(d time.Weekday) string {
	return strings.ToLower(d.String()[:3])
}

// parseWeekday returns the weekday of a schedule key (mon..sun).
func parseWeekday(key string) (time.Weekday, error) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if dayKey(d) == key {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown day %q (want mon, tue, wed, thu, fri, sat or sun)", key)
}

// Spec returns the schedule in the form ParseBusinessHours takes: the time zone name and the
// canonical "HH:MM-HH:MM" ranges per day, ordered by start. Days without ranges are omitted.
func (h *BusinessHours) Spec() (timezone string, weekly map[string][]string) {
	weekly = map[string][]string{}
	for d, ranges := range h.Weekly {
		if len(ranges) == 0 {
			continue
		}
		specs := make([]string, 0, len(ranges))
		for _, r := range sortRanges(slices.Clone(ranges)) {
			specs = append(specs, r.String())
		}
		weekly[dayKey(time.Weekday(d))] = specs
	}
	return h.Location.String(), weekly
}

// Open reports whether t falls inside the business hours.
func (h *BusinessHours) Open(t time.Time) bool {
	open := false
	h.intervals(t, -1, 1, func(start, end time.Time) bool {
		open = !t.Before(start) && t.Before(end)
		return !open
	})
	return open
}

// NextOpening returns the earliest instant at or after t at which the business hours are open:
// t itself when they are open now. It looks at most eight days ahead and reports false when
// the schedule has no opening in that time, such as a schedule without ranges.
func (h *BusinessHours) NextOpening(t time.Time) (time.Time, bool) {
	if h.Open(t) {
		return t, true
	}
	var next time.Time
	found := false
	h.intervals(t, -1, searchDays, func(start, end time.Time) bool {
		if start.After(t) && start.Before(end) && (!found || start.Before(next)) {
			next, found = start, true
		}
		return true
	})
	return next, found
}

// NextChange returns the earliest instant after t at which the business hours open or close,
// reporting false when nothing changes within eight days (a schedule without ranges, or one
// open around the clock). Ranges that meet or overlap change nothing where they meet; the
// instants follow the location's daylight saving time changes.
func (h *BusinessHours) NextChange(t time.Time) (time.Time, bool) {
	var edges []time.Time
	h.intervals(t, -1, searchDays, func(start, end time.Time) bool {
		for _, e := range []time.Time{start, end} {
			if e.After(t) {
				edges = append(edges, e)
			}
		}
		return true
	})
	slices.SortFunc(edges, time.Time.Compare)
	open := h.Open(t)
	for _, e := range edges {
		if h.Open(e) != open {
			return e, true
		}
	}
	return time.Time{}, false
}

// intervals calls yield with the start and end instant of every range of the local days from
// t's day+from to t's day+to, until yield returns false.
func (h *BusinessHours) intervals(t time.Time, from, to int, yield func(start, end time.Time) bool) {
	y, m, d := t.In(h.Location).Date()
	for offset := from; offset <= to; offset++ {
		// Day arithmetic in UTC sidesteps days that are 23 or 25 hours long.
		day := time.Date(y, m, d+offset, 0, 0, 0, 0, time.UTC)
		for _, r := range h.Weekly[day.Weekday()] {
			start := wallClock(day, r.Start, h.Location)
			end := wallClock(day, r.Start+r.length(), h.Location)
			if !yield(start, end) {
				return
			}
		}
	}
}

// wallClock returns the instant at which clocks in loc show the given minutes after the start
// of day (a UTC midnight naming the local date; minutes may run into the next day). A time
// skipped by a spring-forward gap maps to the first instant after the gap; a time repeated by
// a fall-back overlap maps to its first occurrence.
func wallClock(day time.Time, minutes int, loc *time.Location) time.Time {
	want := day.Add(time.Duration(minutes) * time.Minute)
	t := time.Date(want.Year(), want.Month(), want.Day(), want.Hour(), want.Minute(), 0, 0, loc)
	shown := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
	switch {
	case shown.Before(want): // In a gap, before the clocks jumped: the gap ends with the zone.
		_, end := t.ZoneBounds()
		return end
	case shown.After(want): // In a gap, after the clocks jumped: the zone began with the gap's end.
		start, _ := t.ZoneBounds()
		return start
	}
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, now := t.Zone()
	if earlier := t.Add(time.Duration(now-before) * time.Second); earlier.Before(start) && sameWallClock(earlier.In(loc), t) {
		return earlier
	}
	return t
}

// sameWallClock reports whether a and b show the same date and time on their clocks.
func sameWallClock(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute()
}
