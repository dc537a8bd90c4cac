package webhook

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
)

// TestSignMatchesTheStandardWebhooksVector signs the example of the Standard Webhooks
// specification's reference libraries, and checks that Verify takes it and nothing altered.
func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	got, err := Sign([]string{secret}, id, time.Unix(1614265330, 0), []byte(body))
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	if !Verify(secret, id, "1614265330", []byte(body), "v1,bm90IGl0 "+want) {
		t.Error("Verify refuses the vector among other signatures")
	}
	for name, v := range map[string][4]string{
		"body":      {secret, id, "1614265330", body + " "},
		"id":        {secret, id + "x", "1614265330", body},
		"timestamp": {secret, id, "1614265331", body},
		"secret":    {NewSecret(), id, "1614265330", body},
	} {
		if Verify(v[0], v[1], v[2], []byte(v[3]), want) {
			t.Errorf("Verify takes the vector with another %s", name)
		}
	}
}

func TestNewSecretsAreLongAndDistinct(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	ka, err := secretKey(a)
	if err != nil || len(ka) < 24 || a == b || !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("NewSecret = %q, %q (key %d bytes, %v)", a, b, len(ka), err)
	}
}

// TestTargetsRefuseInternalAddresses checks URLs only: no connection is made.
func TestTargetsRefuseInternalAddresses(t *testing.T) {
	closed := Targets{}
	lab := Targets{Allowed: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	for _, c := range []struct {
		t   Targets
		url string
		ok  bool
	}{
		{closed, "https://hooks.example.com/in", true},
		{closed, "https://93.184.216.34/in", true},
		{closed, "https://[2606:4700:4700::1111]/in", true},
		{closed, "http://hooks.example.com/in", false},
		{closed, "ftp://hooks.example.com/in", false},
		{closed, "https://user:pw@hooks.example.com/in", false},
		{closed, "https:///in", false},
		{closed, "/relative", false},
		{closed, "https://hooks.example.com/in#frag", false},
		{closed, "https://" + strings.Repeat("a", MaxURL) + ".example.com/", false},
		{closed, "https://127.0.0.1/", false},
		{closed, "https://127.1.2.3/", false},
		{closed, "https://0.0.0.0/", false},
		{closed, "https://10.0.0.1/", false},
		{closed, "https://172.16.5.4/", false},
		{closed, "https://192.168.1.1/", false},
		{closed, "https://100.64.0.1/", false},            // CGNAT
		{closed, "https://169.254.169.254/latest", false}, // metadata
		{closed, "https://224.0.0.1/", false},             // multicast
		{closed, "https://[::1]/", false},
		{closed, "https://[::]/", false},
		{closed, "https://[fe80::1]/", false},
		{closed, "https://[fd00:ec2::254]/", false},
		{closed, "https://[::ffff:127.0.0.1]/", false},
		{closed, "https://[::ffff:169.254.169.254]/", false},
		{closed, "https://[::ffff:10.0.0.1]/", false},
		{lab, "https://10.20.3.4/in", true},
		{lab, "http://10.20.3.4/in", true},
		{lab, "http://hooks.lab.internal/in", true}, // checked when connecting: only 10.20/16
		{lab, "http://93.184.216.34/in", false},
		{lab, "https://10.21.0.1/in", false},
	} {
		err := c.t.Check(c.url)
		if (err == nil) != c.ok {
			t.Errorf("Check(%.60q) with %v = %v, want ok %v", c.url, c.t.Allowed, err, c.ok)
		}
		if ce, isChat := errors.AsType[*chat.Error](err); err != nil && (!isChat || ce.Field != "url") {
			t.Errorf("Check(%.60q) = %v, want an error naming url", c.url, err)
		}
	}
}

func TestRetryWaitFollowsTheScheduleWithJitter(t *testing.T) {
	for tries := 1; tries <= len(DefaultSchedule); tries++ {
		w, ok := retryWait(DefaultSchedule, tries, 0)
		base := DefaultSchedule[tries-1]
		if !ok || w < base*8/10 || w > base*12/10 {
			t.Errorf("retryWait(%d) = %s, %v; want within 20%% of %s", tries, w, ok, base)
		}
	}
	if _, ok := retryWait(DefaultSchedule, len(DefaultSchedule)+1, 0); ok {
		t.Error("a delivery is retried after the schedule's last wait")
	}
	if w, _ := retryWait(DefaultSchedule, 1, 90*time.Second); w != 90*time.Second {
		t.Errorf("Retry-After 90s gives %s", w)
	}
	if w, _ := retryWait(DefaultSchedule, 1, 30*24*time.Hour); w != maxRetryAfter {
		t.Errorf("Retry-After of 30 days gives %s", w)
	}
	if s := span(DefaultSchedule); s < 75*time.Hour || s > 76*time.Hour {
		t.Errorf("the schedule spans %s, want about 3 days", s)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-5": 0, "junk": 0, "120": 2 * time.Minute,
		now.Add(time.Hour).Format(http.TimeFormat): time.Hour, now.Add(-time.Hour).Format(http.TimeFormat): 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
	for status, want := range map[int]bool{429: true, 500: true, 503: true, 400: false, 404: false, 301: false, 410: false} {
		if retryable(status) != want {
			t.Errorf("retryable(%d) = %v", status, !want)
		}
	}
}

func TestRotatedSecretsSignUntilTheyExpire(t *testing.T) {
	now := time.Now()
	e := Endpoint{Secrets: []Secret{{Value: "new"}, {Value: "old", Expires: now.Add(time.Hour)}, {Value: "gone", Expires: now.Add(-time.Second)}}}
	var got []string
	for _, s := range e.signing(now) {
		got = append(got, s.Value)
	}
	if strings.Join(got, ",") != "new,old" {
		t.Errorf("signing secrets %q, want new,old", got)
	}
}
