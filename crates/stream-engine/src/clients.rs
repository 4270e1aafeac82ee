//! The engine's Kafka clients, set up for its guarantees. What the guarantees depend on is
//! guarded: `kafka.properties` cannot change it (a configuration error naming the key).

use pipeline_runtime::kafka::{Override, PRODUCER_DEFAULTS, client_config};
use pipeline_runtime::settings::{KafkaSettings, SettingsError};
use rdkafka::ClientConfig;

use crate::{EngineSettings, Guarantee};

/// Kilobytes of fetched messages the consumer keeps ready (`queued.max.messages.kbytes`):
/// about a batch of readings. librdkafka's default, 64 MiB, stays resident once a backlog has
/// filled it (a processor reading one peaked near 200 MiB). Since `fetch.max.bytes` is not
/// set, librdkafka caps fetch responses at this size too (or `message.max.bytes`, if larger).
/// Measured on a 2 M-reading backlog: 1 MiB used 55–59 MiB at peak and was the fastest of
/// 1, 2 and 4 MiB; 2 MiB used 82–85.
const PREFETCH_KBYTES: &str = "1024";
/// How long a partition's next fetch waits once the prefetch is full
/// (`fetch.queue.backoff.ms`). librdkafka's default, 1 s, suits its 64 MiB prefetch; with a
/// small one it stalls the consumer: 2 MiB with 1 s held the processor and the passthrough
/// to 44 600 readings/s.
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Records the producer holds before `send` reports its queue full and the engine waits a
/// millisecond (`queue.buffering.max.messages`; librdkafka's default is 100 000). Outputs
/// flow out as they are made, so a full queue is rare; what fills it is a snapshot, which
/// hands the producer a changelog record per key changed since the last one at once: 100 000
/// of them for a processor's first pass over 100 000 sensors, 5.7 MiB of librdkafka's message
/// structures on top of the state. 32 768 is a tenth of a second of output at full speed.
const PRODUCE_QUEUE_MESSAGES: &str = "32768";

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
            // Prefetch sized for a batch loop (measured in `scripts/bench.sh`).
            ("queued.max.messages.kbytes", PREFETCH_KBYTES, Allowed),
            ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS, Allowed),
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
    properties.push((
        "queue.buffering.max.messages",
        PRODUCE_QUEUE_MESSAGES,
        Override::Allowed,
    ));
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
