// Package charts holds the Helm charts of Support Chat. It has no code: its tests check the
// support-chat chart without a cluster (helm lint, helm template, rendered-manifest invariants,
// render guards, kubectl-validate against Kubernetes' schemas and the Prometheus Operator CRDs of
// testdata/crds, the restricted Pod Security checks of k8s.io/pod-security-admission, consistency
// with the Dockerfile and with the observability files under deploy/).
//
// Run them with `make chart-test` or `go test ./charts/...`; they need helm and kubectl-validate
// (`make tools`).
package charts
