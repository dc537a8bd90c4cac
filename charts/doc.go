// Package charts holds the Helm charts of Support Chat. It has no code: its tests check the
// support-chat chart without a cluster (helm lint, helm template, rendered-manifest invariants,
// consistency with the Dockerfile and with the observability files under deploy/).
//
// Run them with `make chart-test` or `go test ./charts/...`; they need helm (`make tools`).
package charts
