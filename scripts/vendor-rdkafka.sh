#!/usr/bin/env bash
# Rebuilds vendor/rdkafka-sys: the published rdkafka-sys crate, without librdkafka's tests,
# examples and packaging (the build needs none of them), with the patches in vendor/patches
# applied. Cargo.toml's [patch.crates-io] builds every Kafka client of the workspace from it.
#
# Why: librdkafka 2.12.1 (and 2.15.0, the latest release) skips a produce or fetch answer that
# names no leader for a partition (leader -1, as the only broker answers while it shuts down)
# and leaves the partition on its stale leader for good: a producer stops delivering after a
# graceful restart of a single broker (librdkafka issue #5430). Drop the patch, and this
# directory, once a librdkafka release with the fix is bundled by an rdkafka-sys release.
#
# Usage: scripts/vendor-rdkafka.sh   (downloads the crate from crates.io unless cargo has it)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.10.0+2.12.1
CRATE="rdkafka-sys-$VERSION"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cached=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$CRATE" 2>/dev/null | head -1 || true)
if [[ -n "$cached" ]]; then
  cp -a "$cached" "$WORK/$CRATE"
else
  curl -fsSL "https://static.crates.io/crates/rdkafka-sys/$CRATE.crate" | tar -xz -C "$WORK"
fi
src="$WORK/$CRATE"

# What `make libs` does not read.
rm -rf "$src"/librdkafka/{tests,packaging,examples,win32,debian,.github,.semaphore} \
  "$src"/librdkafka/{Doxyfile,mainpage.doxy,service.yml,vcpkg.json,.gdbmacros,.dir-locals.el} \
  "$src"/{tests,simple_producer.rs,update-bindings.sh,readme_template,Cargo.toml.orig} \
  "$src"/{Cargo.lock,.cargo_vcs_info.json,.cargo-ok}
# Its one integration test is gone with tests/.
python3 - "$src/Cargo.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r'\n\[\[test\]\]\nname = "version_check"\npath = "tests/version_check.rs"\n', '\n', text)
assert '[[test]]' not in text, 'rdkafka-sys declares tests this script does not know'
open(path, 'w').write(text)
PY
for patch in vendor/patches/*.patch; do
  patch -s -p1 -d "$src" < "$patch"
done

rm -rf vendor/rdkafka-sys
mv "$src" vendor/rdkafka-sys
echo "vendor/rdkafka-sys: $CRATE with $(ls vendor/patches/*.patch | wc -l) patch(es), $(du -sh vendor/rdkafka-sys | cut -f1)"
