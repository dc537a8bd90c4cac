package docs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/webhook"
)

// verifyWebhook returns nil when the delivery with header h and raw body is signed with
// secret ("whsec_...") and was sent within 5 minutes of now.
func verifyWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("bad secret: %w", err)
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad webhook-timestamp")
	}
	if age := now.Sub(time.Unix(sent, 0)); age > 5*time.Minute || age < -5*time.Minute {
		return errors.New("webhook-timestamp too far from now")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// TestWebhookSnippetIsTheTestedOne fails when the receiver's snippet in docs/WEBHOOKS.md
// differs from verifyWebhook above, which TestWebhookSnippetVerifies runs.
func TestWebhookSnippetIsTheTestedOne(t *testing.T) {
	readme, err := os.ReadFile("WEBHOOKS.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(// verifyWebhook .*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("WEBHOOKS.md shows no ```go block starting with // verifyWebhook: has its form changed?")
	}
	src, err := os.ReadFile("webhooks_snippet_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "webhooks_snippet_test.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var here string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "verifyWebhook" {
			here = string(src[fset.Position(fn.Doc.Pos()).Offset:fset.Position(fn.End()).Offset]) + "\n"
		}
	}
	if string(m[1]) != here {
		t.Errorf("WEBHOOKS.md's verifyWebhook differs from the tested one in docs/webhooks_snippet_test.go:\nWEBHOOKS.md:\n%s\ntested:\n%s", m[1], here)
	}
}

// TestWebhookSnippetVerifies checks the documented receiver accepts what webhook.Sign
// signs, with either secret during a rotation, and refuses anything else.
func TestWebhookSnippetVerifies(t *testing.T) {
	current, previous, other := webhook.NewSecret(), webhook.NewSecret(), webhook.NewSecret()
	sent := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"message.created","timestamp":"2026-11-25T11:00:00.000Z","data":{}}`)
	delivery := func(secrets []string, id string, at time.Time, b []byte) http.Header {
		sig, err := webhook.Sign(secrets, id, at, b)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	rotating := delivery([]string{current, previous}, "wd_1", sent, body)
	for _, tc := range []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"signed with the secret", current, delivery([]string{current}, "wd_1", sent, body), body, sent.Add(time.Second), true},
		{"during a rotation, with the new secret", current, rotating, body, sent, true},
		{"during a rotation, with the old secret", previous, rotating, body, sent, true},
		{"another endpoint's secret", other, rotating, body, sent, false},
		{"a changed body", current, rotating, append([]byte(" "), body...), sent, false},
		{"a changed id", current, func() http.Header { h := rotating.Clone(); h.Set("webhook-id", "wd_2"); return h }(), body, sent, false},
		{"sent 6 minutes ago", current, rotating, body, sent.Add(6 * time.Minute), false},
		{"sent 6 minutes ahead", current, rotating, body, sent.Add(-6 * time.Minute), false},
		{"no signature", current, func() http.Header { h := rotating.Clone(); h.Del("webhook-signature"); return h }(), body, sent, false},
		{"another version", current, func() http.Header {
			h := rotating.Clone()
			h.Set("webhook-signature", strings.ReplaceAll(h.Get("webhook-signature"), "v1,", "v1a,"))
			return h
		}(), body, sent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyWebhook(tc.secret, tc.h, tc.body, tc.now)
			if (err == nil) != tc.ok {
				t.Errorf("verifyWebhook = %v, want ok %v", err, tc.ok)
			}
			// The service's own receiver check (webhook.Verify) agrees on the signature.
			if tc.now.Equal(sent) && webhook.Verify(tc.secret, tc.h.Get("webhook-id"), tc.h.Get("webhook-timestamp"), tc.body, tc.h.Get("webhook-signature")) != tc.ok {
				t.Errorf("webhook.Verify disagrees: want ok %v", tc.ok)
			}
		})
	}
}
