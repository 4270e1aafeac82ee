//! The network-log pipeline's counting job, on the stream engine: requests per IP address per
//! tumbling window of event time, each (window, IP) count emitted once, final, when the
//! partition's stream time passes the window's end plus the allowed lateness (Kafka Streams'
//! `windowedBy(...).count().suppress(untilWindowCloses(...))`). Records later than that are
//! rejected with the reason, so the engine dead-letters them.
//!
//! Its input is the repartitioned stream: key = the IP address, value = the request's event
//! time in ms since the epoch (decimal ASCII), so that every request of one address reaches one
//! partition and its counts are global. Extracting addresses from log lines, the gateway and the
//! repartitioning step are the rest of the network-log pipeline (not built yet).
//!
//! - [`job`]: the job.
//! - [`reference`]: the naive model it is held to: a counter per window, with the same lateness
//!   rule.

pub mod audit;
pub mod extract;
pub mod job;
pub mod lines;
pub mod metrics;
pub mod reference;
pub mod service;

pub use job::{Count, CountJob, Unusable, WindowRules};
