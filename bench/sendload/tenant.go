package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/supportchat/supportchat/bench/internal/stack"
	"github.com/supportchat/supportchat/internal/devissuer"
)

// tenantFile is the benchmark tenant, as bench/internal/stack writes it: no business hours, so
// support is online as soon as an admin is.
const tenantFile = `id: %s
name: Bench Shop
oidc:
  issuer: %s
  audience: support-chat
  admin_claim: roles
  admin_values: [%s]
  name_claim: name
chat:
  away_prompt: "Our team is away right now. We usually reply within a few hours."
`

// tokenTTL is the lifetime of the minted tokens: longer than any run.
const tokenTTL = 24 * time.Hour

// tenant is the benchmark tenant's folder of tenant files and its OIDC issuer.
type tenant struct {
	dir    string
	issuer *devissuer.Issuer
}

// newTenant starts the issuer and writes the tenant file into a folder under tmp.
func newTenant(tmp string) (*tenant, error) {
	iss, err := devissuer.New(devissuer.Options{Audience: "support-chat", AdminClaim: "roles", AdminValue: stack.AdminRole, NameClaim: "name", TokenTTL: tokenTTL})
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	t := &tenant{dir: filepath.Join(tmp, "tenants"), issuer: iss}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		t.close()
		return nil, err
	}
	body := fmt.Appendf(nil, tenantFile, stack.TenantID, iss.URL(), stack.AdminRole)
	if err := os.WriteFile(filepath.Join(t.dir, stack.TenantID+".yaml"), body, 0o644); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// close stops the issuer.
func (t *tenant) close() { _ = t.issuer.Close() }

// customer returns the token of customer i.
func (t *tenant) customer(i int) (string, error) {
	id, name := stack.Customer(i)
	return t.issuer.Mint(id, name, false, tokenTTL)
}

// admin returns the token of admin i.
func (t *tenant) admin(i int) (string, error) {
	id, name := stack.Admin(i)
	return t.issuer.Mint(id, name, true, tokenTTL)
}
