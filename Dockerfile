# syntax=docker/dockerfile:1
# portone-facade container image.
#
#   docker build -t ghcr.io/portone-facade/portone-facade:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg GIT_REVISION="$(git rev-parse HEAD)" .
#
# Builder: the Rust toolchain on Debian 12. The protos are compiled by protox
# (pure Rust, no protoc) and TLS is rustls, so no -dev package is needed.
# Runtime: distroless cc (glibc, libgcc, CA certificates; no shell, no package
# manager), user nonroot = uid/gid 65532, matching the Helm chart.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target \
    CARGO_TERM_COLOR=never
COPY . .
# build.rs reads PORTONE_FACADE_GIT_REVISION into `portone-facade --version`.
ARG GIT_REVISION=unknown
# Cache mounts (BuildKit) keep the crates.io downloads and compiled
# dependencies between builds; the binary is copied out of the cached target
# directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    PORTONE_FACADE_GIT_REVISION="${GIT_REVISION}" \
    cargo build --release --locked --bin portone-facade \
 && install -D -m 0755 /src/target/release/portone-facade /out/portone-facade

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG GIT_REVISION=unknown
ARG SOURCE=https://github.com/portone-facade/portone-facade
LABEL org.opencontainers.image.title="portone-facade" \
      org.opencontainers.image.description="gRPC facade over PortOne's V1 (iamport) payment REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
ENV PORTONE_FACADE_VERSION="${VERSION}" \
    PORTONE_FACADE_GIT_REVISION="${GIT_REVISION}"
# On PATH (/usr/local/bin), so `portone-facade healthcheck ...` works as a
# container command (the chart's helm test pod uses it).
COPY --from=builder /out/portone-facade /usr/local/bin/portone-facade
USER 65532:65532
EXPOSE 50051
# For `docker run` / compose; Kubernetes ignores it and uses the chart's gRPC probes.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/portone-facade", "healthcheck", "--addr", "127.0.0.1:50051", "--timeout", "3s"]
ENTRYPOINT ["/usr/local/bin/portone-facade"]
