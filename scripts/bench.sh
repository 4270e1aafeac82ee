#!/usr/bin/env bash
# Throughput of both processing guarantees on a real local broker (started and stopped by the
# benchmark). Not part of the test command. BENCH_READINGS (300000) and BENCH_SENSORS (10000)
# size the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "==> building release binaries" >&2
cargo build --release --locked --bins
scripts/kafka.sh fetch
cargo bench --locked -p e2e-tests --bench guarantees
