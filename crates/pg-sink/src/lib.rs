//! `pg-sink`: the pipelines' results in SQLite or PostgreSQL, exactly once. (The name is older
//! than the SQLite store; it stays, since deployments and dashboards know it.)
//!
//! Consumes `temperature-events` and `ip-counts` with `read_committed` and writes each batch as
//! one database transaction holding the rows and the consumed offsets (table
//! `consumed_offsets`). The database, not Kafka, says where each partition stands: on
//! assignment the consumer seeks to the stored offsets, and each transaction skips records
//! below them, read under the write lock. Kafka's committed offsets are updated afterwards, for lag
//! tools only. Kafka Connect's and Flink's JDBC sinks are at least once with upserts; here a
//! record is one row, and a test kills the sink repeatedly to show it.
//!
//! - [`settings`]: `[pg_sink]` and the flags.
//! - [`rows`]: records to rows, and why a record cannot be one (dead-lettered).
//! - [`store`]: the one store interface, PostgreSQL or SQLite by `database_url`: connection,
//!   migrations (`migrations/<database>/`, applied at start), the transaction, the dashboard's
//!   queries.
//! - [`service`]: the consume → write → commit loop.
//! - [`metrics`]: metric names.

pub mod metrics;
pub mod rows;
pub mod service;
pub mod settings;
pub mod store;

pub use service::{Summary, run};
pub use settings::{Cli, Config};
