package api

import (
	_ "embed"
	"slices"
)

//go:embed openapi.yaml
var document []byte

// Document returns openapi.yaml, the OpenAPI description of the service, for tools and tests
// that check a running service against it (internal/testenv.OpenAPI).
func Document() []byte { return slices.Clone(document) }
