# Doorbuster: one image for every role (`serve`, `migrate`, `loadgen`).
#
#   docker build -t doorbuster:0.1.0 .
#   docker run --read-only --tmpfs /data:uid=65532,gid=65532 -p 8080:8080 doorbuster:0.1.0
#
# The two base images are plain Debian bookworm roots. `scripts/check-k8s` makes both locally
# (debootstrap + `docker import`) so that CI needs no container registry:
#   doorbuster-build-base:bookworm    gcc, libc6-dev, pkg-config, CA certificates and a stable Rust
#                                     toolchain on PATH (cargo, rustc).
#   doorbuster-runtime-base:bookworm  only what the binary links against (libc6, libgcc-s1), the CA
#                                     bundle for outbound TLS, and a `nonroot` user 65532.
# Elsewhere, any image with those contents will do: pass
#   --build-arg BUILD_BASE=rust:1.95-bookworm --build-arg RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
# (docs/acr-build.yaml, used by docs/DEPLOY-AKS.md, does exactly that).

# checkov:skip=CKV_DOCKER_7: both FROM lines use these ARGs, whose defaults carry a tag (:bookworm); checkov does not resolve ARGs
ARG BUILD_BASE=doorbuster-build-base:bookworm
ARG RUNTIME_BASE=doorbuster-runtime-base:bookworm

# ---- build ---------------------------------------------------------------------------------------
FROM ${BUILD_BASE} AS build
WORKDIR /src

# Only what the binary is compiled from (templates, static files, migrations and the seeded catalog
# are embedded at compile time), so edits to docs, tests or manifests do not invalidate this layer.
COPY Cargo.toml Cargo.lock build.rs askama.toml ./
COPY vendor ./vendor
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY seed ./seed

# The registry and the target directory are cache mounts with ids of their own, so a rebuild after a
# code change recompiles only this crate, and other projects on the same builder do not share them.
# The binary is copied out of the cache mount, which is not part of the image.
RUN --mount=type=cache,id=doorbuster-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=doorbuster-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=doorbuster-target,target=/src/target \
    CARGO_HOME=/usr/local/cargo cargo build --release --locked --bin doorbuster \
    && install -D -m 0755 target/release/doorbuster /out/usr/local/bin/doorbuster \
    && install -d -m 0750 /out/data

# ---- runtime -------------------------------------------------------------------------------------
FROM ${RUNTIME_BASE}

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="doorbuster" \
      org.opencontainers.image.description="A Black Friday storefront that is also a load target and a Kubernetes autoscaling sample workload" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/doorbuster/doorbuster"

COPY --from=build /out/usr/local/bin/doorbuster /usr/local/bin/doorbuster
# The SQLite file lives under /data, the one place the process writes: mount a volume (Kubernetes:
# an emptyDir) there and the root filesystem can be read-only.
COPY --from=build --chown=65532:65532 /out/data /data

# The container defaults: JSON logs for collectors, SQLite under /data. Kubernetes manifests and
# `docker run -e` override any of them (see the README's configuration table).
ENV DATABASE_URL=sqlite:///data/doorbuster.db \
    LOG_FORMAT=json \
    PORT=8080

# A numeric user, so `runAsNonRoot` can be verified without reading /etc/passwd.
USER 65532:65532
WORKDIR /data

# 8080: the shop (pages, API, /healthz, /readyz). 9090: the admin port (Prometheus /metrics),
# which the public Service does not expose.
EXPOSE 8080 9090

# No HEALTHCHECK: the image has no shell or HTTP client to run one, and Kubernetes ignores it in
# favour of the liveness and readiness probes on /healthz and /readyz.
# checkov:skip=CKV_DOCKER_2: Kubernetes probes /healthz and /readyz; Docker HEALTHCHECK is unused there and the image has no client to run one
ENTRYPOINT ["/usr/local/bin/doorbuster"]
CMD ["serve"]
