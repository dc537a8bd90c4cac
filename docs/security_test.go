// Package docs holds the project's design documents; its tests keep docs/SECURITY.md naming
// tests that exist and docs/IDENTITY.md showing tenant files chatd accepts.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testName finds the test, fuzz and benchmark functions a document names in backticks.
var testName = regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`")

// TestSecurityDocNamesRealTests fails when docs/SECURITY.md cites a test that no _test.go file
// of the repository defines, so the threat model cannot claim proof that is gone.
func TestSecurityDocNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile("SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	funcDecl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcDecl.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := testName.FindAllSubmatch(doc, -1)
	if len(cited) < 30 {
		t.Fatalf("SECURITY.md cites only %d tests: has its form changed?", len(cited))
	}
	for _, m := range cited {
		if name := string(m[1]); !defined[name] {
			t.Errorf("SECURITY.md cites %s, which no _test.go file defines", name)
		}
	}
}
