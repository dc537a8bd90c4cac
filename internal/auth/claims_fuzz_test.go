package auth

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzClaimAt checks the lookup of a tenant's claim paths (admin_claim, name_claim,
// required_claims) in any token claims: no panic; a claim named exactly like the path wins;
// a value nested along a valid path is found there; and what it returns is nil or a value of
// the claims, never one it made up.
func FuzzClaimAt(f *testing.F) {
	f.Add(`{"roles":["support_admin"],"sub":"cust-1"}`, "roles", "support_admin")
	f.Add(`{"realm_access":{"roles":["chat-agent"]}}`, "realm_access.roles", "chat-agent")
	f.Add(`{"realm_access.roles":"flat","realm_access":{"roles":"nested"}}`, "realm_access.roles", "x")
	f.Add(`{"a":{"b.c":{"d":1}},"a.b":{"c":{"d":2}}}`, "a.b.c.d", "y")
	f.Add(`{"org":["shop-a","shop-b"],"tenancy":{"orgs":["shop-c"]}}`, "tenancy.orgs", "shop-c")
	f.Add(`{"":{"":0}}`, ".", "")
	f.Add(`[]`, "a..b", "z")
	f.Fuzz(func(t *testing.T, raw, path, value string) {
		var claims map[string]any
		if json.Unmarshal([]byte(raw), &claims) != nil || claims == nil {
			claims = map[string]any{}
		}
		got := claimAt(claims, path)
		if path == "" && got != nil {
			t.Fatalf("claimAt(%s, \"\") = %v, want nil", raw, got)
		}
		if v, ok := claims[path]; ok && path != "" && !reflect.DeepEqual(got, v) {
			t.Fatalf("claimAt(%s, %q) = %v, want the claim named %q: %v", raw, path, got, path, v)
		}
		if got != nil && !within(claims, got) {
			t.Fatalf("claimAt(%s, %q) = %#v, which is not a value of the claims", raw, path, got)
		}

		// A value nested along a path a tenant file may name (checkClaim's rule: no blank
		// segment) is found there.
		segments := strings.Split(path, ".")
		for _, s := range segments {
			if strings.TrimSpace(s) == "" {
				return
			}
		}
		nested := any(value)
		for i := len(segments) - 1; i >= 0; i-- {
			nested = map[string]any{segments[i]: nested}
		}
		if got := claimAt(nested.(map[string]any), path); got != value {
			t.Fatalf("claimAt(%v, %q) = %#v, want %q", nested, path, got, value)
		}
		if hasRole(claimAt(nested.(map[string]any), path), []string{value}) != true {
			t.Fatalf("hasRole of %q at %q is false", value, path)
		}
	})
}

// within reports whether v is the claims object itself or a value inside it.
func within(claims any, v any) bool {
	if reflect.DeepEqual(claims, v) {
		return true
	}
	switch c := claims.(type) {
	case map[string]any:
		for _, e := range c {
			if within(e, v) {
				return true
			}
		}
	case []any:
		for _, e := range c {
			if within(e, v) {
				return true
			}
		}
	}
	return false
}
