#!/usr/bin/env bash
# The performance benchmark (not part of the test command): the passthrough ceiling, the
# processor's throughput per guarantee with 1 and 2 replicas, end-to-end latency at half load,
# memory with 100 000 and 1 000 000 sensors, and the hot path without Kafka, on a real local
# broker it starts and stops. Prints one table; writes it as JSON to target/bench/pipeline.json.
# About 5 minutes on 2 cores. Sizes: BENCH_READINGS, BENCH_SENSORS, BENCH_LATENCY_SECS,
# BENCH_STATE_SENSORS, BENCH_JSON (see tests/benches/pipeline.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "==> building release binaries" >&2
cargo build --release --locked --bins
scripts/kafka.sh fetch
# The Kafka Streams baselines (bench/kafka-streams): Kafka Streams and its dependencies from
# Maven Central, compiled once, run from target/classes and target/lib.
build_streams() {
  echo "==> building the Kafka Streams baselines (bench/kafka-streams)" >&2
  mvn -B -q -f bench/kafka-streams/pom.xml package >&2
}
# `scripts/bench.sh logs`: the network-log pipeline's benchmark only (the gateway per protocol,
# the IP-count job and the same job on Kafka Streams, tests/benches/log_pipeline.rs, about 5
# minutes; BENCH_LINES lines, default 1 000 000).
if [[ "${1:-}" == logs ]]; then
  build_streams
  cargo bench --locked -p e2e-tests --bench log_pipeline
  exit
fi
# `scripts/bench.sh latency`: the latency–throughput curve of the temperature job, the processor
# (both guarantees, 1 and 2 replicas) and Kafka Streams (both guarantees) at 10-90 % of each
# one's measured capacity (tests/benches/pipeline/curve.rs, about 15 minutes; BENCH_READINGS
# for the capacity runs, default 1 000 000; BENCH_LATENCY_SECS per point, default 10). Writes
# target/bench/latency.json and the plot target/bench/latency.svg.
if [[ "${1:-}" == latency ]]; then
  build_streams
  BENCH_CURVE=1 cargo bench --locked -p e2e-tests --bench pipeline
  exit
fi
# `scripts/bench.sh anomalies`: the online model and an ONNX model (trained by models/train.py
# with models-python, which scripts/tools.sh installs) against the fixed threshold on labelled
# faults, and their CPU cost (tests/benches/anomalies.rs, about 3 minutes; BENCH_READINGS).
if [[ "${1:-}" == anomalies ]]; then
  PATH="$(scripts/tools.sh):$PATH"
  cargo bench --locked -p e2e-tests --bench anomalies
  exit
fi
build_streams
cargo bench --locked -p e2e-tests --bench pipeline
