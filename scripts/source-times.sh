#!/usr/bin/env bash
# Makes cargo judge the project's sources fresh by their content, not by their file times: the
# image build (Dockerfile) runs it before `cargo build`, with target/ in a BuildKit cache mount
# that outlives the build.
#
#   scripts/source-times.sh TARGET_DIR PATH...
#
# Cargo rebuilds a crate when one of its files is newer than its last compile. A context's file
# times say nothing reliable: a fresh clone makes every file new (everything rebuilds), and an
# older checkout makes changed files old (cargo would ship the cached binaries). So every file
# under PATH gets a time long past, and those whose content differs from the last successful
# build's (their SHA-256 sums, kept in TARGET_DIR) get the present time: cargo rebuilds exactly
# the crates whose sources changed. After a successful build, `--record` keeps the sums:
#
#   scripts/source-times.sh --record TARGET_DIR PATH...
set -euo pipefail
export LC_ALL=C

RECORD=""
if [[ "${1:-}" == --record ]]; then
  RECORD=1
  shift
fi
[[ $# -ge 2 ]] || { echo "usage: source-times.sh [--record] TARGET_DIR PATH..." >&2; exit 2; }
TARGET="$1"
shift
BUILT="$TARGET/source-sums"
mkdir -p "$TARGET"

sums() { find "$@" -type f -print0 | sort -z | xargs -0 sha256sum; }

if [[ -n "$RECORD" ]]; then
  sums "$@" >"$BUILT.new"
  mv "$BUILT.new" "$BUILT"
  exit 0
fi

find "$@" -type f -exec touch -d '2000-01-01 00:00:00' {} +
# Lines (sum and path) in today's sums but not in the last build's: changed or new files.
changed="$(comm -13 <(sort "$BUILT" 2>/dev/null || true) <(sums "$@" | sort) | cut -c67-)"
if [[ -n "$changed" ]]; then
  printf '%s\n' "$changed" | tr '\n' '\0' | xargs -0 touch
  echo "source-times.sh: $(printf '%s\n' "$changed" | wc -l) file(s) changed since the last build" >&2
else
  echo "source-times.sh: no file changed since the last build" >&2
fi
