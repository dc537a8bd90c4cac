# Support Chat: build, test and tool targets. `make test` is the one command CI runs.
SHELL := /bin/bash
TOOLS_BIN := $(CURDIR)/.tools/bin
HELM_VERSION := v3.22.0
HELM := $(TOOLS_BIN)/helm
# golangci-lint lives in a folder named by its version, so a version bump installs it anew.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(CURDIR)/.tools/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
# promtool runs the alert unit tests (deploy/prometheus/alerts_test.yaml). Building it from the
# Prometheus module pulls every service-discovery SDK (minutes of downloads and compiling), so it
# comes from Debian bookworm's prometheus package, pinned by version and SHA-256: apt-get download
# (no root; apt checks the archive's signature), only the promtool binary extracted, no daemon.
# PROMTOOL=/path/to/promtool (2.42 or newer) uses another one.
PROMTOOL_DEB_VERSION := 2.42.0+ds-5+deb12u1
PROMTOOL_DEB_SHA256 := 81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55
PROMTOOL ?= $(CURDIR)/.tools/promtool-$(PROMTOOL_DEB_VERSION)/promtool
# kubectl-validate checks every chart render against Kubernetes' OpenAPI schemas (v0.0.4 carries
# them up to 1.30, so it runs offline) and the Prometheus Operator CRDs of charts/testdata/crds.
KUBECTL_VALIDATE_VERSION := v0.0.4
KUBECTL_VALIDATE := $(CURDIR)/.tools/kubectl-validate-$(KUBECTL_VALIDATE_VERSION)/kubectl-validate
export HELM PROMTOOL KUBECTL_VALIDATE
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: all build test consistency soak chart-test chart-sync lint tools bench cover clean

all: build

build:
	go build -trimpath -o bin/chatd ./cmd/chatd
	go build -trimpath -o bin/chatd-dev ./cmd/chatd-dev

## test: everything: gofmt, go vet, golangci-lint, the Go tests with the race detector (chart
## checks included), then each fuzz target for a few seconds.
test: lint tools
	@(exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null || [ -n "$$CHAT_TEST_POSTGRESQL_URL" ] || \
	  echo "note: no PostgreSQL at 127.0.0.1:5432: the FerretDB-on-PostgreSQL runs of the consistency tests are skipped"
	go test -race -count=1 -timeout 10m ./...
	$(MAKE) fuzz

## fuzz: every fuzz target (func Fuzz... in a _test.go file) for FUZZTIME each, default 3s;
## `make fuzz FUZZTIME=10m` for a long run. `go test -fuzz` takes one target of one package per
## run, hence the loop. Failing inputs land in the package's testdata/fuzz/<target>/ to commit.
## Go 1.26's fuzzer may fail a run with a bare "context deadline exceeded" when FUZZTIME ends
## on a loaded machine (go.dev/issue/75804, fixed in Go 1.27): without a failing input, a panic
## or a failed seed, that alone is reported and does not fail the target.
FUZZTIME ?= 3s
fuzz:
	@set -eo pipefail; total=0; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for file in $$(grep -rl --include='*_test.go' '^func Fuzz' api cmd internal | sort); do \
	  pkg=./$$(dirname $$file); \
	  for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
	    echo "go test -run '^\$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME) $$pkg"; \
	    if ! go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1 | tee $$log; then \
	      if grep -q 'context deadline exceeded' $$log && \
	         ! grep -q -e 'Failing input written' -e 'panic:' -e '--- FAIL: Fuzz[A-Za-z0-9_]*/' -e '_test\.go:[0-9]' $$log; then \
	        echo "$$name: the fuzzer's own deadline race at the end of FUZZTIME (go.dev/issue/75804), no failing input"; \
	      else exit 1; fi; \
	    fi; \
	    execs=$$(sed -n 's/.*execs: \([0-9]*\).*/\1/p' $$log | tail -1); \
	    echo "$$name: $${execs:-0} executions"; total=$$((total + $${execs:-0})); \
	  done; \
	done; \
	echo "fuzz: $$total executions in all"

.PHONY: fuzz

## consistency: the write path's consistency suite 20 times over (docs/CONSISTENCY.md).
consistency:
	go test -race -count=20 -timeout 60m -run '^TestConsistency' ./internal/httpapi/

## soak: the long form of the chaos test (internal/httpapi/chaos_test.go: three replicas behind
## proxies that cut their MongoDB connections, requests killed at random write steps, short
## client timeouts, same-key twins), 60 s of writing, 20 runs on each backend; then two chatd
## processes on one database and Redis under 16 writers that retry with their Idempotency-Key,
## one replica killed and one restarted mid-run. Off in `make test`; CHAT_CHAOS_DURATION=60s and
## CHAT_SOAK_DURATION=2m by default.
CHAT_CHAOS_DURATION ?= 60s
soak:
	set -o pipefail; CHAT_CHAOS_DURATION=$(CHAT_CHAOS_DURATION) go test -race -count=20 -timeout 120m -run '^TestChaos$$' -v ./internal/httpapi/ | grep --line-buffered -E '^(=== RUN|--- |\s+chaos_test|PASS|FAIL|ok)'
	CHAT_SOAK=1 go test -race -count=1 -timeout 20m -run '^TestSoak$$' -v ./cmd/chatd/

## lint: gofmt, go vet and golangci-lint with .golangci.yml (gosec, errcheck, bodyclose,
## contextcheck, errorlint, revive, staticcheck and more); clean means no finding at all.
lint: $(GOLANGCI_LINT)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	GOBIN=$(dir $(GOLANGCI_LINT)) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

## tools: pinned tool versions, installed into .tools/.
tools: $(HELM) $(GOLANGCI_LINT) $(PROMTOOL) $(KUBECTL_VALIDATE)

$(HELM):
	GOBIN=$(TOOLS_BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(KUBECTL_VALIDATE):
	GOBIN=$(dir $(KUBECTL_VALIDATE)) go install sigs.k8s.io/kubectl-validate@$(KUBECTL_VALIDATE_VERSION)

# `apt-get update` first when apt does not know the version (.ci/run does).
$(PROMTOOL):
	@set -eo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; chmod 755 "$$tmp"; \
	deb="$$tmp/prometheus.deb"; \
	(cd "$$tmp" && apt-get download -q prometheus=$(PROMTOOL_DEB_VERSION) && mv prometheus_*.deb "$$deb") || \
	  { echo "apt-get download prometheus=$(PROMTOOL_DEB_VERSION) failed: on Debian bookworm run apt-get update; elsewhere set PROMTOOL to a promtool" >&2; exit 1; }; \
	echo "$(PROMTOOL_DEB_SHA256)  $$deb" | sha256sum -c --quiet; \
	dpkg-deb --fsys-tarfile "$$deb" | tar -x -C "$$tmp" ./usr/bin/promtool; \
	mkdir -p $(dir $(PROMTOOL)); mv "$$tmp/usr/bin/promtool" $(PROMTOOL); \
	$(PROMTOOL) --version | head -1

## chart-test: only the chart checks (helm lint, template, rendered-manifest tests, render
## guards, kubectl-validate, the restricted Pod Security checks).
chart-test: tools
	go test -count=1 ./charts/...

## chart-sync: copy the dashboard, alerts and example tenants into the chart (Helm cannot read
## outside it); the chart tests fail while the copies differ.
chart-sync:
	cp deploy/grafana/support-chat.json deploy/prometheus/alerts.yaml charts/support-chat/files/
	cp tenants/*.yaml charts/support-chat/tenants/

bench:
	go test -run '^$$' -bench . -benchmem ./internal/httpapi/ ./internal/chat/

## cover: the statement coverage the README quotes: every package of internal/ and cmd/ under
## all of their tests, with -coverpkg so that code one package's tests run in another counts.
cover:
	go test -count=1 -timeout 30m -coverpkg=./internal/...,./cmd/... -coverprofile=coverage.out ./internal/... ./cmd/...
	go tool cover -func=coverage.out | tail -1

clean:
	rm -rf bin .tools coverage.out

## bench-list: GET /chat/list at the highest rate 32 wrk connections reach (wrk in its own
## process; Debian: apt-get install wrk), limits off and on, against a bare-Gin ceiling serving
## the same bytes, in one run (bench/listload; flags: go run ./bench/listload -h). bench/RESULTS.md.
bench-list:
	go run ./bench/listload

## bench-flat: list latency and allocations in tenants of 1 000 and 10 000 conversations
## (BENCH_CONVERSATIONS=1000,100000 for other sizes). bench/RESULTS.md.
bench-flat:
	go test -run '^$$' -bench BenchmarkListFlat -benchmem -count=1 -timeout 60m ./bench/...

.PHONY: bench-list bench-flat

## bench-erase: a customer's erasure (20 conversations x 500 messages) under the list load of
## 100 other customers (wrk in its own process): messages erased per second, and the others'
## list p99 during it against a baseline without it, in one run (bench/eraseload; flags such as
## -backend postgresql, -rounds: go run ./bench/eraseload -h). bench/RESULTS.md.
bench-erase:
	go run ./bench/eraseload

.PHONY: bench-erase

## bench-sse: memory of 10 000 idle event streams (bench/sseidle). bench/RESULTS.md.
bench-sse:
	go run ./bench/sseidle -streams 10000

.PHONY: bench-sse

## bench-send: the write path of b04ebcf and of this checkout side by side, as chatd child
## processes on FerretDB with SQLite and with PostgreSQL: send latency with 1 and 8 writers,
## uncached reads, MongoDB commands per request (bench/sendload; flags such as -old, -new,
## -runs: go run ./bench/sendload -h). bench/RESULTS.md.
bench-send:
	go run ./bench/sendload

.PHONY: bench-send
