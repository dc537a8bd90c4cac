package tenant

import (
	"fmt"
	"os"
)

// ValidID reports whether id is a well-formed tenant id: 2 to 63 of a-z, 0-9 and -.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Configured reports whether dir holds a file for tenant id, valid or not: a name the
// registry reads (id.yaml or id.yml, not hidden), whatever it holds and whether or not it is a
// file yet (a symlink may point at one later). A folder that cannot be read is an error, not
// an answer: a tenant may be configured there.
func Configured(dir, id string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read tenants dir: %w", err)
	}
	for _, de := range entries {
		if name := de.Name(); isTenantFileName(name) && fileID(name) == id {
			return true, nil
		}
	}
	return false, nil
}
