package chat

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text limits of PRODUCT.md and of this service.
const (
	MaxBodyChars    = 4000
	MaxSubjectChars = 200
	maxIDBytes      = 255
	maxContextChars = 256
	maxPageURLChars = 2048
)

// checkID validates a user id given as a parameter: 1 to 255 visible ASCII characters (no
// spaces), the form of the OIDC subjects of the identity providers storefronts use.
func checkID(field, s string) error {
	if !ValidID(s) {
		return FieldError(field, "must be a user id: 1 to %d visible ASCII characters", maxIDBytes)
	}
	return nil
}

// ValidID reports whether s has the form of a user id: 1 to 255 visible ASCII characters. A
// token's subject becomes the caller's id, so auth checks it with this too.
func ValidID(s string) bool {
	if s == "" || len(s) > maxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// isObjectID reports whether s has the form of the ids this service makes (24 lowercase hex digits).
func isObjectID(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// cleanText trims s and checks it is valid UTF-8 of 1 to max characters without control
// characters other than newlines and tabs.
func cleanText(field, s string, maxLen int) (string, error) {
	if !utf8.ValidString(s) {
		return "", FieldError(field, "must be valid UTF-8")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", FieldError(field, "must not be empty")
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return "", FieldError(field, "must be at most %d characters, got %d", maxLen, n)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' }) >= 0 {
		return "", FieldError(field, "must not contain control characters")
	}
	if strings.IndexFunc(s, isBidiControl) >= 0 {
		return "", FieldError(field, "must not contain bidirectional override or isolate controls (U+202A to U+202E, U+2066 to U+2069)")
	}
	if strings.IndexFunc(s, isVisible) < 0 {
		return "", FieldError(field, "must contain at least one visible character")
	}
	return s, nil
}

// isBidiControl reports whether r is a bidirectional embedding, override or isolate control,
// which can make text display in another order than it is stored (PRODUCT.md "Writes").
func isBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069
}

// isVisible reports whether r shows as something: not a space, not a control or format
// character (zero-width spaces and joiners, the word joiner, the BOM), not a variation
// selector, and not one of the blank "filler" letters.
func isVisible(r rune) bool {
	switch {
	case unicode.IsSpace(r), unicode.IsControl(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Variation_Selector, r):
		return false
	case r == 0x115F || r == 0x1160 || r == 0x3164 || r == 0xFFA0 || r == 0x2800: // Hangul fillers, braille blank
		return false
	}
	return true
}

// cleanBody validates a message body: cleanText with MaxBodyChars, where a body that is too
// long is TooLarge (HTTP 413, as PRODUCT.md says) rather than Invalid.
func cleanBody(field, s string) (string, error) {
	body, err := cleanText(field, s, MaxBodyChars)
	if err != nil && utf8.ValidString(s) && utf8.RuneCountInString(strings.TrimSpace(s)) > MaxBodyChars {
		return "", &Error{Code: TooLarge, Field: field, Message: fmt.Sprintf("must be at most %d characters", MaxBodyChars)}
	}
	return body, err
}
