//! Test harness for the end-to-end tests: the real broker, the real binaries, the real topics.
//!
//! - [`browser`]: the dashboard page in headless Chromium.
//! - [`broker`]: the shared broker started by `scripts/test.sh`, or a private one per test.
//! - [`topics`]: unique topic names, created with `scripts/create-topics.sh` (as compose does).
//! - [`service`]: the simulator and processor binaries as child processes.
//! - [`supervisor`]: replicas under chaos: killed, stopped, restarted when they exit.
//! - [`pipelines`]: the temperature pipeline under one guarantee, audited at the end.
//! - [`kafka_streams`]: the benchmarks' Kafka Streams baselines, one JVM each.
//! - [`kafka_io`]: producing test records and reading whole topics back.
//! - [`models`]: an ONNX model trained by `models/train.py`, as a user trains one.
//! - [`netns`]: a host of its own in a network namespace, to cut off and reconnect.
//! - [`postgres`]: the shared PostgreSQL server started by `scripts/test.sh`, a fresh database per
//!   test, or a private server to stop and start.
//! - [`results`]: a fresh results store, PostgreSQL or SQLite, and what its tables hold.
//! - [`expect`]: what the reference semantics says a topic's output must be, and the comparison.

pub mod broker;
pub mod browser;
pub mod expect;
pub mod kafka_io;
pub mod kafka_streams;
pub mod models;
pub mod netns;
pub mod pipelines;
pub mod postgres;
pub mod results;
pub mod service;
pub mod supervisor;
pub mod topics;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A random lowercase suffix for names that must not collide between tests.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}
