package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/tenant"
)

// tenantYAML is a tenant file; hosts are on line 3.
const tenantYAML = `id: %s
name: %s
hosts: [%s]
oidc:
  issuer: https://login.%[1]s.example
  audience: support-chat
  admin_claim: roles
  admin_values: [admin]
`

// writeTenant writes dir/<id>.yaml with a name and hosts.
func writeTenant(tb testing.TB, dir, id, name string, hosts ...string) {
	tb.Helper()
	writeFile(tb, filepath.Join(dir, id+".yaml"), fmt.Sprintf(tenantYAML, id, name, strings.Join(hosts, ", ")))
}

// writeFile writes a file.
func writeFile(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// ids returns the ids of tenants.
func ids(tenants []*tenant.Tenant) []string {
	var out []string
	for _, t := range tenants {
		out = append(out, t.ID)
	}
	return out
}

// nameOf returns the name of the tenant with id in r, or the error.
func nameOf(r *tenant.Registry, id string) string {
	t, err := r.Get(id)
	if err != nil {
		return err.Error()
	}
	return t.Name
}

// changes is the part of a ReloadResult the tests compare.
type changes struct {
	Loaded                  int
	Invalid                 int
	Added, Changed, Removed []string
}

// changesOf returns the changes of res, failing on a directory error.
func changesOf(tb testing.TB, res tenant.ReloadResult) changes {
	tb.Helper()
	if res.Err != nil {
		tb.Fatalf("Reload() error = %v", res.Err)
	}
	return changes{res.Loaded, len(res.Invalid), res.Added, res.Changed, res.Removed}
}

func TestRegistryLifecycle(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "demo-shop", "Demo Shop", "support.demo-shop.example")
	writeTenant(t, dir, "acme-outdoor", "Acme Outdoor")
	writeFile(t, filepath.Join(dir, "nordic-books.yml"), fmt.Sprintf(tenantYAML, "nordic-books", "Nordic Books", ""))
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "not: a tenant")
	writeFile(t, filepath.Join(dir, "README.md"), "# tenants")
	var hooked []tenant.ReloadResult
	r := tenant.NewRegistry(dir, tenant.Options{OnReload: func(res tenant.ReloadResult) { hooked = append(hooked, res) }})

	if st := r.Status(); st.Ready || st.Loaded != 0 {
		t.Errorf("Status() before loading = %+v, want not ready", st)
	}

	t.Run("the first reload loads every tenant file", func(t *testing.T) {
		got := changesOf(t, r.Reload())
		want := changes{Loaded: 3, Added: []string{"acme-outdoor", "demo-shop", "nordic-books"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if got := ids(r.All()); !cmp.Equal(got, []string{"acme-outdoor", "demo-shop", "nordic-books"}) {
			t.Errorf("All() = %v, want sorted by id", got)
		}
		if st := r.Status(); !st.Ready || st.Loaded != 3 || st.Invalid != 0 || st.LastReload.IsZero() {
			t.Errorf("Status() = %+v, want 3 loaded, ready, reloaded", st)
		}
	})

	t.Run("an unchanged directory changes nothing", func(t *testing.T) {
		before, _ := r.Get("demo-shop")
		got := changesOf(t, r.Reload())
		if diff := cmp.Diff(changes{Loaded: 3}, got); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if after, _ := r.Get("demo-shop"); after != before {
			t.Errorf("Get(demo-shop) after an idle reload is a new value; want the same *Tenant")
		}
	})

	t.Run("a broken edit keeps the last good version", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "demo-shop.yaml"), "id: demo-shop\nname: Broken Shop\noidc:\n  issuer: http://login.demo-shop.example\n")
		res := r.Reload()
		if diff := cmp.Diff(changes{Loaded: 3, Invalid: 1}, changesOf(t, res)); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if got := nameOf(r, "demo-shop"); got != "Demo Shop" {
			t.Errorf("Get(demo-shop).Name = %q, want the last good %q", got, "Demo Shop")
		}
		if len(res.Invalid) == 1 && !strings.Contains(res.Invalid[0].Error(), "demo-shop.yaml:4: oidc.issuer") {
			t.Errorf("Invalid = %q, want the file:line of the bad issuer", res.Invalid[0])
		}
		if st := r.Status(); st.Invalid != 1 || st.Loaded != 3 {
			t.Errorf("Status() = %+v, want 3 loaded, 1 invalid", st)
		}
	})

	t.Run("a fixed edit replaces the tenant", func(t *testing.T) {
		writeTenant(t, dir, "demo-shop", "Demo Shop Reloaded", "support.demo-shop.example")
		if diff := cmp.Diff(changes{Loaded: 3, Changed: []string{"demo-shop"}}, changesOf(t, r.Reload())); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if got := nameOf(r, "demo-shop"); got != "Demo Shop Reloaded" {
			t.Errorf("Get(demo-shop).Name = %q, want the new name", got)
		}
	})

	t.Run("a deleted file removes its tenant", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "acme-outdoor.yaml")); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(changes{Loaded: 2, Removed: []string{"acme-outdoor"}}, changesOf(t, r.Reload())); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if _, err := r.Get("acme-outdoor"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Get(acme-outdoor) = %v, want ErrNotFound", err)
		}
	})

	t.Run("a new invalid file is not loaded", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "new-shop.yaml"), "id: new-shop\n")
		if diff := cmp.Diff(changes{Loaded: 2, Invalid: 1}, changesOf(t, r.Reload())); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if _, err := r.Get("new-shop"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Get(new-shop) = %v, want ErrNotFound", err)
		}
	})

	t.Run("an unreadable directory keeps every tenant", func(t *testing.T) {
		moved := dir + "-moved"
		if err := os.Rename(dir, moved); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Rename(moved, dir) }()
		res := r.Reload()
		if res.Err == nil || res.Loaded != 2 {
			t.Errorf("Reload() of a missing dir = %+v, want an error and 2 loaded", res)
		}
		if got := ids(r.All()); !cmp.Equal(got, []string{"demo-shop", "nordic-books"}) {
			t.Errorf("All() = %v, want both tenants kept", got)
		}
	})

	if len(hooked) != 7 {
		t.Errorf("OnReload called %d times, want once per reload (7)", len(hooked))
	}
}

func TestRegistryDuplicateHost(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "alpha", "Alpha", "shop.example")
	writeTenant(t, dir, "beta", "Beta", "beta.example")
	r := tenant.NewRegistry(dir, tenant.Options{})
	changesOf(t, r.Reload())

	t.Run("a later file claiming a taken host keeps its previous version", func(t *testing.T) {
		writeTenant(t, dir, "beta", "Beta Takes Over", "Shop.example")
		res := r.Reload()
		if diff := cmp.Diff(changes{Loaded: 2, Invalid: 1}, changesOf(t, res)); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if len(res.Invalid) == 1 && !strings.HasPrefix(res.Invalid[0].Error(), filepath.Join(dir, "beta.yaml")+`:3: hosts: "shop.example" is already claimed by tenant "alpha"`) {
			t.Errorf("Invalid = %q, want beta.yaml:3 naming alpha", res.Invalid[0])
		}
		if got := nameOf(r, "beta"); got != "Beta" {
			t.Errorf("Get(beta).Name = %q, want the previous %q", got, "Beta")
		}
		if got, err := r.ByHost("shop.example"); err != nil || got.ID != "alpha" {
			t.Errorf("ByHost(shop.example) = %v, %v; want alpha", got, err)
		}
	})

	t.Run("a new file claiming a taken host is not loaded", func(t *testing.T) {
		writeTenant(t, dir, "gamma", "Gamma", "shop.example")
		if diff := cmp.Diff(changes{Loaded: 2, Invalid: 2}, changesOf(t, r.Reload())); diff != "" {
			t.Errorf("Reload() mismatch (-want +got):\n%s", diff)
		}
		if _, err := r.Get("gamma"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Get(gamma) = %v, want ErrNotFound", err)
		}
	})
}

func TestRegistryByHost(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "demo-shop", "Demo Shop", "support.demo-shop.example", "chat.demo-shop.example")
	r := tenant.NewRegistry(dir, tenant.Options{})
	changesOf(t, r.Reload())
	tests := []struct {
		host string
		want string // tenant id, or "" for ErrNotFound
	}{
		{"support.demo-shop.example", "demo-shop"},
		{"chat.demo-shop.example", "demo-shop"},
		{"Support.Demo-Shop.EXAMPLE", "demo-shop"},
		{"support.demo-shop.example:8443", "demo-shop"},
		{"SUPPORT.demo-shop.example:443", "demo-shop"},
		{"demo-shop.example", ""},
		{"", ""},
		{"[::1]:8080", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("host %q", tt.host), func(t *testing.T) {
			got, err := r.ByHost(tt.host)
			switch {
			case tt.want == "" && !errors.Is(err, tenant.ErrNotFound):
				t.Errorf("ByHost(%q) = %v, %v; want ErrNotFound", tt.host, got, err)
			case tt.want != "" && (err != nil || got.ID != tt.want):
				t.Errorf("ByHost(%q) = %v, %v; want %s", tt.host, got, err, tt.want)
			}
		})
	}
}

func TestRegistryRewrite(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "demo-shop", "Demo Shop")
	calls := 0
	r := tenant.NewRegistry(dir, tenant.Options{Rewrite: func(t *tenant.Tenant) {
		calls++
		t.OIDC.Issuer = "http://127.0.0.1:9999/" + t.ID
	}})
	changesOf(t, r.Reload())
	changesOf(t, r.Reload())
	got, err := r.Get("demo-shop")
	if err != nil || got.OIDC.Issuer != "http://127.0.0.1:9999/demo-shop" {
		t.Errorf("Get(demo-shop) = %+v, %v; want the rewritten issuer", got, err)
	}
	if calls != 1 {
		t.Errorf("Rewrite called %d times, want once: the file did not change", calls)
	}
}

// eventually polls cond every 20ms for up to 5s.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watch starts r.Watch and stops it at the end of the test, checking it returns nil.
func watch(t *testing.T, r *tenant.Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch() = %v, want nil after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Watch() did not return after cancel")
		}
	})
}

func TestWatchConfigMapSwap(t *testing.T) {
	// A Kubernetes ConfigMap volume: the visible demo-shop.yaml links to ..data/demo-shop.yaml,
	// ..data links to a timestamped dir, and an update renames a new ..data link over the old.
	dir := t.TempDir()
	version := func(name, shopName string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeTenant(t, filepath.Join(dir, name), "demo-shop", shopName)
	}
	version("..2026_1", "Demo Shop")
	if err := os.Symlink("..2026_1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/demo-shop.yaml", filepath.Join(dir, "demo-shop.yaml")); err != nil {
		t.Fatal(err)
	}
	r := tenant.NewRegistry(dir, tenant.Options{Debounce: 20 * time.Millisecond})
	if diff := cmp.Diff(changes{Loaded: 1, Added: []string{"demo-shop"}}, changesOf(t, r.Reload())); diff != "" {
		t.Fatalf("Reload() mismatch (-want +got):\n%s", diff)
	}
	watch(t, r)

	version("..2026_2", "Demo Shop Updated")
	if err := os.Symlink("..2026_2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the swapped ConfigMap version is served", func() bool { return nameOf(r, "demo-shop") == "Demo Shop Updated" })
}

func TestWatchFileEdits(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "demo-shop", "Demo Shop")
	r := tenant.NewRegistry(dir, tenant.Options{Debounce: 20 * time.Millisecond})
	changesOf(t, r.Reload())
	watch(t, r)

	writeTenant(t, dir, "acme-outdoor", "Acme Outdoor")
	eventually(t, "a new file is loaded", func() bool { return nameOf(r, "acme-outdoor") == "Acme Outdoor" })
	if err := os.Remove(filepath.Join(dir, "demo-shop.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a removed file is unloaded", func() bool { _, err := r.Get("demo-shop"); return errors.Is(err, tenant.ErrNotFound) })
}

func TestWatchResyncs(t *testing.T) {
	// The periodic re-read catches changes even when events are missed (here: debounced for an hour).
	dir := t.TempDir()
	r := tenant.NewRegistry(dir, tenant.Options{Resync: 50 * time.Millisecond, Debounce: time.Hour})
	watch(t, r)
	writeTenant(t, dir, "demo-shop", "Demo Shop")
	eventually(t, "the periodic re-read loads the file", func() bool { return r.Status().Ready })
}

func TestWatchMissingDir(t *testing.T) {
	r := tenant.NewRegistry(filepath.Join(t.TempDir(), "missing"), tenant.Options{})
	if err := r.Watch(context.Background()); err == nil {
		t.Errorf("Watch(missing dir) = nil, want an error")
	}
}
