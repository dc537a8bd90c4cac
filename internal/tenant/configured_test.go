package tenant_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/supportchat/supportchat/internal/tenant"
)

func TestConfiguredFindsAnyFileOfTheTenant(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"valid.yaml", "broken.yml", ".hidden.yaml", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("id: [broken\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{
		"valid": true, "broken": true, "dangling": true, // valid or not, even not a file yet
		"hidden": false, "notes": false, "valid-2": false, "vali": false,
	} {
		if got, err := tenant.Configured(dir, id); err != nil || got != want {
			t.Errorf("Configured(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
	if _, err := tenant.Configured(filepath.Join(dir, "missing"), "valid"); err == nil {
		t.Error("Configured in a missing folder answered")
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"demo-shop": true, "a1": true, "a": false, "Demo": false, "a_b": false, "a*": false, "": false} {
		if got := tenant.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
