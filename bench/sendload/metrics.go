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

// The other series scraped with commandMetric's counts: the time the service spent, to see
// where a request's time goes.
const (
	redisMetric = "chat_redis_command_duration_seconds"
	httpMetric  = "chat_http_request_duration_seconds"
)

// commandKey is an (operation, collection) label pair of commandMetric when metric is "": a
// count of MongoDB commands. Otherwise it is a series of seconds spent (see timeMetrics).
type commandKey struct{ metric, operation, collection string }

func (k commandKey) String() string { return k.operation + " " + k.collection }

// The metric field of commandKeys that hold seconds, not MongoDB command counts.
const (
	mongoSeconds = "MongoDB"
	redisSeconds = "Redis"
	httpSeconds  = "HTTP"
)

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

// total returns the sum of c's MongoDB command counts.
func (c commandCounts) total() float64 {
	var n float64
	for k, v := range c {
		if k.metric == "" {
			n += v
		}
	}
	return n
}

// seconds returns the sum of c's series of seconds of metric.
func (c commandCounts) seconds(metric string) float64 {
	var n float64
	for k, v := range c {
		if k.metric == metric {
			n += v
		}
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
// of commandMetric by their operation and collection labels; and the _sum samples of it, of
// redisMetric by command and of httpMetric by method and route, as seconds spent.
func parseCommandCounts(r io.Reader) (commandCounts, error) {
	out := commandCounts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var key func(map[string]string) commandKey
		var rest string
		for _, m := range []struct {
			prefix string
			key    func(map[string]string) commandKey
		}{
			{commandMetric + "_count{", func(l map[string]string) commandKey { return commandKey{"", l["operation"], l["collection"]} }},
			{commandMetric + "_sum{", func(l map[string]string) commandKey { return commandKey{mongoSeconds, l["operation"], l["collection"]} }},
			{redisMetric + "_sum{", func(l map[string]string) commandKey { return commandKey{redisSeconds, l["command"], ""} }},
			{httpMetric + "_sum{", func(l map[string]string) commandKey { return commandKey{httpSeconds, l["method"], l["route"]} }},
		} {
			if r, ok := strings.CutPrefix(line, m.prefix); ok {
				key, rest = m.key, r
				break
			}
		}
		if key == nil {
			continue
		}
		labels, value, err := parseSample(rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", line, err)
		}
		out[key(labels)] += value
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
