#!/usr/bin/env bash
# The Docker part of scripts/test.sh, which runs it beside the native tests: make `docker
# compose` work (scripts/docker.sh), build the image as a user does (`docker compose build`),
# then run the two Docker tests (tests/tests/e2e/compose_stack.rs) with nextest's docker profile.
# Its steps go into test.sh's table (RUN_DIR in the environment); alone it prints its own.
#
#   scripts/docker-tests.sh [NAME]    NAME: only the Docker tests whose name contains it
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OWN_RUN_DIR=""
if [[ -z "${RUN_DIR:-}" ]]; then
  RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/sensor-pipeline-docker-tests.XXXXXX")"
  OWN_RUN_DIR=1
fi
# shellcheck source=scripts/steps.sh
source "$ROOT/scripts/steps.sh"
on_exit() {
  local rc=$?
  steps_finish "$rc"
  if [[ -n "$OWN_RUN_DIR" ]]; then
    steps_report "$ROOT/target/nextest/docker/junit.xml"
    rm -rf "$RUN_DIR"
  fi
  exit "$rc"
}
trap on_exit EXIT

# The same compile as scripts/test.sh's (clippy-driver as the workspace's wrapper), so that
# running this alone after test.sh compiles nothing again.
if [[ -z "${RUSTC_WORKSPACE_WRAPPER:-}" ]]; then
  RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
  export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi

step "Docker: engine, Compose v2, base images, the image (BuildKit)"
COMPOSE="$(scripts/docker.sh --image)"
export COMPOSE

# The user's build: from BuildKit's cache when docker.sh built the image already, cold
# otherwise. The compose test builds again (from the cache) and checks what it built.
step "Docker: the image (docker compose build)"
# shellcheck disable=SC2086 # COMPOSE is "docker compose" or "docker-compose"
$COMPOSE -p sensor-e2e build

step "Docker tests (compose stack; the image on a secured broker)"
PATH="$(scripts/tools.sh):$PATH"
cargo nextest run --workspace --locked --profile docker --run-ignored only \
  -E 'test(/^compose_stack::/)' --no-tests=warn "$@"
