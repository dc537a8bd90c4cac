package chat

import (
	"errors"
	"strings"
	"testing"
)

func TestTextNeedsAVisibleCharacterAndNoBidiControls(t *testing.T) {
	for _, bad := range []string{
		"\u200b\u200b",         // zero-width spaces only
		"\u200d\u2060\ufeff",   // joiner, word joiner, BOM
		"\u3164",               // Hangul filler
		"\u2800 \u2800",        // braille blanks
		"\ufe0f",               // a variation selector alone
		"pay to \u202eredro",   // right-to-left override
		"\u2067isolated\u2069", // isolate controls
		"a\u202ab",             // left-to-right embedding
	} {
		_, err := cleanText("body", bad, MaxBodyChars)
		var ce *Error
		if !errors.As(err, &ce) || ce.Code != Invalid || ce.Field != "body" {
			t.Errorf("cleanText(%q) = %v, want Invalid on body", bad, err)
		}
	}
	for _, good := range []string{"ok", "👍", "مرحبا", "שלום עולם", "a\u200bb", "家族👨\u200d👩\u200d👧", "x\ufe0f"} {
		if _, err := cleanText("body", good, MaxBodyChars); err != nil {
			t.Errorf("cleanText(%q) = %v, want it accepted", good, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, bad := range []string{"", "a b", "ü", "a\x00", strings.Repeat("a", 256)} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
	for _, good := range []string{"cust-42", "auth0|5f7c8ec7", strings.Repeat("a", 255)} {
		if !ValidID(good) {
			t.Errorf("ValidID(%q) = false", good)
		}
	}
}
