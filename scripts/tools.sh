#!/usr/bin/env bash
# Installs the offline validators the tests call for the Kubernetes manifests, pinned, into
# ~/.cache/sensor-pipeline/bin (nothing system-wide):
#   kustomize            from the Go module proxy (renders deploy/kubernetes)
#   kubernetes-validate  from PyPI, with the Kubernetes JSON schemas bundled (no network at use)
# Prints the bin directory; scripts/test.sh puts it on PATH. Reruns are no-ops.
set -euo pipefail

KUSTOMIZE_VERSION=v5.7.1
KUBERNETES_VALIDATE_VERSION=1.37.0
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sensor-pipeline"
BIN="$CACHE/bin"
mkdir -p "$BIN"

if [[ "$("$BIN/kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]]; then
  command -v go >/dev/null || { echo "tools.sh: go is needed to build kustomize" >&2; exit 1; }
  echo "==> installing kustomize $KUSTOMIZE_VERSION" >&2
  GOBIN="$BIN" GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
fi

VENV="$CACHE/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [[ ! -x "$VENV/bin/kubernetes-validate" ]]; then
  echo "==> installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi
ln -sf "$VENV/bin/kubernetes-validate" "$BIN/kubernetes-validate"

echo "$BIN"
