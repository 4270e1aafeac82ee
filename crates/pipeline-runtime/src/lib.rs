//! What every service shares, written once: the scaffolding around a service's own work.
//!
//! - [`cli`]: the flags every service has (`--config`, `--brokers`, `--http-address-file`).
//! - [`settings`]: layered configuration (file, `PIPELINE__` environment, flags) with errors
//!   that name the key at fault, and the shared `[kafka]` and `[telemetry]` sections.
//! - [`security`]: TLS and SASL settings, checked at start, as librdkafka properties; and
//!   [`secret`], a value whose `Debug` is `***`.
//! - [`telemetry`]: the `tracing` subscriber (text or JSON), set up once per process.
//! - [`kafka`]: client configuration (with the properties a guarantee depends on guarded),
//!   enqueueing with back-off, and the client context that routes librdkafka's logs into
//!   `tracing`; [`rebootstrap`], which gives a client its bootstrap servers back when it has
//!   lost every broker.
//! - [`shutdown`]: SIGTERM and Ctrl-C as a cancellation token.
//! - [`endpoints`]: `/metrics`, `/healthz` and `/readyz` over HTTP.
//! - [`allocator`]: jemalloc, for every binary that links this crate, librdkafka included.

pub mod allocator;
pub mod audit_read;
pub mod cli;
pub mod endpoints;
pub mod kafka;
pub mod rebootstrap;
pub mod secret;
pub mod security;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

/// Exit code for bad configuration or bad command-line arguments (as `clap` uses).
pub const EXIT_BAD_CONFIG: i32 = 2;
