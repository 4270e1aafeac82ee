//! Kafka client set-up shared by both services.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, KafkaResult};
use tokio_util::sync::CancellationToken;

use crate::settings::KafkaSettings;

/// A librdkafka configuration for `settings`, named `client_id` in broker logs.
///
/// `defaults` are the service's own choices; the user's `kafka.properties` come last and win.
pub fn client_config(
    settings: &KafkaSettings,
    client_id: &str,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", client_id)
        // Let librdkafka's log lines reach `ClientContext::log`, and so `tracing`.
        .set_log_level(RDKafkaLogLevel::Info);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    config
}

/// Waits until the cluster answers and every topic in `topics` exists, logging what it is
/// waiting for. Returns `false` if `shutdown` fires first.
///
/// Services start before the broker in compose and after crashes; waiting here turns "broker
/// not reachable" into a clear log line instead of an exit.
pub async fn wait_for_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    shutdown: &CancellationToken,
) -> bool {
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let missing = tokio::task::block_in_place(|| missing_topics(client, topics));
        match missing {
            Ok(missing) if missing.is_empty() => {
                tracing::info!(?topics, "Kafka is reachable and the topics exist");
                return true;
            }
            Ok(missing) => tracing::warn!(
                ?missing,
                waited_secs = started.elapsed().as_secs(),
                "waiting for topics to be created"
            ),
            Err(error) => tracing::warn!(
                %error,
                waited_secs = started.elapsed().as_secs(),
                "waiting for Kafka to become reachable"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

fn missing_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
) -> KafkaResult<Vec<String>> {
    let metadata = client.fetch_metadata(None, Duration::from_secs(3))?;
    Ok(topics
        .iter()
        .filter(|name| {
            !metadata
                .topics()
                .iter()
                .any(|t| t.name() == **name && t.error().is_none() && !t.partitions().is_empty())
        })
        .map(|name| (*name).to_owned())
        .collect())
}

/// Writes a librdkafka log line as a `tracing` event with target `librdkafka`.
pub fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Writes a librdkafka client error as a `tracing` event. Connection failures are expected
/// while a broker is down and librdkafka retries them on its own, so they are warnings.
pub fn error_to_tracing(error: &KafkaError, reason: &str) {
    // The end of a partition is news only to readers that asked for it (enable.partition.eof).
    if matches!(error, KafkaError::PartitionEOF(_)) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    } else {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

/// A client context that only routes librdkafka's logs and errors into `tracing`; for
/// producers and for consumers that need no rebalance hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error_to_tracing(&error, reason);
    }
}

impl ConsumerContext for TracingContext {}
