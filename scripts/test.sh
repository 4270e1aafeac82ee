#!/usr/bin/env bash
# The one command that runs every test: formatting and lints, unit and property tests, and the
# end-to-end tests against a real Apache Kafka broker that this script starts and stops.
#
#   scripts/test.sh            everything
#   scripts/test.sh -- NAME    only tests whose name contains NAME (passed to cargo test)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*" >&2; }

step "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building the services"
cargo build --workspace --bins --locked

step "installing the browser test's driver (playwright-core, pinned in tests/browser)"
command -v chromium >/dev/null || { echo "test.sh: Debian's chromium is needed (apt-get install chromium)" >&2; exit 1; }
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >&2

step "validating docker-compose.yml"
docker-compose -f docker-compose.yml config -q

step "installing the manifest validators (kustomize, kubernetes-validate)"
PATH="$(scripts/tools.sh):$PATH"
export PATH

step "starting a Kafka broker and a PostgreSQL server for the tests"
KAFKA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sensor-pipeline-test-kafka.XXXXXX")"
POSTGRES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sensor-pipeline-test-postgres.XXXXXX")"
cleanup() {
  scripts/kafka.sh stop --dir "$KAFKA_DIR" || true
  scripts/postgres.sh stop --dir "$POSTGRES_DIR" || true
  rm -rf "$KAFKA_DIR" "$POSTGRES_DIR"
}
trap cleanup EXIT
KAFKA_BOOTSTRAP="$(scripts/kafka.sh start --dir "$KAFKA_DIR")"
export KAFKA_BOOTSTRAP
scripts/postgres.sh install
POSTGRES_URL="$(scripts/postgres.sh start --dir "$POSTGRES_DIR")"
export POSTGRES_URL
step "broker at $KAFKA_BOOTSTRAP, PostgreSQL at ${POSTGRES_URL##*@}"

step "running the tests"
[[ "${1:-}" == "--" ]] && shift
cargo test --workspace --locked -- "$@"

# docker compose and the image for real, after the others so they do not share the two cores
# with them: scripts/docker.sh starts the engine and builds what is missing (Compose v2, buildx,
# the base-image stand-ins), then the tests run the user's path and the image against a secured
# broker. Left out only when a NAME filter matches neither.
DOCKER_TESTS="compose_stack_as_a_user_runs_it the_image_connects_to_a_secured_broker_over_sasl_ssl"
if [[ $# -eq 0 || "$DOCKER_TESTS" == *"$1"* ]]; then
  step "docker compose end to end (scripts/docker.sh, then tests/tests/compose_stack.rs)"
  COMPOSE="$(scripts/docker.sh)"
  export COMPOSE
  cargo test -p e2e-tests --locked --test compose_stack -- --ignored --nocapture --test-threads=1 "$@"
fi
