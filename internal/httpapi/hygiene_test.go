package httpapi_test

import (
	"net/http"
	"testing"
)

func TestInvisibleAndBidiTextIsRefused(t *testing.T) {
	s := newStack(t)
	ada := s.customer(shop, "ada")
	conv := ada.start("Hello")
	for _, tc := range []struct {
		name, path, field string
		body              map[string]any
	}{
		{"zero-width message", "/api/v1/chat/start", "message", map[string]any{"message": "\u200b\u200d"}},
		{"bidi override in a subject", "/api/v1/chat/start", "subject", map[string]any{"subject": "Refund \u202eyaP", "message": "hi"}},
		{"isolates in a body", "/api/v1/chat/" + conv.ID + "/messages", "body", map[string]any{"body": "\u2066x\u2069"}},
		{"blank filler body", "/api/v1/chat/" + conv.ID + "/messages", "body", map[string]any{"body": "\u3164"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ada.do("POST", tc.path, tc.body).Problem(t, http.StatusBadRequest)
			if p.Field() != tc.field {
				t.Errorf("field %q, want %q", p.Field(), tc.field)
			}
		})
	}
	if n := len(ada.history(conv.ID)); n != 2 { // the message and the away notice
		t.Errorf("history holds %d messages; refused ones must store nothing", n)
	}
}
