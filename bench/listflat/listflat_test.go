// Package listflat benchmarks GET /api/v1/chat/list against the size of the tenant: one
// customer's first page and an admin's first page, in tenants of 1 000 and of 10 000 (or
// 100 000) conversations. A list whose cost is flat does not care. See bench/RESULTS.md and
// docs/SCALE.md.
package listflat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/internal/localdeps"
	"github.com/supportchat/supportchat/internal/server"
)

// ConversationsEnv names the variable listing the tenant sizes to measure, comma-separated.
const ConversationsEnv = "BENCH_CONVERSATIONS"

// BackendEnv names the variable choosing the FerretDB backend when BENCH_MONGODB_URI is unset:
// "sqlite" (the default) or "postgresql", on a database created on the PostgreSQL server of
// PostgreSQLURLEnv (default localdeps.DefaultPostgreSQLURL) and dropped after.
const (
	BackendEnv       = "BENCH_BACKEND"
	PostgreSQLURLEnv = "BENCH_POSTGRESQL_URL"
)

// PostgreSQLIndexesEnv names the variable that, set to 1 with the postgresql backend, runs
// deploy/ferretdb/postgresql-indexes.sql on FerretDB's database after seeding.
const PostgreSQLIndexesEnv = "BENCH_POSTGRESQL_INDEXES"

// UncachedEnv names the variable that, set to 1, measures the uncached list: every request
// asks with its own updated_since (a millisecond apart, all long before the oldest
// conversation, so the page is the same), which the list cache never keeps (listCacheKey in
// internal/httpapi), so each reaches MongoDB. The tenant is then seeded as a desk that answers
// (one conversation in 10 open, each assigned to the admin who answered it), and admins also
// list with the filters status=open, assignee=me and unread=true.
const UncachedEnv = "BENCH_UNCACHED"

// openEvery is how many conversations there are per open one in the uncached mode's tenant.
const openEvery = 10

// defaultSizes are the tenant sizes measured without BENCH_CONVERSATIONS. 100000 is opt-in:
// seeding it into FerretDB with SQLite takes some 4 minutes, and before the Redis list cache its
// lists answer 503 at the request bound of 15s (bench/RESULTS.md).
const defaultSizes = "1000,10000"

// conversationsPerCustomer is how many conversations each customer of the tenant has.
const conversationsPerCustomer = 5

func TestMain(m *testing.M) {
	localdeps.ServeFerretDBChildIfAsked()
	// As chatd's main: the service runs in this process (server.Run).
	server.SetProcessGlobals(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

// BenchmarkListFlat measures one list request over real HTTP to the real service (server.Run
// on FerretDB with SQLite or PostgreSQL (BENCH_BACKEND) in a child process, or the MongoDB of
// BENCH_MONGODB_URI; a private
// redis-server; RS256 tokens), one request at a time, for a customer with 5 conversations and
// for an admin, in a tenant of each size of BENCH_CONVERSATIONS (default 1000,10000), seeded in
// bulk. allocs/op counts the allocations of the service and of the benchmark's Go HTTP client;
// the bare-gin sub-benchmark is that floor: a Gin handler without middleware answering the
// customer's list bytes over the same client.
func BenchmarkListFlat(b *testing.B) {
	sizes, err := parseSizes(os.Getenv(ConversationsEnv))
	if err != nil {
		b.Fatalf("%s: %v", ConversationsEnv, err)
	}
	backend := os.Getenv(BackendEnv)
	pgURL := ""
	switch backend {
	case "", "sqlite":
	case "postgresql":
		if pgURL = os.Getenv(PostgreSQLURLEnv); pgURL == "" {
			pgURL = localdeps.DefaultPostgreSQLURL
		}
	default:
		b.Fatalf("%s: want sqlite or postgresql, got %q", BackendEnv, backend)
	}
	uncached := os.Getenv(UncachedEnv) == "1"
	var floor []byte
	for _, n := range sizes {
		b.Run(fmt.Sprintf("conversations=%d", n), func(b *testing.B) {
			ctx := context.Background()
			// On FerretDB with SQLite a list reads the whole collection, which takes longer than
			// the default bound of one MongoDB operation (5s) from some ten thousand
			// conversations: let the bound of the request (15s) decide instead.
			s, err := stack.Start(ctx, stack.Options{MongoURI: os.Getenv("BENCH_MONGODB_URI"), PostgreSQLURL: pgURL, MongoTimeout: 15 * time.Second})
			if errors.Is(err, localdeps.ErrNoPostgreSQL) {
				b.Skip(err)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			t0 := time.Now()
			customers := max(1, n/conversationsPerCustomer)
			plan := stack.Plan{Conversations: n, Customers: customers}
			if uncached {
				plan.OpenEvery, plan.Assign = openEvery, true
			}
			if err := stack.Seed(ctx, s.MongoURI, s.Database, stack.TenantID, plan); err != nil {
				b.Fatal(err)
			}
			// On stderr: b.Logf of a benchmark that runs sub-benchmarks shows only with -v.
			fmt.Fprintf(os.Stderr, "listflat: seeded %d conversations of %d customers in %s\n", n, customers, time.Since(t0).Round(time.Second))
			if pgURL != "" && os.Getenv(PostgreSQLIndexesEnv) == "1" {
				t0 = time.Now()
				if err := s.RunPostgreSQL(ctx, "../../deploy/ferretdb/postgresql-indexes.sql"); err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(os.Stderr, "listflat: deploy/ferretdb/postgresql-indexes.sql ran in %s\n", time.Since(t0).Round(time.Millisecond))
			}

			custID, custName := stack.Customer(0)
			adminID, adminName := stack.Admin(0)
			type listCase struct {
				name        string
				id, display string
				admin       bool
				query       string
				want        int
			}
			cases := []listCase{
				{"customer", custID, custName, false, "", min(conversationsPerCustomer, n)},
				{"admin", adminID, adminName, true, "", min(20, n)},
			}
			if uncached {
				// Admin 0 answered conversations 0, 4, 8, ...; conversations 0, 10, 20, ... are open.
				cases = append(cases,
					listCase{"admin-open", adminID, adminName, true, "status=open", min(20, (n+openEvery-1)/openEvery)},
					listCase{"admin-assigned", adminID, adminName, true, "assignee=me", min(20, (n+3)/4)},
					listCase{"admin-unread", adminID, adminName, true, "unread=true", min(20, n)},
				)
			}
			for _, who := range cases {
				token, err := s.Issuer.Mint(who.id, who.display, who.admin, 24*time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				b.Run(who.name, func(b *testing.B) {
					url := s.URL + "/api/v1/chat/list"
					if who.query != "" {
						url += "?" + who.query
					}
					body := benchGET(b, url, token, uncached, func(body []byte) error {
						if got := strings.Count(string(body), `"subject"`); got != who.want {
							return fmt.Errorf("%d conversations listed, want %d: %.300s", got, who.want, body)
						}
						return nil
					})
					if !who.admin && floor == nil {
						floor = body
					}
				})
			}
		})
	}
	b.Run("bare-gin", func(b *testing.B) {
		if floor == nil {
			b.Skip("no list measured")
		}
		url, stop := serveBytes(b, floor)
		defer stop()
		benchGET(b, url, "", false, nil)
	})
}

// benchGET measures GET url with the tenant header and token, one request at a time on one
// kept-alive connection, and returns the last body. check, when set, vets the first body. With
// uncached, each request adds its own updated_since (see UncachedEnv).
func benchGET(b *testing.B, url, token string, uncached bool, check func([]byte) error) []byte {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("X-Tenant-ID", stack.TenantID)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	since := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	get := func() []byte {
		if uncached {
			since = since.Add(time.Millisecond)
			u, err := neturl.Parse(url + sep + "updated_since=" + since.Format(time.RFC3339Nano))
			if err != nil {
				b.Fatal(err)
			}
			req.URL = u
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatalf("GET %s: %v after %s", url, err, time.Since(t0).Round(time.Millisecond))
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d after %s: %.300s", url, resp.StatusCode, time.Since(t0).Round(time.Millisecond), body)
		}
		return body
	}
	// Warm up: the first request fetches the issuer's keys, fills caches and opens the connection.
	body := get()
	if check != nil {
		if err := check(body); err != nil {
			b.Fatal(err)
		}
	}
	var latencies []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		body = get()
		latencies = append(latencies, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(percentile(latencies, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(latencies, 99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(body)), "resp-bytes")
	return body
}

// serveBytes serves body as JSON on every GET of /api/v1/chat/list from a bare Gin engine
// (gin.New, no middleware) on 127.0.0.1, and returns its URL.
func serveBytes(b *testing.B, body []byte) (url string, stop func()) {
	r := gin.New()
	r.GET("/api/v1/chat/list", func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", body) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/api/v1/chat/list", func() { _ = srv.Close() }
}

// parseSizes reads a comma-separated list of tenant sizes; "" is defaultSizes.
func parseSizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		s = defaultSizes
	}
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("want tenant sizes such as 1000,100000, got %q", s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}
