package auth

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Claim limits. The subject becomes the caller's id, stored and compared everywhere, so it has
// the form of every user id of the API; the display name is shown to the other side of a chat.
const (
	maxSubjectBytes = 255
	maxNameChars    = 200
	// MaxTokenBytes is the largest bearer token accepted; larger ones are refused before any
	// parsing (PRODUCT.md "Limits").
	MaxTokenBytes = 8 << 10
)

// validSubject reports whether sub is 1 to 255 visible ASCII characters.
func validSubject(sub string) bool {
	if sub == "" || len(sub) > maxSubjectBytes {
		return false
	}
	for i := 0; i < len(sub); i++ {
		if sub[i] < 0x21 || sub[i] > 0x7e {
			return false
		}
	}
	return true
}

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
