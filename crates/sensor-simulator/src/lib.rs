//! The sensor simulator: publishes seeded, realistic temperature readings to Kafka.
//!
//! - [`settings`]: the `[simulator]` settings and the command line.
//! - [`generator`]: the pure, seeded stream of readings (realistic or uniform).
//! - [`faults`]: labelled faults injected into it (spikes, shifts, drift, stuck values, noise,
//!   dropouts), for scoring a detector.
//! - [`evaluation`]: scoring a detector against the faults' ground truth.
//! - [`source`]: the labelled stream a run sends (generator through injector), and [`print`]
//!   of it as JSON lines, for training a model offline.
//! - [`publisher`]: the idempotent Kafka producer loop with pacing, progress and summary.

pub mod evaluation;
pub mod faults;
pub mod generator;
pub mod publisher;
pub mod settings;
pub mod source;

pub use faults::{FaultKind, FaultSettings, Injector};
pub use generator::{Generator, Profile};
pub use publisher::{Summary, run};
pub use settings::{Cli, Config, SimulatorSettings};
pub use source::{Source, print};
