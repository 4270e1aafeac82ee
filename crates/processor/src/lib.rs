//! The processor: the temperature job on the stream engine. Consumes readings in a consumer
//! group, keeps a sliding window per sensor, and writes alerts and averages (and dead letters
//! for unusable input) back to Kafka, exactly once.
//!
//! - [`job`]: the temperature job: decode a reading, update its sensor's window, emit alerts
//!   and averages; the window's changelog encoding.
//! - [`settings`]: the `[processor]` settings and the command line, and the engine settings
//!   they make.
//! - [`metrics`]: the job's metric names.
//! - [`scorer`]: an optional ONNX model scoring each sensor's window (feature `onnx`).
//! - [`hot_path`]: the per-record work without Kafka, for benchmarks.
//! - [`audit`]: checks an output topic against the reference semantics of its input.

pub mod audit;
pub mod hot_path;
pub mod job;
pub mod metrics;
pub mod scorer;
pub mod settings;

pub use settings::{Cli, Config, ProcessorSettings};
pub use stream_engine::Guarantee;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

/// Runs the temperature job until `shutdown` fires, then commits what it has processed,
/// leaves the group and returns. An error means it could not go on safely (see
/// [`stream_engine::run`]): its supervisor restarts it.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = &config.processor;
    let mut job = job::TemperatureJob::new(settings.rules(), settings.decode_options());
    let anomalies = &settings.anomalies;
    if anomalies.enabled {
        job = job.with_anomalies(anomalies.model(), anomalies.prediction_every);
    }
    if !anomalies.onnx_model.is_empty() {
        let scorer = scorer::Scorer::load(
            std::path::Path::new(&anomalies.onnx_model),
            settings.window_size,
        )
        .with_context(|| {
            format!(
                "configuration key `processor.anomalies.onnx_model`: `{}`",
                anomalies.onnx_model
            )
        })?;
        job = job.with_scorer(std::sync::Arc::new(scorer), anomalies.onnx_threshold);
    }
    tracing::info!(
        window_size = settings.window_size,
        threshold = settings.threshold,
        anomalies = anomalies.enabled,
        anomalies_topic = anomalies.enabled.then_some(anomalies.topic.as_str()),
        onnx_model = (!anomalies.onnx_model.is_empty()).then_some(anomalies.onnx_model.as_str()),
        "temperature job"
    );
    stream_engine::run(job, &config.kafka, &config.engine(), shutdown).await
}
