package mongodb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The audit trail pages newest first within its tenant, and sweeping deletes exactly the
// expired entries, on FerretDB with SQLite and with PostgreSQL.
func TestAuditStore(t *testing.T) {
	for _, server := range testenv.MongoServers() {
		t.Run(server.Name, func(t *testing.T) { testAuditStore(t, server) })
	}
}

func testAuditStore(t *testing.T, server testenv.MongoServer) {
	ctx := context.Background()
	db, _, _ := mustOpenOn(t, server, 10*time.Second)
	s := db.Store()
	clock := testenv.NewClock(t0)
	trail := audit.New(s, time.Hour, clock.Now)
	for i := range 4 {
		clock.Set(t0.Add(time.Duration(i) * 20 * time.Minute))
		for _, tn := range []string{shop, "other-shop"} {
			e := audit.Entry{TenantID: tn, Actor: audit.Actor{ID: "admin-1", Role: "admin"}, Action: audit.CustomerExported,
				Subject: audit.Subject(tn, "cust-1"), Target: fmt.Sprint(i), Counts: map[string]int64{"messages": int64(i)}}
			if err := trail.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	es, next, err := trail.List(ctx, shop, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || next == "" || es[0].Target != "3" || es[2].Target != "1" {
		t.Fatalf("first page = %+v, next %q; want entries 3, 2, 1 and a cursor", es, next)
	}
	got := es[0]
	if got.TenantID != shop || got.Actor != (audit.Actor{ID: "admin-1", Role: "admin"}) || got.Action != audit.CustomerExported ||
		got.Subject != audit.Subject(shop, "cust-1") || got.Counts["messages"] != 3 || !got.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("entry read back = %+v", got)
	}
	es, next, err = trail.List(ctx, shop, next, 3)
	if err != nil || len(es) != 1 || es[0].Target != "0" || next != "" {
		t.Fatalf("second page = %+v, next %q, %v; want entry 0 and the end", es, next, err)
	}

	// At t0+1h30m the entries of t0 and t0+20m (kept an hour) have expired, in both tenants.
	n, err := s.SweepAudit(ctx, t0.Add(90*time.Minute))
	if err != nil || n != 4 {
		t.Fatalf("SweepAudit = %d, %v; want 4", n, err)
	}
	for _, tn := range []string{shop, "other-shop"} {
		es, _, err := trail.List(ctx, tn, "", 10)
		if err != nil || len(es) != 2 || es[0].Target != "3" || es[1].Target != "2" {
			t.Errorf("%s after the sweep: %+v, %v; want entries 3 and 2", tn, es, err)
		}
	}
	if n, err := s.SweepAudit(ctx, t0.Add(90*time.Minute)); err != nil || n != 0 {
		t.Errorf("a second sweep = %d, %v; want 0", n, err)
	}
}
