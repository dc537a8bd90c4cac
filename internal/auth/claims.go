package auth

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Claim limits. The display name is shown to the other side of a chat; the subject becomes the
// caller's id and must have the form of every user id of the API (chat.ValidID).
const (
	maxNameChars = 200
	// MaxTokenBytes is the largest bearer token accepted; larger ones are refused before any
	// parsing (PRODUCT.md "Limits").
	MaxTokenBytes = 8 << 10
)

// cleanName returns a display name without control and format characters (bidi overrides,
// zero-width characters), with runs of spaces made one, trimmed, and cut to 200 characters.
func cleanName(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "")
	}
	var b strings.Builder
	n, space := 0, false
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if n == maxNameChars {
			break
		}
		if space {
			if n+1 == maxNameChars {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
