package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// series is what one kind of request of a scenario run measured: every attempt's latency and
// answer, and the MongoDB commands the service made meanwhile.
type series struct {
	// name says which request: "send", "list" or "GET".
	name string

	mu        sync.Mutex
	latencies []time.Duration
	statuses  map[int]int
	transport int
	retries   int
	failed    int

	// elapsed is the wall time between the metric scrapes around the measured requests.
	elapsed time.Duration
	// commands are the MongoDB commands counted between those scrapes, background subtracted;
	// nil when not measured.
	commands commandCounts
	// background is what was subtracted from commands for the service's background work.
	background float64
	// notes are checks of what the requests stored, for the report.
	notes []string
}

// newSeries returns an empty series named name.
func newSeries(name string) *series {
	return &series{name: name, statuses: map[int]int{}}
}

// answer records an attempt that got an answer with status after d.
func (s *series) answer(d time.Duration, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies = append(s.latencies, d)
	s.statuses[status]++
}

// noAnswer records an attempt that failed at the transport.
func (s *series) noAnswer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transport++
}

// retry records that an attempt is being repeated.
func (s *series) retry() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries++
}

// giveUp records a request that got no 2xx answer after all its tries.
func (s *series) giveUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed++
}

// requests returns how many attempts were made.
func (s *series) requests() int { return len(s.latencies) + s.transport }

// rate formats the attempts per second over the measured time, or "-".
func (s *series) rate() string {
	if s.elapsed <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(s.requests())/s.elapsed.Seconds())
}

// merge adds o's measurements to s.
func (s *series) merge(o *series) {
	s.latencies = append(s.latencies, o.latencies...)
	for k, v := range o.statuses {
		s.statuses[k] += v
	}
	s.transport += o.transport
	s.retries += o.retries
	s.failed += o.failed
	s.elapsed += o.elapsed
	s.background += o.background
	if o.commands != nil {
		if s.commands == nil {
			s.commands = commandCounts{}
		}
		s.commands.add(o.commands)
	}
	s.notes = append(s.notes, o.notes...)
}

// percentile returns the q-quantile (0 < q <= 1) of the latencies by the nearest-rank method.
func (s *series) percentile(q float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(s.latencies)
	slices.Sort(sorted)
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// maxLatency returns the longest latency.
func (s *series) maxLatency() time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	return slices.Max(s.latencies)
}

// errorsText lists the non-2xx answers and transport failures, such as "409×3, 503×1", or "none".
func (s *series) errorsText() string {
	var codes []int
	for code := range s.statuses {
		if code < 200 || code > 299 {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	var parts []string
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", code, s.statuses[code]))
	}
	if s.transport > 0 {
		parts = append(parts, fmt.Sprintf("no answer×%d", s.transport))
	}
	if s.failed > 0 {
		parts = append(parts, fmt.Sprintf("(%d posts not stored)", s.failed))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// perRequest returns the MongoDB commands per attempt, nil when not measured.
func (s *series) perRequest() commandCounts {
	if s.commands == nil || s.requests() == 0 {
		return nil
	}
	return s.commands.scaled(1 / float64(s.requests()))
}
