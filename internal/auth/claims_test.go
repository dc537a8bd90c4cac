package auth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"Ada Lovelace":                "Ada Lovelace",
		"  Ada \t\n  Lovelace  ":      "Ada Lovelace",
		"Ada\u202e ecalevoL":          "Ada ecalevoL",
		"\u200bGrace\u200d\u0007":     "Grace",
		"\u2066Admin\u2069 (support)": "Admin (support)",
		"\xffAda":                     "Ada",
		"":                            "",
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
	long := cleanName(strings.Repeat("é", 500))
	if n := utf8.RuneCountInString(long); n != maxNameChars {
		t.Errorf("a 500-character name keeps %d characters, want %d", n, maxNameChars)
	}
}
