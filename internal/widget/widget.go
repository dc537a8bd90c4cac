// Package widget serves the <support-chat> customer widget, the ES module support-chat.js that
// storefronts embed (PRODUCT.md "Support screen"), compiled into the binary.
package widget

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// Path is where chatd serves the module. The major version is in the path: a change that
// breaks embedding storefronts gets a new path, and the old one keeps working.
const Path = "/widget/v1/support-chat.js"

// CacheControl lets browsers and CDNs keep the module for a day and then keep using it for a
// week while they revalidate it with its ETag in the background, so a fix reaches every
// storefront within about a day without any page waiting for it.
const CacheControl = "public, max-age=86400, stale-while-revalidate=604800"

//go:embed support-chat.js
var source []byte

// Module is the widget's script with what it is served with.
type Module struct {
	body    []byte
	gzipped []byte
	etag    string
}

// New returns the embedded module, compressed and tagged once.
func New() *Module {
	return newModule(source)
}

func newModule(body []byte) *Module {
	sum := sha256.Sum256(body)
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // only fails for a bad level
	_, _ = w.Write(body)                                   // writes to memory do not fail
	_ = w.Close()
	return &Module{body: body, gzipped: gz.Bytes(), etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
}

// Size returns the module's size in bytes, plain and gzipped.
func (m *Module) Size() (plain, gzipped int) {
	return len(m.body), len(m.gzipped)
}

// ETag returns the module's entity tag, a hash of its bytes.
func (m *Module) ETag() string {
	return m.etag
}

// ServeHTTP answers GET and HEAD with the module: text/javascript, its ETag (304 to a matching
// If-None-Match), long-lived caching, gzip when the client accepts it, and CORS open to every
// origin, because a storefront loads the module from its own domain and browsers fetch module
// scripts in CORS mode. The file is public and the request carries no credentials.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", CacheControl)
	h.Set("ETag", m.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if etagMatches(r.Header.Get("If-None-Match"), m.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := m.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = m.gzipped
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// etagMatches reports whether an If-None-Match header names etag (weakly, as RFC 9110 asks
// for If-None-Match) or is "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip (not with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
