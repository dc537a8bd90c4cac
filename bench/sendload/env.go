package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/supportchat/supportchat/internal/localdeps"
)

// presenceRenewal is how often the online admin renews its presence (the service's TTL is 60s).
const presenceRenewal = 20 * time.Second

// presenceAdmin is the admin whose presence keeps support online; no writer uses it.
const presenceAdmin = 99

// env is one run of one scenario for one build on one backend: its own MongoDB database on the
// backend's FerretDB, its own redis-server, and its chatd replicas.
type env struct {
	stderr   io.Writer
	build    *build
	backend  *backend
	tenant   *tenant
	p        params
	database string
	replicas []*replica
}

// run starts what the scenario needs, runs it, measures the background MongoDB commands over
// an idle interval and subtracts them, and stops everything.
func (e *env) run(ctx context.Context, sc scenario) ([]*series, error) {
	redis, err := localdeps.StartRedis()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	defer redis.Stop()
	redisURL := redis.URL()
	defer func() {
		if err := e.backend.dropDatabase(ctx, e.database); err != nil && ctx.Err() == nil {
			fmt.Fprintln(e.stderr, err)
		}
	}()
	if err := e.startReplicas(ctx, sc.replicas, redisURL); err != nil {
		return nil, err
	}
	defer e.stopReplicas()

	token, err := e.tenant.admin(presenceAdmin)
	if err != nil {
		return nil, err
	}
	presence := newClient(e.replicas[0].url, token)
	defer presence.close()
	stopPresence, err := presence.keepOnline(ctx, presenceRenewal, e.stderr)
	if err != nil {
		return nil, err
	}
	defer stopPresence()

	measured, err := sc.run(ctx, e)
	if err != nil {
		return nil, err
	}
	if err := e.subtractBackground(ctx, measured); err != nil {
		return nil, err
	}
	for _, s := range measured {
		fmt.Fprintf(e.stderr, "   %s: %d requests, p50 %s, p99 %s, errors %s, %s MongoDB commands per request\n",
			s.name, s.requests(), ms(s.percentile(0.5)), ms(s.percentile(0.99)), s.errorsText(), perRequestText(s))
	}
	return measured, nil
}

// startReplicas starts n chatd replicas of the build on the run's database and Redis.
func (e *env) startReplicas(ctx context.Context, n int, redisURL string) error {
	vars := map[string]string{
		"CHAT_MONGODB_URI":                       e.backend.uri,
		"CHAT_MONGODB_DATABASE":                  e.database,
		"CHAT_REDIS_URL":                         redisURL,
		"CHAT_TENANTS_DIR":                       e.tenant.dir,
		"OTEL_SDK_DISABLED":                      "true",
		"CHAT_LOG_LEVEL":                         "warn",
		"CHAT_LIMITS_REQUESTS_PER_MINUTE":        "0",
		"CHAT_LIMITS_WRITES_PER_MINUTE":          "0",
		"CHAT_LIMITS_EVENT_STREAMS":              "0",
		"CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND": "0",
	}
	for i := range n {
		r, err := startReplica(ctx, e.stderr, e.build.bin, fmt.Sprintf("chatd-%s#%d", e.build.name, i), vars)
		if err != nil {
			return err
		}
		e.replicas = append(e.replicas, r)
	}
	return nil
}

// stopReplicas stops the replicas, all at once.
func (e *env) stopReplicas() {
	done := make(chan struct{})
	for _, r := range e.replicas {
		go func() {
			r.stop()
			done <- struct{}{}
		}()
	}
	for range e.replicas {
		<-done
	}
	e.replicas = nil
}

// subtractBackground counts the MongoDB commands the replicas make while idle, for as long as
// the measured series took together (at most -idle-max, then scaled up), and subtracts from
// each series' commands that rate times its own duration. Background loops (presence and
// idempotency sweeps, index checks) and the presence renewals run in both intervals.
func (e *env) subtractBackground(ctx context.Context, measured []*series) error {
	var busy time.Duration
	for _, s := range measured {
		if s.commands != nil {
			busy += s.elapsed
		}
	}
	idle := min(busy, e.p.idleMax)
	if idle <= 0 {
		return nil
	}
	fmt.Fprintf(e.stderr, "   idle for %s to count the background MongoDB commands\n", idle.Round(time.Millisecond))
	rate, err := e.commandRate(ctx, idle)
	if err != nil {
		return err
	}
	for _, s := range measured {
		if s.commands == nil {
			continue
		}
		bg := rate.scaled(s.elapsed.Seconds())
		s.background = bg.total()
		s.commands = s.commands.sub(bg)
	}
	return nil
}

// commandRate returns the MongoDB commands per second the replicas make over an interval of
// length d without requests.
func (e *env) commandRate(ctx context.Context, d time.Duration) (commandCounts, error) {
	before, err := scrapeCommands(ctx, e.replicas)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(d):
	}
	elapsed := time.Since(t0)
	after, err := scrapeCommands(ctx, e.replicas)
	if err != nil {
		return nil, err
	}
	return after.sub(before).scaled(1 / elapsed.Seconds()), nil
}

// measure scrapes the replicas' MongoDB command counts, runs f, scrapes them again, and sets
// s's elapsed time and commands from the difference.
func (e *env) measure(ctx context.Context, s *series, f func() error) error {
	before, err := scrapeCommands(ctx, e.replicas)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := f(); err != nil {
		return err
	}
	s.elapsed = time.Since(t0)
	after, err := scrapeCommands(ctx, e.replicas)
	if err != nil {
		return err
	}
	s.commands = after.sub(before)
	return nil
}

// client returns a client of replica i (modulo their number) with token.
func (e *env) client(i int, token string) *client {
	return newClient(e.replicas[i%len(e.replicas)].url, token)
}
