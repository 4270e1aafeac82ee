//! An exactly-once stream engine for Kafka: it runs a [`Job`] over an input topic in a
//! consumer group, with keyed state per assigned partition, and owns everything around the
//! job: batches, Kafka transactions, the state changelog with checkpoints, restore before
//! processing, rollback on abort, dead letters, rebalances, metrics, health and readiness.
//!
//! The job ([`job`]): decode a record or say why it is unusable, name its key, apply it to
//! the key's state emitting outputs, encode and decode the state, and optionally act when a
//! partition's stream time advances. [`run`] does the rest.
//!
//! Pure parts (no Kafka, unit- and property-tested):
//! - [`job`]: the job interface.
//! - [`outputs`]: the records a job emits, collected without allocation per record.
//! - [`store`]: keyed state per partition, undo log, stream time.
//! - [`task`]: a job with its store: what one record does; the changelog records of a batch.
//! - [`codec`]: the changelog's versioned record format and partition checkpoints.
//! - [`dead_letters`]: the headers of a dead letter.
//!
//! Kafka parts:
//! - [`settings`]: what the engine needs to know, and the [`Guarantee`].
//! - [`clients`]: consumer and producer configuration, with guarded properties.
//! - [`deliveries`]: the producer, its delivery reports counted in its callback.
//! - [`changelog`]: creating the changelog topic, reading a partition back.
//! - `restore`: restores under way, on tracked, cancellable blocking threads.
//! - `transactions`: the transactional producer calls and their error classes.
//! - `context`: the consumer context (assignment changes, lag).
//! - `worker`: the batch loop, and [`Commit`](worker) strategy per guarantee.
//! - `engine`: set-up, the loop, and a clean stop: [`run`].
//! - [`metrics`]: metric names (the job's) and how a batch is counted.

pub mod changelog;
pub mod clients;
pub mod codec;
pub mod dead_letters;
pub mod job;
pub mod metrics;
pub mod outputs;
pub mod settings;
pub mod store;
pub mod task;

mod bad_input;
mod context;
pub mod deliveries;
mod engine;
mod error;
mod progress;
mod restore;
mod transactions;
mod watchdog;
mod worker;

pub use engine::run;
pub use error::BatchError;
pub use job::{ApplyContext, InputRecord, Job, Rejection};
pub use metrics::MetricNames;
pub use outputs::{OutputRecord, Outputs};
pub use settings::{EngineSettings, Guarantee};
pub use store::PartitionView;
pub use task::{Processed, Task};
