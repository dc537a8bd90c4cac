package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/supportchat/supportchat/internal/chat"
)

// fuzzBodyLimit is the body limit of FuzzDecodeBody: small, so the fuzzer reaches it.
const fuzzBodyLimit = 512

// requestBodies make an empty value of each request body the handlers decode.
var requestBodies = map[string]func() any{
	"POST /chat/start":                func() any { return new(startRequest) },
	"POST /chat/{id}/messages":        func() any { return new(sendRequest) },
	"POST /chat/{id}/read":            func() any { return new(readRequest) },
	"PATCH /chat/{id}":                func() any { return new(patchRequest) },
	"PUT /chat/presence":              func() any { return new(presenceRequest) },
	"PUT /admin/settings":             func() any { return new(settingsRequest) },
	"PUT /admin/settings (weekly)":    func() any { return new(businessHoursJSON) },
	"PUT /admin/settings (retention)": func() any { return new(retentionRequest) },
	"PUT /admin/settings (nothing)":   func() any { return new(struct{}) },
	"POST, PATCH /admin/webhooks":     func() any { return new(webhookRequest) },
}

// FuzzDecodeBody checks how request bodies are read and decoded (readBody, decodeStrict) on
// any bytes and Content-Type: never a panic; every refusal is a client error (400 naming the
// field, 413 over the limit, 415 for another media type); what is accepted is the very bytes
// sent, valid JSON holding one object (or null); and a decoded value, encoded again, decodes
// to the same encoding (idempotence).
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"subject":"Order","message":"Where is it?","context":{"order_id":"o-1","page_url":"https://shop.example/o/1"}}`), "application/json", true)
	f.Add([]byte(`{"body":"Thanks"} `), "application/json; charset=utf-8", false)
	f.Add([]byte(`{"status":"resolved","assignee":null}`), "application/merge-patch+json", true)
	f.Add([]byte(`{"away_prompt":"Back at 9.","business_hours":{"timezone":"Europe/Berlin","weekly":{"mon":["09:00-18:00"]}},"unassign_on_away":true}`), "", true)
	f.Add([]byte(`{"retention":{"resolved_after_days":null}}`), "application/json", true)
	f.Add([]byte(`{"resolved_after_days":3650}`), "", true)
	f.Add([]byte(`{"message_id":"6745c2aa0123456789abcdef"}{}`), "application/json", true)
	f.Add([]byte(`{"body":"x"}]`), "application/json", true)
	f.Add([]byte("{\"body\":\"\xff\"}"), "application/json", true)
	f.Add([]byte(`message=hi`), "text/plain", true)
	f.Add([]byte(`{"assignee":7,"extra":[1,{"a":null}]}`), "Application/JSON", true)
	f.Add([]byte(`{"url":"https://hooks.example/x","events":["message.created"],"description":"CRM","enabled":false}`), "application/json", true)
	f.Add([]byte(`null`), "", false)
	f.Add(bytes.Repeat([]byte(" "), fuzzBodyLimit+1), "application/json", true)
	f.Fuzz(func(t *testing.T, body []byte, contentType string, knownLength bool) {
		r, err := http.NewRequest("POST", "http://example.test/api/v1/chat/start", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			r.Header["Content-Type"] = []string{contentType}
		}
		if !knownLength {
			r.ContentLength = -1 // chunked: the limit is found while reading
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		read, err := readBody(r, fuzzBodyLimit)
		if err != nil {
			status := statusOf(t, err)
			switch {
			case contentType != "" && !isJSON(contentType):
				if status != http.StatusUnsupportedMediaType {
					t.Fatalf("a body of type %q: %d, want 415", contentType, status)
				}
			case len(body) > fuzzBodyLimit:
				if status != http.StatusRequestEntityTooLarge {
					t.Fatalf("a body of %d bytes over a limit of %d: %d, want 413", len(body), fuzzBodyLimit, status)
				}
			case !utf8.Valid(body):
				if status != http.StatusBadRequest {
					t.Fatalf("a body that is not UTF-8: %d, want 400", status)
				}
			default:
				t.Fatalf("readBody refused %q (type %q): %v", body, contentType, err)
			}
			return
		}
		if !bytes.Equal(read, body) || len(read) > fuzzBodyLimit || !utf8.Valid(read) {
			t.Fatalf("readBody(%q) = %q", body, read)
		}

		for name, newValue := range requestBodies {
			v := newValue()
			if err := decodeStrict(read, v); err != nil {
				if status := statusOf(t, err); status != http.StatusBadRequest {
					t.Fatalf("%s: decoding %q: %d, want 400", name, read, status)
				}
				var ce *chat.Error
				if !errors.As(err, &ce) || ce.Field == "" {
					t.Fatalf("%s: decoding %q: %v names no field", name, read, err)
				}
				continue
			}
			if !json.Valid(read) {
				t.Fatalf("%s: decodeStrict accepts %q, which is not JSON", name, read)
			}
			if first := strings.TrimLeft(string(read), " \t\r\n"); !strings.HasPrefix(first, "{") && !strings.HasPrefix(first, "null") {
				t.Fatalf("%s: decodeStrict accepts %q, which is not one object", name, read)
			}
			once, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: encoding %+v: %v", name, v, err)
			}
			again := newValue()
			if err := decodeStrict(once, again); err != nil {
				t.Fatalf("%s: %q decodes, but its encoding %q does not: %v", name, read, once, err)
			}
			twice, err := json.Marshal(again)
			if err != nil {
				t.Fatalf("%s: encoding %+v: %v", name, again, err)
			}
			if !bytes.Equal(once, twice) {
				t.Fatalf("%s: %q decodes and encodes to %q, then to %q", name, read, once, twice)
			}
		}
	})
}

// statusOf returns the status of the problem the handlers answer err with, failing unless it
// is a client error with a detail.
func statusOf(t *testing.T, err error) int {
	t.Helper()
	kind, detail, _ := problemFor(err)
	if kind.status < 400 || kind.status >= 500 || detail == "" {
		t.Fatalf("error %v answers %d with detail %q, want a client error with a detail", err, kind.status, detail)
	}
	return kind.status
}
