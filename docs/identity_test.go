package docs

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/supportchat/supportchat/internal/tenant"
)

// TestIdentityDocTenantSnippetsParse fails when a tenant file or oidc section shown in
// docs/IDENTITY.md is one chatd would refuse, so the provider examples stay copyable.
func TestIdentityDocTenantSnippetsParse(t *testing.T) {
	doc, err := os.ReadFile("IDENTITY.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	checked := 0
	for _, b := range blocks {
		src := string(b[1])
		switch {
		case strings.HasPrefix(src, "id: demo-shop\n"):
		case strings.HasPrefix(src, "oidc:\n"):
			src = "id: demo-shop\nname: Demo Shop\n" + src
		default:
			continue // not a tenant file (Dex's configuration)
		}
		checked++
		if _, err := tenant.Parse("demo-shop.yaml", []byte(src)); err != nil {
			t.Errorf("IDENTITY.md tenant snippet %d is refused: %v\n%s", checked, err, src)
		}
	}
	if checked < 4 {
		t.Fatalf("IDENTITY.md shows %d tenant snippets, want at least 4: has its form changed?", checked)
	}
}
