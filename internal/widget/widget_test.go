package widget

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func serve(t *testing.T, m *Module, method string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, Path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	return rec.Result()
}

func TestModuleIsServedAsCacheableJavaScript(t *testing.T) {
	m := New()
	res := serve(t, m, http.MethodGet, nil)
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
	if !bytes.Equal(body, source) {
		t.Errorf("body is %d bytes, want the %d bytes of support-chat.js", len(body), len(source))
	}
	if !regexp.MustCompile(`^"[A-Za-z0-9_-]{24}"$`).MatchString(m.ETag()) {
		t.Errorf("ETag %s is not a strong tag of a hash", m.ETag())
	}
	if New().ETag() != m.ETag() || newModule(append([]byte("//\n"), source...)).ETag() == m.ETag() {
		t.Error("the ETag must follow the bytes: equal for the same module, different for another")
	}
}

func TestModuleRevalidatesWithItsETag(t *testing.T) {
	m := New()
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
			res := serve(t, m, http.MethodGet, map[string]string{"If-None-Match": tc.ifNoneMatch})
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
	m := New()
	res := serve(t, m, http.MethodGet, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, source) {
		t.Errorf("gunzipped body differs from support-chat.js (err %v)", err)
	}
	_, gz := m.Size()
	t.Logf("support-chat.js: %d bytes, %d gzipped", len(source), gz)
	// The README states the size; keep the widget small.
	if gz > 24<<10 {
		t.Errorf("the widget is %d bytes gzipped; keep it under 24 KiB", gz)
	}

	res = serve(t, m, http.MethodGet, map[string]string{"Accept-Encoding": "gzip;q=0, identity"})
	if res.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	res = serve(t, m, http.MethodHead, map[string]string{"Accept-Encoding": "gzip"})
	if body, _ := io.ReadAll(res.Body); res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Length") != strconv.Itoa(gz) {
		t.Errorf("HEAD = %d with %d bytes and Content-Length %q, want 200, none and %d", res.StatusCode, len(body), res.Header.Get("Content-Length"), gz)
	}
	if res := serve(t, m, http.MethodPost, nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", res.StatusCode)
	}
}

// TestSourceNeverParsesHTML backs the widget's safety promise with a look at its source: no API
// that parses a string as HTML or as code, so message text can only ever be text, and nothing
// a strict Content Security Policy or Trusted Types would block.
func TestSourceNeverParsesHTML(t *testing.T) {
	src := string(source)
	for _, banned := range []string{
		"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment",
		"DOMParser", "srcdoc", "eval(", "new Function", "setAttribute('on", `setAttribute("on`,
		"setAttribute('style", "javascript:", "import(",
	} {
		if strings.Contains(src, banned) {
			t.Errorf("support-chat.js uses %q", banned)
		}
	}
	// setTimeout and setInterval take functions, never strings of code.
	if m := regexp.MustCompile(`set(Timeout|Interval)\(\s*['"` + "`" + `]`).FindString(src); m != "" {
		t.Errorf("support-chat.js passes a string to %s", m)
	}
	// Styles come from a constructed stylesheet, which style-src does not govern.
	if !strings.Contains(src, "adoptedStyleSheets") {
		t.Error("support-chat.js no longer adopts a constructed stylesheet")
	}
}
