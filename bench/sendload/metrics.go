package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// commandMetric is the histogram of the service's MongoDB commands; its _count series count
// the commands by operation and collection (and outcome).
const commandMetric = "chat_mongodb_command_duration_seconds"

// commandKey is an (operation, collection) label pair of commandMetric.
type commandKey struct{ operation, collection string }

func (k commandKey) String() string { return k.operation + " " + k.collection }

// commandCounts are MongoDB commands by operation and collection.
type commandCounts map[commandKey]float64

// sub returns c minus d.
func (c commandCounts) sub(d commandCounts) commandCounts {
	out := commandCounts{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range d {
		out[k] -= v
	}
	return out
}

// add adds d to c.
func (c commandCounts) add(d commandCounts) {
	for k, v := range d {
		c[k] += v
	}
}

// scaled returns c multiplied by f.
func (c commandCounts) scaled(f float64) commandCounts {
	out := commandCounts{}
	for k, v := range c {
		out[k] = v * f
	}
	return out
}

// total returns the sum of c.
func (c commandCounts) total() float64 {
	var n float64
	for _, v := range c {
		n += v
	}
	return n
}

// keys returns c's keys in order.
func (c commandCounts) keys() []commandKey {
	keys := make([]commandKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}

// scrapeCommands returns the MongoDB commands the replicas have counted so far, summed.
func scrapeCommands(ctx context.Context, replicas []*replica) (commandCounts, error) {
	sum := commandCounts{}
	for _, r := range replicas {
		c, err := r.commands(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s /metrics: %w", r.name, err)
		}
		sum.add(c)
	}
	return sum, nil
}

// commands scrapes the replica's /metrics (served on CHAT_METRICS_ADDR) and returns its
// MongoDB command counts.
func (r *replica) commands(ctx context.Context) (commandCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metricsURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return parseCommandCounts(resp.Body)
}

// parseCommandCounts reads the Prometheus text exposition format and sums the _count samples
// of commandMetric by their operation and collection labels.
func parseCommandCounts(r io.Reader) (commandCounts, error) {
	out := commandCounts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), commandMetric+"_count{")
		if !ok {
			continue
		}
		labels, value, err := parseSample(rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.Text(), err)
		}
		out[commandKey{labels["operation"], labels["collection"]}] += value
	}
	return out, sc.Err()
}

// parseSample parses what follows the '{' of a sample line: `a="x",b="y"} 12`.
func parseSample(s string) (map[string]string, float64, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if rest, ok := strings.CutPrefix(s, "}"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				return nil, 0, errors.New("no value")
			}
			v, err := strconv.ParseFloat(fields[0], 64)
			return labels, v, err
		}
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, 0, errors.New("bad labels")
		}
		quoted, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return nil, 0, fmt.Errorf("label %s: %w", name, err)
		}
		if labels[name], err = strconv.Unquote(quoted); err != nil {
			return nil, 0, fmt.Errorf("label %s: %w", name, err)
		}
		s = rest[len(quoted):]
	}
}
