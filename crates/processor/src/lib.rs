//! The processor: consumes readings in a consumer group, keeps a sliding window per sensor,
//! and writes alerts and averages (and dead letters for unusable input) back to Kafka.
//!
//! - [`settings`]: the `[processor]` settings and the command line.
//! - [`routing`]: pure: what one consumed record becomes (events, or a dead letter).
//! - [`rebalance`]: the consumer context that reports partition assignments to the loop.
//! - [`bad_input`]: rate-limited logging of unusable records.
//! - [`service`]: the consume → process → produce → commit loop.

pub mod bad_input;
pub mod rebalance;
pub mod routing;
pub mod service;
pub mod settings;

pub use service::run;
pub use settings::{Cli, Config, ProcessorSettings};
