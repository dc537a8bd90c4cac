package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/server/servertest"
)

// TestErasureReachesTheWebhookQueue erases a customer whose webhook deliveries wait for a
// receiver that fails: the service's own workers made them, the erasure removes them, and
// the receiver never hears of the customer again. The loops run as in production (Run), with
// a short settling between the erasure's passes.
func TestErasureReachesTheWebhookQueue(t *testing.T) {
	s := newHookStack(t, nil, faultTenant)
	addrs := servertest.Start(t, s.env, server.Options{Stdout: io.Discard,
		// One quick retry, then an hour: the deliveries stay queued.
		Webhooks: server.WebhookTuning{Schedule: []time.Duration{50 * time.Millisecond, time.Hour}, Poll: 50 * time.Millisecond},
		Tuning:   server.Tuning{ErasureSettle: 300 * time.Millisecond, DataRightsInterval: 100 * time.Millisecond},
	}, 30*time.Second)
	iss := s.issuers[faultTenant]
	f := &faultService{base: "http://" + addrs.API.String(), iss: iss, client: &http.Client{Timeout: 2 * faultWaitTimeout},
		customerToken: iss.Token(t, "cust-gone", false), adminToken: iss.Token(t, "admin-1", true)}
	rc := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int { return http.StatusInternalServerError })
	epID, _ := f.endpoint(t, rc.srv.URL, "message.created")
	conv := f.mustStart(t, "secret-first")
	f.mustSend(t, conv, "secret-second")
	waitUntil(t, "the first delivery tried twice", func() bool { return len(rc.requests()) >= 2 }) // in order: the second waits
	if n := len(f.deliveries(t, epID)); n < 2 {                                                    // the away notice too, as nobody is online
		t.Fatalf("%d deliveries before the erasure, want at least 2", n)
	}

	a := f.mustCall(t, "DELETE", "/api/v1/admin/customers/cust-gone", f.adminToken, nil)
	var e struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if a.status != http.StatusAccepted || json.Unmarshal(a.body, &e) != nil {
		t.Fatalf("DELETE customer = %d %s", a.status, a.body)
	}
	waitUntil(t, "the erasure", func() bool {
		a := f.mustCall(t, "GET", "/api/v1/admin/erasures/"+e.ID, f.adminToken, nil)
		return a.status == http.StatusOK && json.Unmarshal(a.body, &e) == nil && e.Status == "done"
	})
	heard := len(rc.requests())
	if left := f.deliveries(t, epID); len(left) != 0 {
		t.Errorf("deliveries left after the erasure: %+v", left)
	}
	time.Sleep(time.Second) // the workers poll every 50 ms
	for _, r := range rc.requests()[heard:] {
		if strings.Contains(string(r.body), "secret-") {
			t.Errorf("the receiver heard of the erased customer after the erasure: %s", r.body)
		}
	}
}
