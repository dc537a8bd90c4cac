package tenant_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/tenant"
)

func TestExampleTenantsAreValid(t *testing.T) {
	tenants, errs := tenant.ValidateDir("../../tenants")
	for _, err := range errs {
		t.Errorf("ValidateDir(../../tenants): %v", err)
	}
	if got, want := tenant.Summary(tenants), "3 tenants valid: acme-outdoor, demo-shop, nordic-books"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

func TestValidateDirReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "alpha", "Alpha", "shop.example")
	writeTenant(t, dir, "beta", "Beta", "shop.example", "beta.example")
	writeFile(t, filepath.Join(dir, "broken.yaml"), "id: broken\nname: Broken\nhosts: [a:1]\n")
	writeFile(t, filepath.Join(dir, "alpha.yml"), fmt.Sprintf(tenantYAML, "alpha", "Alpha again", ""))

	tenants, errs := tenant.ValidateDir(dir)
	var got []string
	for _, err := range errs {
		got = append(got, strings.TrimPrefix(err.Error(), dir+string(filepath.Separator)))
	}
	want := []string{
		`alpha.yml:1: tenant id "alpha" is already defined by ` + filepath.Join(dir, "alpha.yaml"),
		`beta.yaml:3: hosts: "shop.example" is already claimed by tenant "alpha" (` + filepath.Join(dir, "alpha.yaml") + ")",
		`broken.yaml:3: hosts: "a:1" must not have a port`,
		`broken.yaml:1: oidc is required`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ValidateDir errors mismatch (-want +got):\n%s", diff)
	}
	if got := tenant.Summary(tenants); got != "1 tenant valid: alpha" {
		t.Errorf("Summary = %q, want only alpha", got)
	}
}

func TestValidateDirWithoutTenants(t *testing.T) {
	if _, errs := tenant.ValidateDir(t.TempDir()); len(errs) != 1 {
		t.Errorf("ValidateDir(empty dir) errors = %v, want one", errs)
	}
	if _, errs := tenant.ValidateDir(filepath.Join(t.TempDir(), "missing")); len(errs) != 1 {
		t.Errorf("ValidateDir(missing dir) errors = %v, want one", errs)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name    string
		tenants []*tenant.Tenant
		want    string
	}{
		{"no tenants", nil, "0 tenants valid"},
		{"one tenant", []*tenant.Tenant{{ID: "demo-shop"}}, "1 tenant valid: demo-shop"},
		{"tenants are listed by id", []*tenant.Tenant{{ID: "nordic-books"}, {ID: "acme-outdoor"}}, "2 tenants valid: acme-outdoor, nordic-books"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tenant.Summary(tt.tenants); got != tt.want {
				t.Errorf("Summary = %q, want %q", got, tt.want)
			}
		})
	}
}

// sharedIssuerYAML is a tenant file trusting one issuer and audience that other tenants share;
// %[2]s is its oidc.required_claims mapping (or empty). The issuer is on line 5.
const sharedIssuerYAML = `id: %[1]s
name: %[1]s
oidc:
  audience: support-chat
  issuer: https://id.platform.example
  admin_claim: roles
  admin_values: [admin]
  required_claims: {%[2]s}
`

// TestValidateDirDifferentAudiencesDoNotTellApart: a token's aud may be an array naming both
// audiences, so two tenants of one issuer need distinguishing required claims whatever their
// audiences.
func TestValidateDirDifferentAudiencesDoNotTellApart(t *testing.T) {
	dir := t.TempDir()
	for id, aud := range map[string]string{"shop-a": "chat-a", "shop-b": "chat-b"} {
		writeFile(t, filepath.Join(dir, id+".yaml"), strings.Replace(fmt.Sprintf(sharedIssuerYAML, id, ""), "audience: support-chat", "audience: "+aud, 1))
	}
	tenants, errs := tenant.ValidateDir(dir)
	if len(errs) != 1 || !strings.HasPrefix(strings.ReplaceAll(errs[0].Error(), dir+string(filepath.Separator), ""),
		`shop-b.yaml:5: oidc: tenant "shop-a" (shop-a.yaml) trusts the same issuer`) {
		t.Errorf("ValidateDir errors = %v, want shop-b refused at its issuer", errs)
	}
	if s := tenant.Summary(tenants); s != "1 tenant valid: shop-a" {
		t.Errorf("Summary = %q", s)
	}
}

func TestValidateDirRequiresClaimsThatTellSharedIssuersApart(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]string // file id -> required_claims
		want   []string
		valid  string
	}{
		{"different values of one claim tell them apart",
			map[string]string{"shop-a": "org: a", "shop-b": "org: b", "shop-c": "org: c, region: eu"},
			nil, "3 tenants valid: shop-a, shop-b, shop-c"},
		{"no required claims is refused at the later file's issuer",
			map[string]string{"shop-a": "", "shop-b": ""},
			[]string{`shop-b.yaml:5: oidc: tenant "shop-a" (shop-a.yaml) trusts the same issuer`}, "1 tenant valid: shop-a"},
		{"required claims on one side only are refused",
			map[string]string{"shop-a": "org: a", "shop-b": ""},
			[]string{`shop-b.yaml:5: oidc: tenant "shop-a" (shop-a.yaml) trusts the same issuer`}, "1 tenant valid: shop-a"},
		{"different claim paths are refused: one token may carry both",
			map[string]string{"shop-a": "org: a", "shop-b": "team: b"},
			[]string{`shop-b.yaml:5: oidc: tenant "shop-a" (shop-a.yaml) trusts the same issuer`}, "1 tenant valid: shop-a"},
		{"the same value is refused",
			map[string]string{"shop-a": "org: a", "shop-b": "org: a, region: eu"},
			[]string{`shop-b.yaml:5: oidc: tenant "shop-a" (shop-a.yaml) trusts the same issuer`}, "1 tenant valid: shop-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for id, claims := range tt.claims {
				writeFile(t, filepath.Join(dir, id+".yaml"), fmt.Sprintf(sharedIssuerYAML, id, claims))
			}
			tenants, errs := tenant.ValidateDir(dir)
			var got []string
			for _, err := range errs {
				got = append(got, strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ValidateDir errors = %q, want %d starting %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d = %q, want it to start with %q", i, got[i], tt.want[i])
				}
			}
			if s := tenant.Summary(tenants); s != tt.valid {
				t.Errorf("Summary = %q, want %q", s, tt.valid)
			}
		})
	}
}
