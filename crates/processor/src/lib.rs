//! The processor: consumes readings in a consumer group, keeps a sliding window per sensor,
//! and writes alerts and averages (and dead letters for unusable input) back to Kafka.
//!
//! - [`settings`]: the `[processor]` settings and the command line.
//! - [`windows`]: pure: per-partition sensor state, what one record does to it, the undo log
//!   and the changelog encoding.
//! - [`hot_path`]: the per-record work without Kafka, for benchmarks.
//! - [`changelog`]: the compacted window-state topic: creating it, restoring a partition.
//! - [`metrics`]: the Prometheus metrics and how a batch is counted.
//! - [`rebalance`]: the consumer context that reports partition assignments to the loop.
//! - [`audit`]: checks an output topic against the reference semantics of its input.
//! - [`bad_input`]: rate-limited logging of unusable records.
//! - [`transactions`]: the transactional producer calls and their error classes.
//! - [`service`]: the consume → process → produce → commit loop, in transactions or not.

pub mod audit;
pub mod bad_input;
pub mod changelog;
pub mod hot_path;
pub mod metrics;
pub mod rebalance;
pub mod service;
pub mod settings;
pub mod transactions;
pub mod windows;

pub use service::run;
pub use settings::{Cli, Config, Guarantee, ProcessorSettings};
