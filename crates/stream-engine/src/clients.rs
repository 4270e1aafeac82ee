//! The engine's Kafka clients, set up for its guarantees. What the guarantees depend on is
//! guarded: `kafka.properties` cannot change it (a configuration error naming the key).

use pipeline_runtime::kafka::{Override, PRODUCER_DEFAULTS, client_config};
use pipeline_runtime::settings::{KafkaSettings, SettingsError};
use rdkafka::ClientConfig;

use crate::{EngineSettings, Guarantee};

/// The consumer: the group, cooperative rebalancing, offsets stored by the engine (committed
/// by librdkafka in `at_least_once`, in transactions in `exactly_once`), `read_committed`.
/// Public so that benchmarks measure clients set up exactly like this.
pub fn consumer_config(
    kafka: &KafkaSettings,
    settings: &EngineSettings,
) -> Result<ClientConfig, SettingsError> {
    use Override::{Allowed, Guarded};
    let exactly_once = settings.guarantee == Guarantee::ExactlyOnce;
    client_config(
        kafka,
        &settings.client_id(),
        &[
            ("group.id", settings.group_id.as_str(), Guarded),
            // Partitions the replica keeps go on being processed during a rebalance.
            (
                "partition.assignment.strategy",
                "cooperative-sticky",
                Guarded,
            ),
            // at_least_once commits stored offsets; exactly_once commits them in transactions.
            (
                "enable.auto.commit",
                if exactly_once { "false" } else { "true" },
                Guarded,
            ),
            ("auto.commit.interval.ms", "1000", Allowed),
            ("enable.auto.offset.store", "false", Guarded),
            ("auto.offset.reset", "earliest", Allowed),
            ("isolation.level", "read_committed", Guarded),
            ("session.timeout.ms", "10000", Allowed),
            ("heartbeat.interval.ms", "1000", Allowed),
            // Per-partition lag for the metrics.
            ("statistics.interval.ms", "5000", Allowed),
        ],
    )
}

/// The producer: idempotent, lz4, and transactional in `exactly_once` with the
/// transactional id `<group_id>-<instance_id>`.
pub fn producer_config(
    kafka: &KafkaSettings,
    settings: &EngineSettings,
) -> Result<ClientConfig, SettingsError> {
    let transactional_id = settings.transactional_id();
    let timeout = settings.transaction_timeout.as_millis().to_string();
    let mut properties = PRODUCER_DEFAULTS.to_vec();
    if settings.guarantee == Guarantee::ExactlyOnce {
        properties.push(("transactional.id", &transactional_id, Override::Guarded));
        properties.push(("transaction.timeout.ms", &timeout, Override::Guarded));
    }
    client_config(kafka, &settings.client_id(), &properties)
}

/// Checks that the user's `kafka.properties` leave every guarded property of the engine's
/// clients alone: for settings validation, before anything starts.
pub fn check(kafka: &KafkaSettings, settings: &EngineSettings) -> Result<(), SettingsError> {
    consumer_config(kafka, settings)?;
    producer_config(kafka, settings)?;
    Ok(())
}
