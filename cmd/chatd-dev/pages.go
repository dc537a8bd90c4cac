package main

import (
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// The demo storefront (/) and the agent inbox (/inbox/) exist only in chatd-dev: production
// agents work in their storefront's own console, and chatd serves only the widget module.
//
//go:embed web
var web embed.FS

// pageTokenTTL is the life of the tokens the pages get; short, so the widget's refresh runs.
const pageTokenTTL = 15 * time.Minute

// pageCSP is the strict Content Security Policy of the pages: scripts and styles only from
// files of this origin, no inline code, no eval, Trusted Types enforced. The widget runs
// under it unchanged.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// pageData is what the page templates show.
type pageData struct {
	ID, Name               string
	ShopperID, ShopperName string
	AdminID, AdminName     string
	Tenants                []tenantLink
}

type tenantLink struct{ ID, Name string }

// pages serves the demo storefront, the inbox, their assets and the token endpoint in front of
// the API handler, which answers everything else.
func (s *stack) pages(api http.Handler) http.Handler {
	tmpl := template.Must(template.ParseFS(web, "web/shop.html", "web/inbox.html"))
	demo, _ := fs.Sub(web, "web/demo")   // the directories are embedded: Sub cannot fail
	inbox, _ := fs.Sub(web, "web/inbox") //
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", s.page(tmpl, "shop.html"))
	mux.Handle("GET /inbox/{$}", s.page(tmpl, "inbox.html"))
	mux.Handle("GET /inbox", http.RedirectHandler("/inbox/", http.StatusFound))
	mux.Handle("GET /demo/", asset(http.StripPrefix("/demo/", http.FileServerFS(demo))))
	mux.Handle("GET /inbox/", asset(http.StripPrefix("/inbox/", http.FileServerFS(inbox))))
	mux.HandleFunc("POST /demo/token", s.serveToken)
	mux.Handle("/", api)
	return mux
}

// page renders a page template for the tenant of ?tenant= (default: demo-shop, else the first).
func (s *stack) page(tmpl *template.Template, name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		links := s.tenantLinks()
		if len(links) == 0 {
			http.Error(w, "no tenants loaded", http.StatusServiceUnavailable)
			return
		}
		want := r.URL.Query().Get("tenant")
		if want == "" {
			want = "demo-shop"
		}
		cur := links[0]
		for _, l := range links {
			if l.ID == want {
				cur = l
			}
		}
		shopper := demoCustomer
		if id := r.URL.Query().Get("shopper"); id != "" {
			shopper = person{ID: id, Name: r.URL.Query().Get("name")}
			if shopper.Name == "" {
				shopper.Name = id
			}
		}
		setPageHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = tmpl.ExecuteTemplate(w, name, pageData{
			ID: cur.ID, Name: cur.Name, Tenants: links,
			ShopperID: shopper.ID, ShopperName: shopper.Name,
			AdminID: demoAdmin.ID, AdminName: demoAdmin.Name,
		})
	})
}

// asset serves the pages' scripts and styles with the same headers as the pages.
func asset(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w)
		h.ServeHTTP(w, r)
	})
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// tenantLinks returns the tenants with a development issuer, by id.
func (s *stack) tenantLinks() []tenantLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	links := make([]tenantLink, 0, len(s.issuers))
	for id := range s.issuers {
		name := s.names[id]
		if name == "" {
			name = id
		}
		links = append(links, tenantLink{ID: id, Name: name})
	}
	sort.Slice(links, func(i, j int) bool { return links[i].ID < links[j].ID })
	return links
}

// serveToken mints a token of a tenant's development issuer for the pages: POST
// {"tenant", "role": "customer"|"admin", "sub"?, "name"?} answers {"access_token", "expires_in"}.
// It takes JSON only, so another site's page cannot have a browser post to it without a
// preflight, which it never answers.
func (s *stack) serveToken(w http.ResponseWriter, r *http.Request) {
	if !rebindSafeHost(r.Host) {
		http.Error(w, "demo tokens are served to localhost or an IP address only: a DNS name could be rebound to this machine by another site", http.StatusForbidden)
		return
	}
	var req struct {
		Tenant string `json:"tenant"`
		Role   string `json:"role"`
		Sub    string `json:"sub"`
		Name   string `json:"name"`
	}
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "send JSON", http.StatusUnsupportedMediaType)
		return
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	iss := s.issuer(req.Tenant)
	if iss == nil {
		http.Error(w, "unknown tenant", http.StatusNotFound)
		return
	}
	who := demoCustomer
	switch req.Role {
	case "customer", "":
	case "admin":
		who = demoAdmin
	default:
		http.Error(w, "role must be customer or admin", http.StatusBadRequest)
		return
	}
	if req.Sub != "" {
		who = person{ID: req.Sub, Name: req.Name}
	}
	token, err := iss.Mint(who.ID, who.Name, req.Role == "admin", pageTokenTTL)
	if err != nil {
		http.Error(w, "mint failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": int(pageTokenTTL.Seconds())})
}

// rebindSafeHost reports whether a request's Host names this server in a way no other site can
// borrow: localhost or an IP address. A page of another site that rebinds its own DNS name to
// this machine sends that name as Host, and is refused.
func rebindSafeHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}
