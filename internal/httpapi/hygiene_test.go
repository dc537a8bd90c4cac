package httpapi_test

import (
	"net/http"
	"strings"
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

func TestOversizedTokensAndBadSubjectsAreRefused(t *testing.T) {
	s := newStack(t)
	iss := s.issuers[shop]
	padded := iss.TokenWith(t, "RS256", func(c map[string]any) { c["pad"] = strings.Repeat("x", 9<<10) })
	r := (user{s: s, tenant: shop, token: padded}).do("GET", "/api/v1/chat/list", nil)
	if p := r.Problem(t, http.StatusUnauthorized); p.Slug() != "invalid-token" || !strings.Contains(p.Detail, "larger than 8192 bytes") {
		t.Errorf("a 9 KiB token: %s %q", p.Slug(), p.Detail)
	}
	if got := iss.JWKSFetches(); got != 0 {
		t.Errorf("an oversized token caused %d key fetches", got)
	}
	for _, sub := range []string{"ada lovelace", "ädä", strings.Repeat("a", 256)} {
		tok := iss.TokenWith(t, "RS256", func(c map[string]any) { c["sub"] = sub })
		if r := (user{s: s, tenant: shop, token: tok}).do("GET", "/api/v1/chat/list", nil); r.Status != http.StatusUnauthorized {
			t.Errorf("sub %q: %d", sub, r.Status)
		}
	}
	// A display name is cleaned before anyone sees it.
	tok := iss.TokenWith(t, "RS256", func(c map[string]any) { c["sub"] = "eve"; c["name"] = "Eve\u202e nimdA" + strings.Repeat("!", 300) })
	eve := user{s: s, tenant: shop, id: "eve", token: tok}
	r = eve.do("POST", "/api/v1/chat/start", map[string]any{"message": "hi"})
	if r.Status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	var c struct {
		Participants []struct {
			Name string `json:"name"`
		} `json:"participants"`
	}
	r.JSON(t, &c)
	if len(c.Participants) == 0 || strings.ContainsRune(c.Participants[0].Name, '\u202e') || len([]rune(c.Participants[0].Name)) > 200 {
		t.Errorf("participant name %q", c.Participants)
	}
}
