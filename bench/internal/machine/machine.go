// Package machine describes the machine a benchmark runs on, for its report: the CPU and the
// load average, which says how much else was running.
package machine

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// LoadAverage returns the 1, 5 and 15 minute load averages of the machine, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// CPUModel returns the CPU's model name, or "unknown CPU".
func CPUModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Describe returns a line about the Go runtime, the CPUs and the load average now.
func Describe() string {
	return fmt.Sprintf("%s %s/%s, %d CPUs (%s), GOMAXPROCS %d, load average %s",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), CPUModel(), runtime.GOMAXPROCS(0), LoadAverage())
}
