package widget

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// entry is the name of the module storefronts load.
var entry = path.Base(Path)

// versionPattern finds the versions the modules import each other with.
var versionPattern = regexp.MustCompile(`\?v=[A-Za-z0-9_-]+`)

func serve(t *testing.T, m *Module, method, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	return rec.Result()
}

// mustModule returns the module of a name.
func mustModule(tb testing.TB, mods *Modules, name string) *Module {
	tb.Helper()
	m := mods.Module(name)
	if m == nil {
		tb.Fatalf("Module(%q) = nil, want the module; the modules are %v", name, mods.Names())
	}
	return m
}

func TestEveryModuleIsServedAsCacheableJavaScript(t *testing.T) {
	mods := New()
	if names := mods.Names(); len(names) < 2 || !slices.Contains(names, entry) {
		t.Fatalf("Names() = %v, want %s and the modules it imports", names, entry)
	}
	for _, name := range mods.Names() {
		t.Run(name, func(t *testing.T) {
			m := mustModule(t, mods, name)
			res := serve(t, m, http.MethodGet, "/widget/v1/"+name, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET = %d, want 200", res.StatusCode)
			}
			want := map[string]string{
				"Content-Type":                 "text/javascript; charset=utf-8",
				"Cache-Control":                CacheControl,
				"ETag":                         m.ETag(),
				"Access-Control-Allow-Origin":  "*",
				"Cross-Origin-Resource-Policy": "cross-origin",
				"X-Content-Type-Options":       "nosniff",
				"Vary":                         "Accept-Encoding",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			source, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, m.body) || !bytes.Equal(versionPattern.ReplaceAll(body, nil), source) {
				t.Errorf("body is %d bytes, want the %d bytes of %s with versioned imports", len(body), len(source), name)
			}
			if !regexp.MustCompile(`^"[A-Za-z0-9_-]{24}"$`).MatchString(m.ETag()) {
				t.Errorf("ETag %s is not a strong tag of a hash", m.ETag())
			}
			if mustModule(t, New(), name).ETag() != m.ETag() || newModule(name, append([]byte("//\n"), m.body...)).ETag() == m.ETag() {
				t.Error("the ETag must follow the bytes: equal for the same module, different for another")
			}
		})
	}
}

// TestModulesImportEachOtherByVersion: each module imports the others at URLs with their
// versions, and the entry imports every module itself, so browsers fetch them all at once.
func TestModulesImportEachOtherByVersion(t *testing.T) {
	mods := New()
	imports := regexp.MustCompile(`(?:from|import)\s*'\./([a-z][a-z0-9-]*\.js)(\?v=[^']*)?'`)
	for _, name := range mods.Names() {
		m := mustModule(t, mods, name)
		var named []string
		for _, sub := range imports.FindAllStringSubmatch(string(m.body), -1) {
			dep := mustModule(t, mods, sub[1])
			if want := "?v=" + dep.Version(); sub[2] != want {
				t.Errorf("%s imports %s%s, want %s%s", name, sub[1], sub[2], sub[1], want)
			}
			named = append(named, sub[1])
		}
		if name != entry {
			continue
		}
		for _, other := range mods.Names() {
			if other != entry && !slices.Contains(named, other) {
				t.Errorf("%s does not import %s: browsers would find it only a level of imports later", entry, other)
			}
		}
	}
}

// TestAModuleOfAnotherVersionIsNotCached: a module asked for with another version than its own
// (a module of an older or newer release asks, as during a rolling update) is served, but no
// cache keeps it under that URL.
func TestAModuleOfAnotherVersionIsNotCached(t *testing.T) {
	m := mustModule(t, New(), "api.js")
	for _, tc := range []struct{ name, target, want string }{
		{"no version", "/widget/v1/api.js", CacheControl},
		{"its version", "/widget/v1/api.js?v=" + m.Version(), CacheControl},
		{"another version", "/widget/v1/api.js?v=older", "no-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, m, http.MethodGet, tc.target, nil)
			if got := res.Header.Get("Cache-Control"); res.StatusCode != http.StatusOK || got != tc.want {
				t.Errorf("GET %s = %d with Cache-Control %q, want 200 with %q", tc.target, res.StatusCode, got, tc.want)
			}
		})
	}
}

func TestModulesRefuseBrokenImports(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"a module that is not there", fstest.MapFS{"a.js": {Data: []byte("import { x } from './b.js';\n")}}, "no module b.js"},
		{"a cycle", fstest.MapFS{
			"a.js": {Data: []byte("import './b.js';\n")},
			"b.js": {Data: []byte("export { a } from './a.js';\n")},
		}, "imports itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newModules(tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newModules = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestModuleRevalidatesWithItsETag(t *testing.T) {
	m := mustModule(t, New(), entry)
	for _, tc := range []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"the same tag", m.ETag(), http.StatusNotModified},
		{"the same tag, weak", "W/" + m.ETag(), http.StatusNotModified},
		{"one of several tags", `"old", ` + m.ETag(), http.StatusNotModified},
		{"any tag", "*", http.StatusNotModified},
		{"an old tag", `"old"`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, m, http.MethodGet, Path, map[string]string{"If-None-Match": tc.ifNoneMatch})
			if res.StatusCode != tc.want {
				t.Errorf("If-None-Match %s: %d, want %d", tc.ifNoneMatch, res.StatusCode, tc.want)
			}
			if res.Header.Get("ETag") != m.ETag() || res.Header.Get("Cache-Control") != CacheControl {
				t.Errorf("a %d lacks the ETag or Cache-Control: %v", res.StatusCode, res.Header)
			}
		})
	}
}

func TestModuleIsGzippedForClientsThatAcceptIt(t *testing.T) {
	mods := New()
	m := mustModule(t, mods, entry)
	res := serve(t, m, http.MethodGet, Path, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, m.body) {
		t.Errorf("gunzipped body differs from %s (err %v)", entry, err)
	}
	_, gz := m.Size()
	for _, name := range mods.Names() {
		p, z := mustModule(t, mods, name).Size()
		t.Logf("%s: %d bytes, %d gzipped", name, p, z)
	}
	total, totalGz := mods.Size()
	t.Logf("the widget: %d bytes, %d gzipped", total, totalGz)
	// The README states the size; keep the widget small.
	if totalGz > 24<<10 {
		t.Errorf("the widget is %d bytes gzipped; keep it under 24 KiB", totalGz)
	}

	res = serve(t, m, http.MethodGet, Path, map[string]string{"Accept-Encoding": "gzip;q=0, identity"})
	if res.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	res = serve(t, m, http.MethodHead, Path, map[string]string{"Accept-Encoding": "gzip"})
	if body, _ := io.ReadAll(res.Body); res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Length") != strconv.Itoa(gz) {
		t.Errorf("HEAD = %d with %d bytes and Content-Length %q, want 200, none and %d", res.StatusCode, len(body), res.Header.Get("Content-Length"), gz)
	}
	if res := serve(t, m, http.MethodPost, Path, nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", res.StatusCode)
	}
}
