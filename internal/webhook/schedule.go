package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// DefaultSchedule is the wait before each retry of a delivery (PRODUCT.md): ten attempts over
// about three days.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// jitter spreads retries by up to ±20% of their wait, so that deliveries that failed together
// do not all come back at once.
const jitter = 0.2

// maxRetryAfter bounds the wait a receiver's Retry-After may ask for: the schedule's longest.
const maxRetryAfter = 24 * time.Hour

// retryWait returns the wait before the retry after attempt tries (1: the first attempt
// failed) of schedule, and false when the schedule is exhausted: the delivery is dead.
// retryAfter, when positive, is what the receiver asked for; it replaces the schedule's wait,
// up to maxRetryAfter.
func retryWait(schedule []time.Duration, tries int, retryAfter time.Duration) (time.Duration, bool) {
	if tries < 1 || tries > len(schedule) {
		return 0, false
	}
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter), true
	}
	w := schedule[tries-1]
	f := 1 + jitter*(2*rand.Float64()-1) //nolint:gosec // jitter, not a secret
	return time.Duration(float64(w) * f), true
}

// span is how long a delivery may be retried: the sum of the schedule's waits.
func span(schedule []time.Duration) time.Duration {
	var s time.Duration
	for _, w := range schedule {
		s += w
	}
	return s
}

// parseRetryAfter returns the wait a Retry-After header asks for (seconds or an HTTP date),
// zero when it says nothing usable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(7*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retryable reports whether a delivery answered with status is tried again: 429 and 5xx.
// Other statuses but 2xx (and 410, which disables the endpoint) end it.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}
