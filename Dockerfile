# One image for every service: `processor` (default), `sensor-simulator`, `log-gateway`,
# `log-simulator`, `ip-counter`, `pg-sink`, `dashboard`, and the `sensor-audit` and `ip-audit`
# commands.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka, SQLite and jemalloc are built from the sources bundled in rdkafka-sys,
# libsqlite3-sys and tikv-jemalloc-sys (a C toolchain, perl and make); OpenSSL is Debian's (libssl-dev here, libssl3 in the
# runtime image, patched with Debian's updates); ca-certificates are the trusted CAs when
# kafka.tls.ca_file is unset.
# Only what the build reads, so a change to the README or the scripts does not rebuild. tests/ is
# a workspace member: cargo reads its manifest and targets even when it does not build them.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY crates crates
COPY tests tests
COPY scripts/source-times.sh /usr/local/bin/
# target/ lives in a cache mount, and cargo judges the project's own crates fresh by file times,
# which say nothing reliable here (a fresh clone makes every file new, an older checkout makes
# changed files old, and cargo would ship the cached binaries). source-times.sh makes them say
# what the content says: files unchanged since the last successful build get a time long past,
# changed ones the present, so cargo rebuilds exactly the crates whose sources changed and the
# image always holds what its context says. `sharing=locked`: builds of the same cache take
# turns, so two never read and record the sums at once.
# Extra cargo features, e.g. `--build-arg CARGO_FEATURES=processor/onnx` for the processor's ONNX
# scorer (tract adds minutes to a cold build, so the default image goes without).
ARG CARGO_FEATURES=""
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    source-times.sh target Cargo.toml Cargo.lock clippy.toml crates tests \
    && cargo build --release --locked -p processor -p sensor-simulator -p log-gateway \
       -p log-simulator -p ip-count -p pg-sink -p dashboard \
       ${CARGO_FEATURES:+--features "$CARGO_FEATURES"} \
    && source-times.sh --record target Cargo.toml Cargo.lock clippy.toml crates tests \
    && mkdir -p /out \
    && cp target/release/processor target/release/sensor-audit target/release/sensor-simulator \
       target/release/log-gateway target/release/log-simulator target/release/ip-counter \
       target/release/ip-audit target/release/pg-sink target/release/dashboard /out/

FROM debian:bookworm-slim
# curl: for the compose healthchecks on /healthz.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home pipeline
COPY --from=build /out/ /usr/local/bin/
COPY config /app/config
WORKDIR /app
ENV PIPELINE_CONFIG=/app/config/docker.toml
USER 10001
CMD ["processor"]
