package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/auth"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestRequiredClaimsBindTokensToOneTenant covers two tenants trusting one issuer and audience:
// each accepts only the tokens carrying its own required claim value.
func TestRequiredClaimsBindTokensToOneTenant(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{})
	shopA := &tenant.Tenant{ID: "shop-a", OIDC: iss.OIDC()}
	shopA.OIDC.RequiredClaims = []tenant.RequiredClaim{{Path: "org", Value: "shop-a"}}
	shopB := &tenant.Tenant{ID: "shop-b", OIDC: iss.OIDC()}
	shopB.OIDC.RequiredClaims = []tenant.RequiredClaim{{Path: "org", Value: "shop-b"}}
	nested := &tenant.Tenant{ID: "shop-c", OIDC: iss.OIDC()}
	nested.OIDC.RequiredClaims = []tenant.RequiredClaim{{Path: "tenancy.orgs", Value: "shop-c"}}

	withOrg := func(org any) string {
		return iss.TokenWith(t, "RS256", func(c map[string]any) { c["org"] = org })
	}
	tests := []struct {
		name   string
		tenant *tenant.Tenant
		token  string
		ok     bool
	}{
		{"its own value", shopA, withOrg("shop-a"), true},
		{"its own value in an array", shopB, withOrg([]string{"other", "shop-b"}), true},
		{"another tenant's value", shopA, withOrg("shop-b"), false},
		{"another tenant's value in an array", shopA, withOrg([]string{"shop-b"}), false},
		{"no such claim", shopB, iss.Token(t, "user-1", false), false},
		{"the value as a number", shopA, withOrg(42), false},
		{"a nested path", nested, iss.TokenWith(t, "ES256", func(c map[string]any) { c["tenancy"] = map[string]any{"orgs": []string{"shop-c"}} }), true},
		{"a nested path holding another value", nested, iss.TokenWith(t, "ES256", func(c map[string]any) { c["tenancy"] = map[string]any{"orgs": "shop-a"} }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Authenticate(t.Context(), tt.tenant, tt.token)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Authenticate() error = %v, want nil", err)
			case !tt.ok && !errors.Is(err, auth.ErrInvalidToken):
				t.Fatalf("Authenticate() error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

// TestCachedTokenFollowsRequiredClaims checks that a verified token kept in the cache is
// refused once its tenant's file requires a claim the token lacks.
func TestCachedTokenFollowsRequiredClaims(t *testing.T) {
	iss := testenv.NewIssuer(t, audience, "roles", "support_admin")
	v := newVerifier(testenv.NewClock(time.Now()), auth.Options{})
	shop := &tenant.Tenant{ID: "shop", OIDC: iss.OIDC()}
	token := iss.Token(t, "user-1", false)
	if _, err := v.Authenticate(t.Context(), shop, token); err != nil {
		t.Fatalf("Authenticate() before the change: %v", err)
	}
	reloaded := &tenant.Tenant{ID: "shop", OIDC: iss.OIDC()}
	reloaded.OIDC.RequiredClaims = []tenant.RequiredClaim{{Path: "org", Value: "shop"}}
	if _, err := v.Authenticate(t.Context(), reloaded, token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Authenticate() after the tenant requires org: error = %v, want ErrInvalidToken", err)
	}
}
