# skewguard container image: a static binary on `scratch`, nothing else.
# Every document and example uses the tag skewguard:0.1.0. Build it with
#
#   DOCKER_BUILDKIT=1 docker build -t skewguard:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# BuildKit is needed (the legacy builder cannot expand $BUILDPLATFORM below and
# fails with `"" is an invalid component`): DOCKER_BUILDKIT=1 selects it on
# Docker 18.09 to 22.x and is the default on 23.0+ (which then needs the buildx
# plugin, part of Docker Desktop and of docker-ce; Debian: docker-buildx).
#
# For both architectures at once (the builder runs on the build machine's own
# platform and cross-compiles; nothing runs under emulation):
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REPO/skewguard:0.1.0 --push .
#
# Without a registry or a Rust toolchain in Docker, package a binary built
# on this machine (scripts/static-build.sh) into the same runtime stage, under
# the same tag; any builder will do:
#
#   scripts/static-build.sh && scripts/local-image.sh skewguard:0.1.0
#
# That script (and tests/it/docker.rs) takes the runtime stage below verbatim and
# swaps only the source of its `COPY --from=builder`. Keep it the last stage,
# keep exactly one `COPY --from=builder` in it, and keep it free of RUN
# (scratch has no shell).

FROM --platform=$BUILDPLATFORM rust:1-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
# A cross linker and static glibc for the target when it is not the build
# machine's own architecture (ring's C code needs the cross compiler too).
# The packages are the base image's Debian release's own; pinned versions would
# break with each point release of it.
# hadolint ignore=DL3008
RUN case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gcc="gcc-x86-64-linux-gnu"; libc="libc6-dev-amd64-cross"; cc="x86_64-linux-gnu-gcc" ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gcc="gcc-aarch64-linux-gnu"; libc="libc6-dev-arm64-cross"; cc="aarch64-linux-gnu-gcc" ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH (amd64, arm64)" >&2; exit 1 ;; \
    esac \
 && echo "$triple" > /triple \
 && touch /cross.env \
 && if [ "$triple" != "$(rustc -vV | sed -n 's/^host: //p')" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends "$gcc" "$libc" \
      && rm -rf /var/lib/apt/lists/* \
      && rustup target add "$triple" \
      && upper="$(echo "$triple" | tr 'a-z-' 'A-Z_')" \
      && printf 'export CARGO_TARGET_%s_LINKER=%s CC_%s=%s\n' "$upper" "$cc" "$(echo "$triple" | tr - _)" "$cc" > /cross.env; \
    fi
WORKDIR /src
# Manifests first, so the dependency download stays cached while src/ changes.
COPY Cargo.toml Cargo.lock ./
# cargo fetch wants a target to exist; an empty one will do.
RUN mkdir src && touch src/main.rs && cargo fetch --locked && rm -r src
COPY scripts/static-build.sh ./scripts/
COPY src ./src
# The same command as outside Docker, for the target's triple. glibc >= 2.34
# has the files and dns NSS modules built in, so a static binary still
# resolves host names on scratch (tests/it/docker.rs proves it).
RUN . /cross.env \
 && bin="$(scripts/static-build.sh "$(cat /triple)" --locked --offline)" \
 && install -D -m 0755 "$bin" /out/skewguard

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# Where the source and the documentation live: set it where you publish.
ARG SOURCE=https://github.com/your-org/skewguard
LABEL org.opencontainers.image.title="skewguard" \
      org.opencontainers.image.description="Keeps containers from starting or staying in service with a clock that breaks signed requests (AWS SigV4 and others)" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/blob/main/README.md"
# No CA bundle, passwd or resolv.conf needed: root certificates are compiled in
# (webpki-roots), the user is numeric, and Docker/Kubernetes mount
# /etc/resolv.conf and /etc/hosts into every container.
COPY --from=builder /out/skewguard /skewguard
# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd.
USER 65532:65532
# serve's /healthz /readyz /livez /metrics (SKEWGUARD_LISTEN, default 0.0.0.0:8080).
EXPOSE 8080
# Probes the local `serve` over loopback, which answers from its last measurement:
# no network measurement per probe. `health` probes the port serve listens on:
# the --listen flag of `serve` as PID 1 (e.g. `docker run IMAGE serve --listen
# 0.0.0.0:9090`), else SKEWGUARD_LISTEN from the container's environment.
# The start period covers the first measurement (up to SKEWGUARD_TIMEOUT per source).
# Images run as `wait`/`check` should disable it (docker run --no-healthcheck,
# compose `healthcheck: {disable: true}`), since nothing serves there.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=2 \
  CMD ["/skewguard", "health"]
ENTRYPOINT ["/skewguard"]
CMD ["serve"]
