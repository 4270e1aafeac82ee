#!/usr/bin/env bash
# Makes `docker compose` work on this machine for the compose end-to-end test, the way a user's
# machine has it: a running Docker engine, the Compose v2 CLI plugin, and the base images the
# project names. Each step is skipped when already done, so a second run takes a
# second.
#
#   scripts/docker.sh [--image]
#                         prints the compose command to use ("docker compose", or Debian's
#                         "docker-compose" when Compose v2 could not be built: reported on stderr);
#                         --image also builds the project's image as soon as its base images are
#                         there, while Compose still compiles (see below)
#
# - Engine: Debian's docker.io when no `dockerd` is installed; dockerd started in the background
#   (log: $STATE/dockerd.log) when `docker info` cannot reach one.
# - Compose v2: built from the Go module proxy (no other download site is reachable on the
#   development machines) into ~/.docker/cli-plugins. It builds images with BuildKit through
#   buildx's library, in process, so the buildx plugin is not needed (it was built here too, for
#   a `docker build` the compose test now does through Compose: 3-4 minutes of two cores saved).
# - Base images: tests/fixtures/images/build.sh builds stand-ins under the tags the project names
#   when no registry is reachable (see its README).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_VERSION="${COMPOSE_VERSION:-v2.29.7}"
STATE="${XDG_CACHE_HOME:-$HOME/.cache}/sensor-pipeline/docker"
PLUGINS="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$STATE" "$PLUGINS"
IMAGE=""
[[ "${1:-}" == --image ]] && IMAGE=1

step() { echo "==> docker.sh: $*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  step "installing $* from Debian"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- the engine -----------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || apt_install docker.io
  if ! pgrep -x dockerd >/dev/null; then
    step "starting dockerd (log: $STATE/dockerd.log)"
    # A session of its own: the engine outlives the script and whatever started it.
    as_root bash -c "setsid nohup dockerd >'$STATE/dockerd.log' 2>&1 &"
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log" >&2; echo "docker.sh: the engine did not start" >&2; exit 1; }
fi
step "engine $(docker version --format '{{.Server.Version}}')"

# --- CLI plugins from the Go module proxy -----------------------------------------------------
# go_plugin NAME MODULE_PATH VERSION VERSION_VARIABLE: builds MODULE_PATH@VERSION into
# cli-plugins/docker-NAME, stamped with its version as the projects' release builds do (a plain
# `go install` says "dev", and the check above would rebuild it on every run).
go_plugin() {
  local name="$1" package="$2" version="$3" variable="$4" bin
  bin="$(mktemp -d "${TMPDIR:-/tmp}/docker-plugin.XXXXXX")"
  step "building docker $name $version from the Go module proxy (a few minutes the first time)"
  # A test tool, built once per machine, so built for a short build: -s -w (no symbol table or
  # DWARF: a shorter link), -N -l (no optimisation or inlining: Compose waits on the engine,
  # not on its own code) and no cgo (as Compose's own release builds). Compose v2.29.7 on two
  # cores, a cold Go cache: 180 CPU-seconds as before, 130 so (2026-12-07).
  if CGO_ENABLED=0 GOBIN="$bin" GOFLAGS=-mod=mod go install -gcflags=all="-N -l" \
    -ldflags="-s -w -X $variable=$version" "$package@$version" >"$STATE/$name-build.log" 2>&1; then
    install -m 0755 "$bin/$(basename "$package")" "$PLUGINS/docker-$name"
    rm -rf "$bin"
    return 0
  fi
  tail -5 "$STATE/$name-build.log" >&2
  rm -rf "$bin"
  return 1
}

# --- base images, beside the Go builds (they wait on the network, Go on the CPU) ---------------
# With --image, the project's image follows them at once: Compose's Go build takes minutes, and
# Debian's docker CLI (docker.io's /usr/bin/docker, BuildKit built in) can build the Dockerfile
# without it. Compose's own build later finds every step in the engine's BuildKit cache (seen:
# 0.6 s), so what the compose test then runs is the user's `docker compose build` for real.
command -v debootstrap >/dev/null || docker image inspect debian:bookworm-slim >/dev/null 2>&1 \
  || apt_install debootstrap
step "building the base images${IMAGE:+ and then the image} in the background (log: $STATE/base-images.log)"
tag="$(sed -n 's/^ *image: \(sensor-pipeline:[^ ]*\)/\1/p' "$ROOT/docker-compose.yml" | head -1)"
(
  "$ROOT/tests/fixtures/images/build.sh"
  if [[ -n "$IMAGE" && -n "$tag" && -x /usr/bin/docker ]]; then
    echo "==> building $tag with BuildKit (Debian's docker CLI)"
    DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain -t "$tag" "$ROOT"
  fi
) >"$STATE/base-images.log" 2>&1 &
base_images=$!

compose=(docker compose)
if ! docker compose version 2>/dev/null | grep -q "${COMPOSE_VERSION#v}"; then
  if ! command -v go >/dev/null || ! go_plugin compose github.com/docker/compose/v2/cmd "$COMPOSE_VERSION" \
    github.com/docker/compose/v2/internal.Version; then
    echo "docker.sh: FALLBACK: Compose v2 did not build ($STATE/compose-build.log); using Debian's docker-compose" >&2
    command -v docker-compose >/dev/null || apt_install docker-compose
    compose=(docker-compose)
  fi
fi
step "$("${compose[@]}" version | head -1)"

if ! wait "$base_images"; then
  tail -20 "$STATE/base-images.log" >&2
  echo "docker.sh: the base images${IMAGE:+ or the image} did not build ($STATE/base-images.log)" >&2
  exit 1
fi
grep '^==> base images' "$STATE/base-images.log" >&2 || true

echo "${compose[*]}"
