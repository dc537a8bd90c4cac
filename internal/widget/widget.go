// Package widget serves the <support-chat> customer widget, the ES modules that storefronts embed
// (PRODUCT.md "Support screen"), compiled into the binary: support-chat.js, the entry a page
// loads, and the modules it imports by relative URL, served beside it.
package widget

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Path is where chatd serves the entry module, the one storefronts load; the others are beside
// it. The major version is in the path: a change that breaks embedding storefronts gets a new
// path, and the old one keeps working.
const Path = "/widget/v1/support-chat.js"

// CacheControl lets browsers and CDNs keep a module for a day and then keep using it for a
// week while they revalidate it with its ETag in the background, so a fix reaches every
// storefront within about a day without any page waiting for it.
const CacheControl = "public, max-age=86400, stale-while-revalidate=604800"

// mismatchCacheControl is the caching of a module asked for with another version than the one
// served (an entry of an older or newer release, as during a rolling update): the bytes may not
// be the ones the asking module was written against, so no cache keeps them under that URL.
const mismatchCacheControl = "no-store"

//go:embed *.js
var files embed.FS

// importPattern finds the static imports of a module by relative URL: `from './api.js'` and
// `import './dom.js'` (never the `import('./api.js')` of a JSDoc type, which loads nothing).
var importPattern = regexp.MustCompile(`((?:^|\s)(?:from|import)\s*)'\./([a-z][a-z0-9-]*\.js)'`)

// Module is one of the widget's scripts with what it is served with.
type Module struct {
	name    string
	body    []byte
	gzipped []byte
	etag    string
	version string
}

// Modules is the widget's scripts, by name.
//
// Each module imports the others at a URL with their version, a hash of their served bytes
// (`from './api.js?v=…'`), and a module's bytes include those URLs, so a version covers
// everything a module imports. An entry module of one release thus never runs with a module of
// another that a browser or CDN still keeps: a cache holds each version under its own URL.
type Modules struct {
	byName map[string]*Module
}

// New returns the embedded modules, with their imports versioned, compressed and tagged once.
// It panics if a module imports one that is not embedded or the imports form a cycle, which
// the package's tests rule out.
func New() *Modules {
	m, err := newModules(files)
	if err != nil {
		panic(err)
	}
	return m
}

// newModules returns the .js files of fsys as modules.
func newModules(fsys fs.FS) (*Modules, error) {
	names, err := fs.Glob(fsys, "*.js")
	if err != nil {
		return nil, err
	}
	sources := make(map[string][]byte, len(names))
	for _, name := range names {
		if sources[name], err = fs.ReadFile(fsys, name); err != nil {
			return nil, err
		}
	}
	mods := &Modules{byName: make(map[string]*Module, len(names))}
	visiting := map[string]bool{}
	var build func(name string) (*Module, error)
	build = func(name string) (*Module, error) {
		if m := mods.byName[name]; m != nil {
			return m, nil
		}
		src, ok := sources[name]
		if !ok {
			return nil, fmt.Errorf("widget: no module %s", name)
		}
		if visiting[name] {
			return nil, fmt.Errorf("widget: %s imports itself through other modules", name)
		}
		visiting[name] = true
		var failed error
		body := importPattern.ReplaceAllFunc(src, func(match []byte) []byte {
			sub := importPattern.FindSubmatch(match)
			dep, err := build(string(sub[2]))
			if err != nil {
				failed = fmt.Errorf("%s: %w", name, err)
				return match
			}
			return fmt.Appendf(nil, "%s'./%s?v=%s'", sub[1], dep.name, dep.version)
		})
		if failed != nil {
			return nil, failed
		}
		m := newModule(name, body)
		mods.byName[name] = m
		return m, nil
	}
	for _, name := range names {
		if _, err := build(name); err != nil {
			return nil, err
		}
	}
	return mods, nil
}

func newModule(name string, body []byte) *Module {
	sum := sha256.Sum256(body)
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // only fails for a bad level
	_, _ = w.Write(body)                                   // writes to memory do not fail
	_ = w.Close()
	return &Module{
		name: name, body: body, gzipped: gz.Bytes(),
		etag:    `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
		version: base64.RawURLEncoding.EncodeToString(sum[:9]),
	}
}

// Names returns the names of the modules (support-chat.js, api.js, ...), sorted.
func (s *Modules) Names() []string {
	names := make([]string, 0, len(s.byName))
	for name := range s.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Module returns the module of a name, or nil.
func (s *Modules) Module(name string) *Module {
	return s.byName[name]
}

// Size returns the modules' total size in bytes, plain and gzipped one by one, as browsers
// download them.
func (s *Modules) Size() (plain, gzipped int) {
	for _, m := range s.byName {
		p, gz := m.Size()
		plain += p
		gzipped += gz
	}
	return plain, gzipped
}

// Size returns the module's size in bytes, plain and gzipped.
func (m *Module) Size() (plain, gzipped int) {
	return len(m.body), len(m.gzipped)
}

// ETag returns the module's entity tag, a hash of its bytes.
func (m *Module) ETag() string {
	return m.etag
}

// Version returns the version other modules import the module with (?v=), a hash of its bytes.
func (m *Module) Version() string {
	return m.version
}

// ServeHTTP answers GET and HEAD with the module: text/javascript, its ETag (304 to a matching
// If-None-Match), long-lived caching, gzip when the client accepts it, and CORS open to every
// origin, because a storefront loads the modules from its own domain and browsers fetch module
// scripts in CORS mode. The files are public and the requests carry no credentials. A request
// for another version (?v=) than the module's gets the module uncached.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	if v := r.URL.Query().Get("v"); v != "" && v != m.version {
		h.Set("Cache-Control", mismatchCacheControl)
	} else {
		h.Set("Cache-Control", CacheControl)
	}
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
