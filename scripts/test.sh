#!/usr/bin/env bash
# The one test command. On a fresh machine it installs what the tests need; it checks formatting,
# compiles the workspace once with clippy's lints, and runs every unit, property and end-to-end
# test against a real Apache Kafka broker, a real PostgreSQL server, Chromium and Docker. At the
# end it prints how long each step took and the ten slowest tests.
#
#   scripts/test.sh             everything (what CI runs)
#   scripts/test.sh --quick     formatting, lints, unit and property tests, and one end-to-end
#                               smoke test per service; no Docker (the inner loop)
#   scripts/test.sh --no-docker everything but the two Docker tests
#   scripts/test.sh -- NAME     only the tests whose name contains NAME
#
# As root it installs the Debian packages it needs; anyone else is told which ones are missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=""
NO_DOCKER=""
FILTER=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --no-docker) NO_DOCKER=1; shift ;;
    --) shift; FILTER=("$@"); break ;;
    *) echo "test.sh: unknown argument '$1' (usage: scripts/test.sh [--quick | --no-docker] [-- NAME])" >&2; exit 2 ;;
  esac
done
PROFILE=default
[[ -z "$QUICK" ]] || PROFILE=quick
# The two Docker tests run last and only when nothing filters them out.
DOCKER_TESTS="compose_stack_as_a_user_runs_it the_image_connects_to_a_secured_broker_over_sasl_ssl"
DOCKER=""
if [[ -z "$QUICK$NO_DOCKER" ]] && { [[ ${#FILTER[@]} -eq 0 ]] || [[ "$DOCKER_TESTS" == *"${FILTER[0]}"* ]]; }; then
  DOCKER=1
fi

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sensor-pipeline-test.XXXXXX")"
# shellcheck source=scripts/steps.sh
source "$ROOT/scripts/steps.sh"

KAFKA_DIR="$RUN_DIR/kafka"
# Not under RUN_DIR (private to us): as root, the server runs as the `postgres` user.
POSTGRES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sensor-pipeline-test-postgres.XXXXXX")"
# boost_compile NICE: sets this session's autogroup nice value (as root, where the kernel has
# autogroups; otherwise nothing).
boost_compile() {
  [[ $(id -u) -eq 0 && -w /proc/self/autogroup ]] || return 0
  echo "$1" 2>/dev/null >/proc/self/autogroup || true
}
cleanup() {
  boost_compile 0
  scripts/kafka.sh stop --dir "$KAFKA_DIR" >/dev/null 2>&1 || true
  scripts/postgres.sh stop --dir "$POSTGRES_DIR" >/dev/null 2>&1 || true
  rm -rf "$POSTGRES_DIR"
}
on_exit() {
  local rc=$?
  steps_finish "$rc"
  cleanup
  steps_report "$RUN_DIR"/junit-*.xml "$ROOT/target/nextest/docker/junit.xml"
  rm -rf "$RUN_DIR"
  exit "$rc"
}
trap on_exit EXIT

# --- what the tests need ---------------------------------------------------------------------
step "toolchain and Debian packages"
for tool in cargo rustfmt clippy-driver java mvn python3 go npm; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is missing (see the README's prerequisites)" >&2; exit 1; }
done
# A fresh run needs about 10 GB (the debug target, the Docker image and its build cache): say so
# before it fails half-way with "No space left on device".
free_kb="$(df -Pk . | awk 'NR==2 {print $4}')"
[[ "$free_kb" -ge $((12 * 1048576)) ]] \
  || echo "test.sh: WARNING: $((free_kb / 1048576)) GB free here; a fresh run needs about 10 GB" >&2
# command -> the Debian package that has it
packages=(chromium:chromium promtool:prometheus prometheus:prometheus docker-compose:docker-compose
  openssl:openssl ip:iproute2 iptables:iptables logger:bsdutils)
[[ -n "$QUICK" ]] && packages=(chromium:chromium openssl:openssl)
missing=()
for entry in "${packages[@]}"; do
  command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}")
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The build links the system's OpenSSL (Cargo.toml).
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
if [[ -n "$DOCKER" ]]; then
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: these Debian packages are missing: ${missing[*]}" >&2
    echo "test.sh: install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "    installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# clippy-driver compiles the workspace's own crates (dependencies are compiled by rustc as
# always) and applies the lints while it does: one compile serves `cargo clippy --all-targets
# -- -D warnings` and the test binaries, where a separate `cargo clippy` run checked every crate
# a second time. Every cargo call of this run (the Docker tests' too) uses the same wrapper, so none compiles anything again.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" \
  || { echo "test.sh: clippy-driver is missing (rustup component add clippy)" >&2; exit 1; }
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# In CI every run starts from a clean clone, so the incremental caches of the workspace's own
# crates are written and never read: extra work in every compile. Set for the whole run (the
# Docker tests' cargo too), or the next cargo call would see another profile and compile again.
if [[ "${CI:-}" == true ]]; then
  export CARGO_INCREMENTAL=0
fi

# Downloads and builds that wait on the network or on Go run beside the Rust build.
background "Kafka jars (Maven Central)" scripts/kafka.sh fetch
background "validators and nextest" scripts/tools.sh
background "browser driver (npm ci)" npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
# Docker's chain is the longest (Compose from source, the base images, the image's
# release build, the compose stack), so it starts first and runs beside everything else; its
# tests wait for the test binary (cargo's build lock) and then run next to the native ones.
export RUN_DIR
[[ -z "$DOCKER" ]] || background "Docker (scripts/docker-tests.sh)" scripts/docker-tests.sh "${FILTER[@]}"

# --- one compile for lints and tests ---------------------------------------------------------
step "formatting"
cargo fmt --all -- --check

step "compiling and linting every target (clippy -D warnings)"
# First call on the two cores. On a fresh machine the image's release build (725 CPU-s cold,
# in the Docker engine) and two Go builds run beside this compile; side by side with them it
# took 1 020 s where it takes about 400 alone, and everything after it waits for it, while the
# image is needed only by the Docker tests. So as root this run's session gets a higher share
# of the CPU while it compiles. Debian's kernels schedule by autogroup (one per session):
# `nice` orders processes only within their session, and the engine and the background
# steps have sessions of their own, so the session's own nice value is what counts.
boost_compile -10
cargo build --workspace --all-targets --locked
boost_compile 0

# --- the real services the tests run against -------------------------------------------------
await "validators and nextest"
PATH="$(scripts/tools.sh):$PATH"
export PATH
await "Kafka jars (Maven Central)"
await "browser driver (npm ci)"
# The tests start a dozen brokers, each living a minute or two at a few thousand records a
# second: C1 alone compiles what they run soon enough, and the C2 compiler and G1's threads
# cost more CPU than they save (scripts/kafka.sh; the brokers of the tests' own inherit it).
export KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
step "starting Kafka and PostgreSQL"
KAFKA_BOOTSTRAP="$(scripts/kafka.sh start --dir "$KAFKA_DIR")"
POSTGRES_URL="$(scripts/postgres.sh start --dir "$POSTGRES_DIR")"
export KAFKA_BOOTSTRAP POSTGRES_URL
echo "    broker at $KAFKA_BOOTSTRAP, PostgreSQL at ${POSTGRES_URL##*@}" >&2

# Runs nextest and keeps its JUnit report (each test's time) for the summary.
nextest() {
  local rc=0
  cargo nextest run --workspace --locked --profile "$PROFILE" --no-tests=warn "$@" || rc=$?
  cp "target/nextest/$PROFILE/junit.xml" "$RUN_DIR/junit-$SECONDS.xml" 2>/dev/null || true
  return "$rc"
}

step "tests ($PROFILE profile: unit, property, end to end)"
nextest "${FILTER[@]}"

if [[ -n "$DOCKER" ]]; then
  step "waiting for the Docker tests"
  await "Docker (scripts/docker-tests.sh)"
  # Their figures and nextest's summary; the whole log was shown above had it failed.
  sed -n '/^────────────/,$p' "$(background_log "Docker (scripts/docker-tests.sh)")" | tail -60 >&2
fi
