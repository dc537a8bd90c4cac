package tenant

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ValidateDir checks every tenant file in dir as Registry.Reload reads them, and returns the
// valid tenants sorted by id and every problem found: each *FileError of each file, a tenant
// id or host claimed by an earlier file (in name order), an unreadable dir or one without
// tenant files.
func ValidateDir(dir string) ([]*Tenant, []error) {
	files, err := loadDir(dir)
	if err != nil {
		return nil, []error{err}
	}
	if len(files) == 0 {
		return nil, []error{fmt.Errorf("%s: no tenant files (*.yaml, *.yml)", dir)}
	}
	entries, invalid := assemble(files, nil)
	var errs []error
	for _, err := range invalid {
		errs = append(errs, flatten(err)...)
	}
	return sortedTenants(entries), errs
}

// Summary describes valid tenants in one line, such as
// "3 tenants valid: acme-outdoor, demo-shop, nordic-books".
func Summary(tenants []*Tenant) string {
	ids := make([]string, 0, len(tenants))
	for _, t := range tenants {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	noun := "tenants"
	if len(ids) == 1 {
		noun = "tenant"
	}
	if len(ids) == 0 {
		return "0 tenants valid"
	}
	return fmt.Sprintf("%d %s valid: %s", len(ids), noun, strings.Join(ids, ", "))
}

// flatten returns the errors joined in err, or err alone.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// entry is a parsed tenant with what a reload needs to compare it and check it against others.
type entry struct {
	tenant *Tenant
	// sum is the SHA-256 of the file's contents: an unchanged file keeps its *Tenant.
	sum   [sha256.Size]byte
	lines fileLines
}

// tenantFile is one tenant file of a directory, read and parsed.
type tenantFile struct {
	path string
	// id is the tenant id the file name implies.
	id string
	// entry is set when err is nil.
	entry
	err error
}

// isTenantFileName reports whether name is one the registry reads: *.yaml or *.yml, not
// hidden.
func isTenantFileName(name string) bool {
	ext := filepath.Ext(name)
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

// loadDir reads and parses the tenant files directly in dir, in name order: *.yaml and *.yml,
// following symlinks, skipping names that start with "." (such as the ..data entries of a
// Kubernetes ConfigMap mount) and directories.
func loadDir(dir string) ([]tenantFile, error) {
	dirEntries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read tenants dir: %w", err)
	}
	var files []tenantFile
	for _, de := range dirEntries {
		name := de.Name()
		if !isTenantFileName(name) {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			continue
		}
		files = append(files, readTenantFile(path))
	}
	return files, nil
}

// readTenantFile reads and parses one tenant file.
func readTenantFile(path string) tenantFile {
	f := tenantFile{path: path, id: fileID(path)}
	data, err := os.ReadFile(path) //nolint:gosec // a file of the operator's tenants dir
	if err != nil {
		f.err = &FileError{File: path, Msg: readProblem(err)}
		return f
	}
	f.sum = sha256.Sum256(data)
	f.tenant, f.lines, f.err = parse(path, data)
	return f
}

// assemble picks the tenants of files taken in order. A file gives its tenant unless it is
// invalid or an earlier file took its id or one of its hosts; then previous (when not nil)
// may give that id's last good entry instead, if it does not clash either. It returns the
// chosen entries by id and one error per file not used as written.
func assemble(files []tenantFile, previous func(id string) (entry, bool)) (map[string]entry, []error) {
	chosen := map[string]entry{}
	owners := map[string]*Tenant{}
	take := func(e entry) {
		chosen[e.tenant.ID] = e
		for _, h := range e.tenant.Hosts {
			owners[strings.ToLower(h)] = e.tenant
		}
	}
	var invalid []error
	for _, f := range files {
		err := f.err
		if err == nil {
			err = clash(f.path, f.entry, chosen, owners)
		}
		if err == nil {
			take(f.entry)
			continue
		}
		invalid = append(invalid, err)
		if previous == nil {
			continue
		}
		if _, taken := chosen[f.id]; taken {
			continue
		}
		if prev, ok := previous(f.id); ok && clash(prev.tenant.Source, prev, chosen, owners) == nil {
			take(prev)
		}
	}
	return chosen, invalid
}

// clash reports an id or host of e that an already chosen tenant has, as errors of file.
func clash(file string, e entry, chosen map[string]entry, owners map[string]*Tenant) error {
	if other, ok := chosen[e.tenant.ID]; ok {
		return &FileError{File: file, Line: e.lines.id, Msg: fmt.Sprintf("tenant id %q is already defined by %s", e.tenant.ID, other.tenant.Source)}
	}
	var errs []error
	for _, h := range e.tenant.Hosts {
		if other, ok := owners[strings.ToLower(h)]; ok {
			errs = append(errs, &FileError{File: file, Line: e.lines.hosts[h], Msg: fmt.Sprintf("hosts: %q is already claimed by tenant %q (%s)", h, other.ID, other.Source)})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(chosen)) {
		other := chosen[id].tenant
		if indistinguishable(e.tenant.OIDC, other.OIDC) {
			errs = append(errs, &FileError{File: file, Line: e.lines.issuer, Msg: fmt.Sprintf(
				"oidc: tenant %q (%s) trusts the same issuer (a token's aud may name both audiences), so its tokens would work here too; give both oidc.required_claims with a claim path they require with different values", other.ID, other.Source)})
		}
	}
	return errors.Join(errs...)
}

// indistinguishable reports whether one token could be accepted by tenants with OIDC settings
// a and b: they trust the same issuer, and no claim path is required by both with different
// values. Different audiences do not tell them apart: a token's aud may be an array naming
// both. (A token whose required claim is an array holding both values still binds to both:
// its issuer says the caller belongs to both.)
func indistinguishable(a, b OIDC) bool {
	if a.Issuer != b.Issuer {
		return false
	}
	for _, ca := range a.RequiredClaims {
		for _, cb := range b.RequiredClaims {
			if ca.Path == cb.Path && ca.Value != cb.Value {
				return false
			}
		}
	}
	return true
}

// sortedTenants returns the tenants of entries sorted by id.
func sortedTenants(entries map[string]entry) []*Tenant {
	all := make([]*Tenant, 0, len(entries))
	for _, e := range entries {
		all = append(all, e.tenant)
	}
	slices.SortFunc(all, func(a, b *Tenant) int { return strings.Compare(a.ID, b.ID) })
	return all
}
