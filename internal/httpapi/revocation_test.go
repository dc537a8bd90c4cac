package httpapi_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recheckForTests is how often the streams of these tests verify their token again: short, so
// that a test waits little, while the tests allow streamTimeout for a stream to end.
const recheckForTests = 100 * time.Millisecond

// editTenant replaces from with to in the tenant file of id and reloads the tenants, as the
// file watcher does when an operator changes the file.
func (s *stack) editTenant(tb testing.TB, id, from, to string) {
	tb.Helper()
	path := filepath.Join(s.tenantsDir, id+".yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(string(b), from) {
		tb.Fatalf("tenant file %s does not contain %q", id, from)
	}
	writeFile(tb, path, strings.Replace(string(b), from, to, 1))
	if res := s.reloadTenants(); len(res.Invalid) > 0 || res.Err != nil {
		tb.Fatalf("reload after editing %s: invalid %v, error %v", id, res.Invalid, res.Err)
	}
}

// closing waits until the server ends es and returns the last comment it sent, which says why.
func (es *eventStream) closing() string {
	es.t.Helper()
	es.waitEnd()
	last := ""
	for {
		select {
		case ev := <-es.events:
			if ev.Comment != "" {
				last = ev.Comment
			}
		default:
			return last
		}
	}
}

func TestOpenStreamsEndWhenTheirTokenIsNoLongerAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		admin bool
		// change makes the stream's token unacceptable.
		change func(t *testing.T, s *stack)
		// reconnect is the status of a new stream with the same token.
		reconnect int
	}{
		{"the issuer drops the signing key", false, func(t *testing.T, s *stack) {
			iss := s.issuers[shop]
			leaked := iss.KeyID("RS256")
			if _, err := iss.RotateKey("RS256"); err != nil {
				t.Fatal(err)
			}
			if err := iss.DropKey(leaked); err != nil {
				t.Fatal(err)
			}
			// A token under the new key makes the verifier fetch the key set again, as the
			// set's max age running out would.
			s.customer(shop, "cust-bob").list("")
		}, http.StatusUnauthorized},
		{"required_claims change so the token no longer qualifies", false, func(t *testing.T, s *stack) {
			s.editTenant(t, shop, "  name_claim: name\n", "  name_claim: name\n  required_claims:\n    org: demo-shop\n")
		}, http.StatusUnauthorized},
		{"the admin loses the role (admin_values change)", true, func(t *testing.T, s *stack) {
			s.editTenant(t, shop, "admin_values: [support_admin]", "admin_values: [support_lead]")
		}, http.StatusOK}, // as the customer the token now speaks for
		{"the tenant is removed", false, func(t *testing.T, s *stack) {
			if err := os.Remove(filepath.Join(s.tenantsDir, shop+".yaml")); err != nil {
				t.Fatal(err)
			}
			if res := s.reloadTenants(); len(res.Removed) != 1 {
				t.Fatalf("reload removed %v, want [%s]", res.Removed, shop)
			}
		}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, stackOptions{streamRecheck: recheckForTests})
			u := s.customer(shop, "cust-ada")
			if tc.admin {
				u = s.admin(shop, "grace")
			}
			es := u.events(t, "")
			es.next(true) // the stream is live
			tc.change(t, s)
			if got, want := es.closing(), "closing: the token is no longer accepted"; got != want {
				t.Errorf("last comment = %q, want %q", got, want)
			}
			// Reconnecting with the same token is answered as any new request is.
			if again := u.events(t, ""); again.status != tc.reconnect {
				t.Errorf("reconnecting with the same token = %d, want %d", again.status, tc.reconnect)
			}
		})
	}
}

func TestOpenStreamsOfAcceptedTokensStayOpen(t *testing.T) {
	s := newStack(t, stackOptions{streamRecheck: recheckForTests})
	ada, grace := s.customer(shop, "cust-ada"), s.admin(shop, "grace")
	customer, admin := ada.events(t, ""), grace.events(t, "")
	customer.next(true)
	admin.next(true)

	// Many rechecks later, and after a reload that changes no identity setting, both streams
	// are open and deliver.
	s.editTenant(t, shop, "is away right now", "is out right now")
	customer.stillOpen(20 * recheckForTests)
	admin.stillOpen(0)
	conv := ada.start("still there?")
	if ev := admin.expect("conversation.created"); !strings.Contains(ev.Data, conv.ID) {
		t.Errorf("admin got %s, want conversation %s", ev.Data, conv.ID)
	}
	customer.expect("conversation.created")

	// The admin values change: a customer's token is still a customer's, so its stream goes on.
	s.editTenant(t, shop, "admin_values: [support_admin]", "admin_values: [support_lead]")
	customer.stillOpen(20 * recheckForTests)
	ada.send(conv.ID, "and now?")
	for {
		if m := decode[messageEvent](t, customer.expect("message.created", "conversation.updated").Data); m.Message.Body == "and now?" {
			break
		}
	}
}

// stillOpen fails the test if the server ends es within d.
func (es *eventStream) stillOpen(d time.Duration) {
	es.t.Helper()
	select {
	case <-es.ended:
		es.t.Fatal("the event stream ended")
	case <-time.After(d):
	}
}

func TestStreamsEndAtTheKeySetMaxAge(t *testing.T) {
	s := newStack(t, stackOptions{streamMaxAge: time.Second})
	ada := s.customer(shop, "cust-ada")
	es := ada.events(t, "")
	es.next(true)
	if got, want := es.closing(), "closing: the stream reached its longest lifetime; reconnect"; got != want {
		t.Errorf("last comment = %q, want %q", got, want)
	}
	if again := ada.events(t, ""); again.status != http.StatusOK {
		t.Errorf("reconnecting = %d, want 200", again.status)
	}
}
