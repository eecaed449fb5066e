# jobherd container image: a release build of the `jobherd` binary on distroless.
#
#   docker build -t jobherd:0.1.0 .
#   minikube image build -t jobherd:0.1.0 .
#
# Build stage and runtime stage are both Debian 12 (bookworm), so the binary is
# linked against the same glibc it runs on. TLS is rustls + ring (see Cargo.toml):
# no OpenSSL at build or run time.
#
# Base images are pinned by tag. For production, pin them by digest as well
# (FROM image:tag@sha256:...) and let a bot such as Renovate bump the digests;
# this repository cannot resolve digests in its CI (no registry access), so it
# does not invent them.

# ---------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build

WORKDIR /src
# The binary is linked statically (glibc's crt-static, for the build machine's own
# target, so build scripts and proc macros stay dynamic): packed children copy it into
# their own images and run it as their entrypoint (JOBHERD_PACK=indexed), whatever libc
# those images have, if any.
ENV CARGO_INCREMENTAL=0 \
    CARGO_TERM_COLOR=never \
    RUSTFLAGS="-C target-feature=+crt-static"

# 1. Dependencies only: this layer is rebuilt only when Cargo.toml, Cargo.lock
#    or the benches change, not on every source edit. The dummy targets give
#    cargo something to compile; a real lib.rs or main.rs replaces them below.
#    Cargo.toml declares a [[bench]] target, and cargo needs its file to read
#    the manifest (benches are not built here). build.rs (the commit and the
#    Kubernetes API version `jobherd --version` prints) is part of the package.
#    Any other file the manifest names (a [[test]] with harness = false) must
#    be copied here too and allowed in .dockerignore.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --target "$(uname -m)-unknown-linux-gnu" \
    && rm -rf src

# 2. The real sources. `touch` makes their mtimes newer than the dummy build's
#    outputs (COPY keeps the build context's mtimes, which may be older), so
#    cargo rebuilds the jobherd crate instead of shipping the dummy binary.
#    .git is not in the build context: the commit `jobherd --version` prints
#    comes from REVISION (declared here, so that it does not invalidate the
#    dependencies' layer above).
COPY src ./src
ARG REVISION=unknown
RUN find src -name '*.rs' -exec touch {} + \
    && JOBHERD_BUILD_REVISION="${REVISION}" cargo build --release --locked \
        --target "$(uname -m)-unknown-linux-gnu" \
    && cp "target/$(uname -m)-unknown-linux-gnu/release/jobherd" /jobherd

# ---------------------------------------------------------------------------
# Runtime: glibc + libgcc + CA certificates + /etc/passwd entry for nonroot,
# no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z

LABEL org.opencontainers.image.title="jobherd" \
      org.opencontainers.image.description="Runs as the parent Job of a Kubernetes CronJob: fans out child Jobs, follows them, exits with the aggregate result." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /jobherd /jobherd

# distroless "nonroot" (65532:65532); numeric so that Kubernetes' runAsNonRoot
# can verify it without reading /etc/passwd.
USER 65532:65532

# No HEALTHCHECK: jobherd is a run-to-completion batch process, not a
# service; Kubernetes ignores Docker HEALTHCHECK and judges it by its exit code.
ENTRYPOINT ["/jobherd"]
