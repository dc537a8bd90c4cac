# syntax=docker/dockerfile:1
#
# Support Chat server image: a static chatd on distroless, non-root, no shell.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t ghcr.io/supportchat/chatd:dev .
#
# Base images: the defaults below are pinned by tag, for development. Release builds pin both by
# digest through these build arguments (the tag stays for readers, the digest wins), so a release
# is rebuilt from exactly the bases it was tested with; deploy/README.md ("Release images") shows
# how to look the digests up, verify the distroless signature and check what an image was built on:
#   docker build --build-arg GO_IMAGE=golang:1.26-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:<digest> ...
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src

# Module download is its own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/chatd ./cmd/chatd

FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="chatd" \
      org.opencontainers.image.description="Support Chat: multi-tenant storefront support chat API" \
      org.opencontainers.image.source="https://github.com/supportchat/supportchat" \
      org.opencontainers.image.url="https://github.com/supportchat/supportchat" \
      org.opencontainers.image.documentation="https://github.com/supportchat/supportchat/blob/main/deploy/README.md" \
      org.opencontainers.image.vendor="Support Chat" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"

COPY --from=build /out/chatd /usr/local/bin/chatd
# Default tenant files; in Kubernetes the chart mounts its ConfigMap over this folder.
COPY tenants/ /etc/chatd/tenants/
ENV CHAT_TENANTS_DIR=/etc/chatd/tenants

USER 65532:65532
# The API and the probes (CHAT_ADDR), and /metrics (CHAT_METRICS_ADDR).
EXPOSE 8080 9090
# No HEALTHCHECK: distroless has no shell or client; Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["/usr/local/bin/chatd"]
CMD ["serve"]
