//! The process-wide `tracing` subscriber: text or JSON lines on stderr, level from `RUST_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, TelemetrySettings};

/// Installs the subscriber at level `info` unless `RUST_LOG` says otherwise. Call once, first
/// thing in `main`; later calls do nothing.
pub fn init(settings: &TelemetrySettings) {
    init_with_default(settings, "info");
}

/// As [`init`], with another filter when `RUST_LOG` is unset.
pub fn init_with_default(settings: &TelemetrySettings, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only for a terminal: piped into a file, a log collector or `grep`, escape codes
    // are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
