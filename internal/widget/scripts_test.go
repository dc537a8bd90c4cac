package widget

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// servedScripts returns every script chatd and chatd-dev serve to browsers: the widget's modules
// and the development pages' scripts (cmd/chatd-dev/web), by path from this folder.
func servedScripts(t *testing.T) []string {
	t.Helper()
	paths := New().Names()
	pages := filepath.Join("..", "..", "cmd", "chatd-dev", "web")
	err := filepath.WalkDir(pages, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".js") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"inbox.js", "shop.js"} {
		if !slices.ContainsFunc(paths, func(p string) bool { return filepath.Base(p) == want }) {
			t.Fatalf("no %s below %s (found %v): has the page moved?", want, pages, paths)
		}
	}
	return paths
}

var (
	// jsdocPattern finds JSDoc comments.
	jsdocPattern = regexp.MustCompile(`(?s)/\*\*.*?\*/`)
	// typeImportPattern finds a JSDoc type taken from a module, {import('./api.js').Message},
	// which loads nothing.
	typeImportPattern = regexp.MustCompile(`\{import\('[^'\n]*'\)\.[A-Za-z_$][\w$]*\}`)
)

// TestScriptsNeverParseHTML backs the widget's safety promise with a look at the source of every
// script served to browsers: no API that parses a string as HTML or as code, so message text can
// only ever be text, and nothing a strict Content Security Policy or Trusted Types would block.
func TestScriptsNeverParseHTML(t *testing.T) {
	var widget strings.Builder
	for _, p := range servedScripts(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// JSDoc types may name a module's types: import('...').Name inside a /** */ comment.
		src := jsdocPattern.ReplaceAllStringFunc(string(b), func(c string) string {
			return typeImportPattern.ReplaceAllString(c, "{type}")
		})
		for _, banned := range []string{
			"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment",
			"DOMParser", "srcdoc", "eval(", "new Function", "setAttribute('on", `setAttribute("on`,
			"setAttribute('style", "javascript:", "import(",
		} {
			if strings.Contains(src, banned) {
				t.Errorf("%s uses %q", p, banned)
			}
		}
		// setTimeout and setInterval take functions, never strings of code.
		if m := regexp.MustCompile(`set(Timeout|Interval)\(\s*['"` + "`" + `]`).FindString(src); m != "" {
			t.Errorf("%s passes a string to %s", p, m)
		}
		if filepath.Dir(p) == "." {
			widget.WriteString(src)
		}
	}
	// Styles come from a constructed stylesheet, which style-src does not govern.
	if !strings.Contains(widget.String(), "adoptedStyleSheets") {
		t.Error("the widget no longer adopts a constructed stylesheet")
	}
}

// TestTheScanSeesThroughJSDocOnly: a dynamic import outside a JSDoc type is still found.
func TestTheScanSeesThroughJSDocOnly(t *testing.T) {
	for src, found := range map[string]bool{
		"/** @type {import('./api.js').Message} */ let m;":   false,
		"{import('./evil.js').x}":                            true,
		"/** x */ import('./evil.js');":                      true,
		"/** @typedef {import('./a.js').A} A */ import('b')": true,
	} {
		got := strings.Contains(jsdocPattern.ReplaceAllStringFunc(src, func(c string) string {
			return typeImportPattern.ReplaceAllString(c, "{type}")
		}), "import(")
		if got != found {
			t.Errorf("%s: import( found %v, want %v", src, got, found)
		}
	}
}
