//! The sensor pipeline's message contract (version 1) and its pure processing logic.
//!
//! Nothing here does I/O; the services wrap it with Kafka.
//!
//! - [`reading`]: the input record, and decoding raw Kafka records into validated [`Reading`]s
//!   with a precise reason for each unusable one.
//! - [`event`]: the output records, [`Alert`] and [`Average`], and their JSON encoding.
//! - [`window`]: one sensor's sliding window of the last `window_size` temperatures.
//! - [`state`]: the processing rules, and what one reading does to its sensor's window.
//! - [`model`]: a sensor's online model: a one-step forecast with an interval, and the
//!   outlier, stuck-value and gap detectors.
//! - [`reference`]: a deliberately naive model of the processing semantics, used by tests and
//!   audits to check the real code.

pub mod event;
pub mod model;
pub mod reading;
pub mod reference;
pub mod state;
pub mod window;

pub use event::{Alert, Average, Event};
pub use reading::{DecodeError, DecodeOptions, RawRecord, Reading};
pub use state::ProcessingRules;
pub use window::Window;

/// Longest accepted sensor id, in bytes.
pub const MAX_SENSOR_ID_BYTES: usize = 128;

/// Absolute zero in °C: no real temperature is below it.
pub const ABSOLUTE_ZERO_C: f64 = -273.15;
