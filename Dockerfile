# skewguard container image: a static binary on `scratch`, nothing else.
#
#   docker build -t skewguard:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The runtime stage (the last one) is also what tests/docker.rs builds, from a
# binary compiled on the test machine: it takes that stage verbatim and swaps
# only the `COPY --from=builder` source. Keep it the last stage, keep exactly
# one `COPY --from=builder` in it, and keep it free of RUN (scratch has no shell).

FROM rust:1-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Manifests first, so the dependency download stays cached while src/ changes.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
# cargo fetch wants a target to exist; an empty one will do.
RUN mkdir src && touch src/main.rs && cargo fetch --locked && rm -r src
COPY src ./src
# Static glibc, as in .cargo/config.toml, but for whatever the builder's own
# architecture is (amd64, arm64). With an explicit --target, RUSTFLAGS reaches
# only the target's crates, never proc-macros, which cannot be static.
# glibc >= 2.34 has the files and dns NSS modules built in, so a static binary
# still resolves host names on scratch (tests/docker.rs proves it).
RUN host="$(rustc -vV | sed -n 's/^host: //p')" \
 && RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs" \
    cargo build --release --locked --offline --target "$host" \
 && install -D -m 0755 "target/$host/release/skewguard" /out/skewguard \
 && /out/skewguard --version

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="skewguard" \
      org.opencontainers.image.description="Keeps containers from starting or staying in service with a clock that breaks signed requests (AWS SigV4 and others)" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# No CA bundle, passwd or resolv.conf needed: root certificates are compiled in
# (webpki-roots), the user is numeric, and Docker/Kubernetes mount
# /etc/resolv.conf and /etc/hosts into every container.
COPY --from=builder /out/skewguard /skewguard
# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532
# serve's /healthz /readyz /livez /metrics (SKEWGUARD_LISTEN, default 0.0.0.0:8080).
EXPOSE 8080
# Probes the local `serve` over loopback, which answers from its last measurement:
# no network measurement per probe. `health` reads the port from SKEWGUARD_LISTEN.
# The start period covers the first measurement (up to SKEWGUARD_TIMEOUT per source).
# Images run as `wait`/`check` should disable it (docker run --no-healthcheck,
# compose `healthcheck: {disable: true}`), since nothing serves there.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=2 \
  CMD ["/skewguard", "health"]
ENTRYPOINT ["/skewguard"]
CMD ["serve"]
