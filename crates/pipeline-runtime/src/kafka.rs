//! Kafka client set-up shared by every service: client configuration with guarded
//! properties, enqueueing with back-off, waiting for topics, librdkafka's logs in `tracing`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::rebootstrap::{Rebootstrap, Rebootstraps};
use crate::settings::{KafkaSettings, SettingsError};

/// How a service's own client property may be overridden through `kafka.properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// A tuning choice (`linger.ms`, `compression.type`, ...): the user's value wins.
    Allowed,
    /// A property a guarantee depends on (`isolation.level`, `enable.auto.commit`,
    /// `transactional.id`, `acks`, ...): a different value in `kafka.properties` is a
    /// configuration error naming the key.
    Guarded,
}

/// Properties every client of the project sets and no user may change.
///
/// `allow.auto.create.topics=false`: a metadata request or a produce for a missing topic
/// must never make a broker with stock settings (`auto.create.topics.enable=true`,
/// `num.partitions=1`) create it with its defaults. (librdkafka's producers default to
/// `true`, and an admin client is a producer handle.)
const EVERY_CLIENT: &[(&str, &str)] = &[("allow.auto.create.topics", "false")];

/// Defaults every client of the project sets, which a service or `kafka.properties` may change.
///
/// `topic.metadata.refresh.interval.ms=10000` (librdkafka's default: 5 minutes). Some of
/// librdkafka's waits end only at the next metadata update for the partition: a consumer's
/// partition moved (`seek`) while its leader was unknown, as right after a broker went down,
/// stays in `validate-epoch-wait`, fetching nothing (in a bounce test all three replicas of a
/// pipeline sat there for over three minutes after their restores, lag growing, nothing
/// logged); chaos runs saw producers and consumers stall after a broker restart beside other
/// tests ("new leader not found in cache"). A refresh every 10 s bounds such waits, for one
/// small request per client and interval.
const CLIENT_DEFAULTS: &[(&str, &str)] = &[("topic.metadata.refresh.interval.ms", "10000")];

/// librdkafka's other names for guarded properties.
const ALIASES: &[(&str, &str)] = &[
    ("request.required.acks", "acks"),
    ("auto.commit.enable", "enable.auto.commit"),
    ("metadata.broker.list", "bootstrap.servers"),
];

/// The producer settings every service of the project starts from: idempotent (no duplicates
/// or reordering from retries), acknowledged by all in-sync replicas, lz4, a short linger.
pub const PRODUCER_DEFAULTS: &[(&str, &str, Override)] = &[
    ("enable.idempotence", "true", Override::Guarded),
    ("acks", "all", Override::Guarded),
    ("linger.ms", "5", Override::Allowed),
    ("compression.type", "lz4", Override::Allowed),
];

/// A librdkafka configuration for `settings`, named `client_id` in broker logs.
///
/// `properties` are the service's own choices. The user's `kafka.properties` come after them
/// and win for [`Override::Allowed`] ones; for [`Override::Guarded`] ones (and
/// `bootstrap.servers`, which is `kafka.brokers`, and `allow.auto.create.topics`) a
/// different value is an error naming `kafka.properties.<key>`.
pub fn client_config(
    settings: &KafkaSettings,
    client_id: &str,
    properties: &[(&str, &str, Override)],
) -> Result<ClientConfig, SettingsError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", client_id)
        // Let librdkafka's log lines reach `ClientContext::log`, and so `tracing`.
        .set_log_level(RDKafkaLogLevel::Info);
    let guarded = EVERY_CLIENT
        .iter()
        .map(|(k, v)| (*k, *v))
        .chain(std::iter::once((
            "bootstrap.servers",
            settings.brokers.as_str(),
        )))
        .chain(
            properties
                .iter()
                .filter(|(_, _, o)| *o == Override::Guarded)
                .map(|(k, v, _)| (*k, *v)),
        );
    for (key, value) in guarded {
        if let Some((user_key, user_value)) = user_value(settings, key)
            && !same_value(key, user_value, value)
        {
            let why = if key == "bootstrap.servers" {
                "set the brokers with kafka.brokers".to_owned()
            } else {
                format!("the service sets {key}={value} and its delivery guarantee depends on it")
            };
            return Err(SettingsError::invalid(
                format!("kafka.properties.{user_key}"),
                format!("cannot be overridden: {why}"),
            ));
        }
    }
    for (key, value) in EVERY_CLIENT.iter().chain(CLIENT_DEFAULTS) {
        config.set(*key, *value);
    }
    // Checked by `KafkaSettings::validate`: `kafka.properties` cannot set these.
    for (key, value) in settings.security().properties()? {
        config.set(key, value);
    }
    for (key, value, _) in properties {
        config.set(*key, *value);
    }
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    // librdkafka logs its `debug` contexts at debug level, which the level set above drops:
    // whoever asks for them (`kafka.properties.debug`) gets them.
    if settings.properties.iter().any(|(key, _)| key == "debug") {
        config.set_log_level(RDKafkaLogLevel::Debug);
    }
    Ok(config)
}

/// The user's value for `key` (under its name or an alias), with the name they used.
fn user_value<'a>(settings: &'a KafkaSettings, key: &str) -> Option<(&'a str, &'a str)> {
    settings.properties.iter().find_map(|(k, v)| {
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| alias == k)
            .map_or(k.as_str(), |(_, name)| name);
        (canonical == key).then_some((k.as_str(), v.as_str()))
    })
}

/// Whether two spellings of a property's value mean the same.
fn same_value(key: &str, a: &str, b: &str) -> bool {
    let norm = |v: &str| {
        let v = v.trim().to_ascii_lowercase();
        if key == "acks" && v == "-1" {
            "all".to_owned()
        } else {
            v
        }
    };
    norm(a) == norm(b)
}

/// Enqueues a record, waiting while librdkafka's local queue is full (a short back-off, then
/// the same record again: the queue drains as the broker acknowledges). Any other error is
/// returned. Every producer of the project enqueues through here.
pub async fn send<C, K, P>(
    producer: &FutureProducer<C>,
    mut record: FutureRecord<'_, K, P>,
) -> KafkaResult<DeliveryFuture>
where
    C: ClientContext + 'static,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Waits until the cluster answers and every topic in `topics` exists with its partitions,
/// logging what it is waiting for; returns the topics' layout as that answer had it. `Ok(None)`
/// if `shutdown` fires first; an error if the cluster refuses this client (wrong credentials, a
/// TLS handshake that fails): waiting would not help.
///
/// Use the layout returned rather than asking again: on a cluster of several brokers each
/// answers from its own metadata cache, and the next request may reach one that has the topic
/// without its partitions yet (a processor then asked for a changelog of 0 partitions).
///
/// Services start before the broker in compose and after crashes; waiting here turns "broker
/// not reachable" into a clear log line instead of an exit.
pub async fn wait_for_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    shutdown: &CancellationToken,
) -> Result<Option<Layout>, ConnectionRefused> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        let missing = tokio::task::block_in_place(|| missing_topics(client, topics));
        match missing {
            Ok((missing, layout)) if missing.is_empty() => {
                tracing::info!(?topics, "Kafka is reachable and the topics exist");
                for warning in replication_warnings(&layout) {
                    tracing::warn!("{warning}");
                }
                return Ok(Some(layout));
            }
            Ok((missing, _)) => tracing::warn!(
                ?missing,
                waited_secs = started.elapsed().as_secs(),
                "waiting for topics to be created"
            ),
            Err(error) => {
                if let Some(refused) = connection_refused() {
                    return Err(refused);
                }
                tracing::warn!(
                    %error,
                    waited_secs = started.elapsed().as_secs(),
                    "waiting for Kafka to become reachable"
                )
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// The cluster refused this process's clients: retrying with the same settings cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    /// SASL authentication failed.
    #[error(
        "Kafka rejected the credentials ({0}); check kafka.sasl.mechanism, kafka.sasl.username \
         and kafka.sasl.password (or kafka.sasl.password_file)"
    )]
    Authentication(String),
    /// The TLS handshake failed.
    #[error(
        "the TLS handshake with Kafka failed ({0}); check kafka.tls.ca_file (the CA that \
         signed the broker's certificate) and that the broker address in kafka.brokers is a \
         name or address its certificate is issued for"
    )]
    Tls(String),
}

/// The first refusal librdkafka reported in this process, if any. Every client of a process
/// shares its settings, so one refusal stands for all; librdkafka reports it through the
/// client context's error callback, not through the call that then times out.
fn connection_refused() -> Option<ConnectionRefused> {
    REFUSED.lock().ok()?.clone()
}

static REFUSED: std::sync::Mutex<Option<ConnectionRefused>> = std::sync::Mutex::new(None);

/// Notes an authentication or TLS failure reported by librdkafka.
fn note_refusal(error: &KafkaError, reason: &str) {
    let code = error.rdkafka_error_code();
    let refused = if matches!(
        code,
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
    ) {
        ConnectionRefused::Authentication(reason.to_owned())
    } else if code == Some(RDKafkaErrorCode::SSL) || reason.contains("SSL handshake failed") {
        ConnectionRefused::Tls(reason.to_owned())
    } else {
        return;
    };
    if let Ok(mut slot) = REFUSED.lock() {
        slot.get_or_insert(refused);
    }
}

/// A partition's id, replica count and in-sync replica count.
pub type PartitionReplicas = (i32, usize, usize);

/// The replicas of each partition of the topics a service uses, as the metadata says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    /// Brokers in the cluster.
    pub brokers: usize,
    /// Per topic, its partitions.
    pub topics: Vec<(String, Vec<PartitionReplicas>)>,
}

/// The topics of `topics` that do not exist yet, and the layout of those that do.
fn missing_topics<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
) -> KafkaResult<(Vec<String>, Layout)> {
    let metadata = client.fetch_metadata(None, Duration::from_secs(3))?;
    let mut missing = Vec::new();
    let mut layout = Layout {
        brokers: metadata.brokers().len(),
        topics: Vec::new(),
    };
    for name in topics {
        match metadata
            .topics()
            .iter()
            .find(|t| t.name() == *name && t.error().is_none() && !t.partitions().is_empty())
        {
            Some(topic) => layout.topics.push((
                topic.name().to_owned(),
                topic
                    .partitions()
                    .iter()
                    .map(|p| (p.id(), p.replicas().len(), p.isr().len()))
                    .collect(),
            )),
            None => missing.push((*name).to_owned()),
        }
    }
    Ok((missing, layout))
}

/// What an operator should hear about `layout`: a topic with partitions short of in-sync
/// replicas (a broker is down or catching up: another loss may stop writes under
/// `min.insync.replicas`), and a topic with a single replica on a cluster of several brokers
/// (losing its broker loses the topic).
pub fn replication_warnings(layout: &Layout) -> Vec<String> {
    let mut warnings = Vec::new();
    for (topic, partitions) in &layout.topics {
        let short: Vec<String> = partitions
            .iter()
            .filter(|(_, replicas, isr)| isr < replicas)
            .map(|(p, replicas, isr)| format!("{p} ({isr} of {replicas})"))
            .collect();
        if !short.is_empty() {
            warnings.push(format!(
                "topic {topic} is under-replicated: partitions {} have fewer in-sync replicas \
                 than replicas (a broker is down or catching up)",
                short.join(", ")
            ));
        }
        if layout.brokers > 1 && partitions.iter().all(|(_, replicas, _)| *replicas == 1) {
            warnings.push(format!(
                "topic {topic} has a single replica on a cluster of {} brokers: losing its \
                 broker loses it (create it with a replication factor of 3)",
                layout.brokers
            ));
        }
    }
    warnings
}

/// Writes a librdkafka log line as a `tracing` event with target `librdkafka`. A broker
/// connection failure (facility `FAIL`: refused, reset, timed out) is routine while a broker
/// is down, and librdkafka reconnects on its own: a warning, once per broker and failure per
/// minute (the repeats at debug), not an error per reconnect attempt.
pub fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if facility == "FAIL" && level as i32 <= RDKafkaLogLevel::Warning as i32 {
        if first_connection_failure_in_a_while(message) {
            tracing::warn!(target: "librdkafka", facility, "{message}");
        } else {
            tracing::debug!(target: "librdkafka", facility, "{message}");
        }
        return;
    }
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

/// Connection failures seen, by broker and failure: when each was last logged.
#[derive(Debug, Default)]
pub struct ConnectionFailures {
    last: HashMap<(String, String), Instant>,
}

/// How long a broker's repeated connection failure stays at debug.
const REPEAT_QUIET: Duration = Duration::from_secs(60);

impl ConnectionFailures {
    /// Whether `message` (librdkafka's `FAIL` line: `[thrd:…]: <broker>: <failure> (after …)`)
    /// is the first of its broker and failure in [`REPEAT_QUIET`].
    pub fn first_in_a_while(&mut self, message: &str, now: Instant) -> bool {
        let text = message.split_once("]: ").map_or(message, |(_, rest)| rest);
        let (broker, failure) = text.split_once(": ").unwrap_or(("", text));
        // "(after 3ms in state CONNECT, 4 identical error(s) suppressed)" differs each time.
        let failure = failure.split(" (after ").next().unwrap_or(failure);
        let key = (broker.to_owned(), failure.to_owned());
        match self.last.get(&key) {
            Some(at) if now.duration_since(*at) < REPEAT_QUIET => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }
}

fn connection_failures() -> std::sync::MutexGuard<'static, ConnectionFailures> {
    static FAILURES: LazyLock<Mutex<ConnectionFailures>> = LazyLock::new(Mutex::default);
    FAILURES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a client error is a broker connection failing (refused, reset, unresolvable, all
/// down): routine while a broker restarts, and retried by librdkafka on its own.
pub fn is_connection_failure(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// Whether a connection failure described by `text` is the first of its kind in a minute:
/// logged at warning then, at debug after that (see [`log_to_tracing`]).
pub fn first_connection_failure_in_a_while(text: &str) -> bool {
    connection_failures().first_in_a_while(text, Instant::now())
}

/// Writes a librdkafka client error as a `tracing` event. Connection failures are expected
/// while a broker is down and librdkafka retries them on its own: a warning once a minute per
/// broker and failure, the repeats at debug.
pub fn error_to_tracing(error: &KafkaError, reason: &str) {
    note_refusal(error, reason);
    // The end of a partition is news only to readers that asked for it (enable.partition.eof).
    if matches!(error, KafkaError::PartitionEOF(_))
        || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        || (is_connection_failure(error) && !first_connection_failure_in_a_while(reason))
    {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    } else {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

/// A client context that only routes librdkafka's logs and errors into `tracing` (and finds
/// its way back to the bootstrap servers, see [`Rebootstrap`]); for producers and for
/// consumers that need no rebalance hooks.
#[derive(Debug, Clone, Default)]
pub struct TracingContext {
    rebootstrap: Rebootstrap,
}

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error_to_tracing(&error, reason);
        self.rebootstrap.after(&error);
    }
}

impl Rebootstraps for TracingContext {
    fn rebootstrap(&self) -> &Rebootstrap {
        &self.rebootstrap
    }
}

impl ConsumerContext for TracingContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brokers_repeated_connection_failure_is_logged_once_a_minute() {
        let mut failures = ConnectionFailures::default();
        let t0 = Instant::now();
        let refused = |after: u32| {
            format!(
                "[thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: \
                 Connection refused (after {after}ms in state CONNECT)"
            )
        };
        assert!(failures.first_in_a_while(&refused(0), t0));
        assert!(!failures.first_in_a_while(&refused(3), t0 + Duration::from_secs(1)));
        // Another broker, or another failure of the same one: news.
        assert!(failures.first_in_a_while(
            &refused(0).replace("9092/1", "9093/2"),
            t0 + Duration::from_secs(2)
        ));
        assert!(failures.first_in_a_while(
            "[thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: Disconnected (after 5000ms in state UP)",
            t0 + Duration::from_secs(3)
        ));
        // A minute on, the same failure is logged again.
        assert!(failures.first_in_a_while(&refused(1), t0 + Duration::from_secs(61)));
    }

    #[test]
    fn connection_failures_are_told_from_other_client_errors() {
        use rdkafka::error::KafkaError::{Global, MessageConsumption, MessageProduction};
        assert!(is_connection_failure(&Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(is_connection_failure(&MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(is_connection_failure(&Global(RDKafkaErrorCode::Resolve)));
        assert!(!is_connection_failure(&MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!is_connection_failure(&Global(RDKafkaErrorCode::Fatal)));
    }

    #[test]
    fn under_replicated_and_single_replica_topics_are_named() {
        let layout = Layout {
            brokers: 3,
            topics: vec![
                ("healthy".into(), vec![(0, 3, 3), (1, 3, 3)]),
                ("short".into(), vec![(0, 3, 3), (1, 3, 2), (2, 3, 1)]),
                ("single".into(), vec![(0, 1, 1)]),
            ],
        };
        assert_eq!(
            replication_warnings(&layout),
            [
                "topic short is under-replicated: partitions 1 (2 of 3), 2 (1 of 3) have fewer \
                 in-sync replicas than replicas (a broker is down or catching up)",
                "topic single has a single replica on a cluster of 3 brokers: losing its broker \
                 loses it (create it with a replication factor of 3)",
            ]
        );
        // One broker: a single replica is all there can be.
        let single_broker = Layout {
            brokers: 1,
            topics: vec![("single".into(), vec![(0, 1, 1)])],
        };
        assert!(replication_warnings(&single_broker).is_empty());
    }

    fn kafka(properties: &[(&str, &str)]) -> KafkaSettings {
        KafkaSettings {
            brokers: "b:1".into(),
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..KafkaSettings::default()
        }
    }

    const CONSUMER: &[(&str, &str, Override)] = &[
        ("isolation.level", "read_committed", Override::Guarded),
        ("session.timeout.ms", "10000", Override::Allowed),
    ];

    fn error(properties: &[(&str, &str)], own: &[(&str, &str, Override)]) -> String {
        client_config(&kafka(properties), "c", own)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn tuning_properties_can_be_overridden() {
        let config = client_config(
            &kafka(&[("session.timeout.ms", "30000"), ("fetch.min.bytes", "10")]),
            "c",
            CONSUMER,
        )
        .unwrap();
        assert_eq!(config.get("session.timeout.ms"), Some("30000"));
        assert_eq!(config.get("fetch.min.bytes"), Some("10"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(config.get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn asking_for_librdkafka_debug_contexts_lets_their_lines_through() {
        let level = |properties: &[(&str, &str)]| {
            client_config(&kafka(properties), "c", CONSUMER)
                .unwrap()
                .log_level
        };
        assert!(matches!(level(&[]), RDKafkaLogLevel::Info));
        assert!(matches!(
            level(&[("debug", "broker,eos")]),
            RDKafkaLogLevel::Debug
        ));
    }

    #[test]
    fn guarded_properties_are_errors_naming_the_key_unless_equal() {
        assert_eq!(
            error(&[("isolation.level", "read_uncommitted")], CONSUMER),
            "configuration key `kafka.properties.isolation.level`: cannot be overridden: the \
             service sets isolation.level=read_committed and its delivery guarantee depends on it"
        );
        // The same value is allowed, in any case.
        assert_eq!(
            error(&[("isolation.level", "READ_COMMITTED")], CONSUMER),
            ""
        );
        // Aliases are caught under the name the user wrote; acks=-1 is acks=all.
        assert!(
            error(&[("request.required.acks", "1")], PRODUCER_DEFAULTS)
                .starts_with("configuration key `kafka.properties.request.required.acks`")
        );
        assert_eq!(error(&[("acks", "-1")], PRODUCER_DEFAULTS), "");
        assert!(
            error(&[("allow.auto.create.topics", "true")], &[])
                .starts_with("configuration key `kafka.properties.allow.auto.create.topics`")
        );
        assert_eq!(
            error(&[("bootstrap.servers", "elsewhere:9092")], &[]),
            "configuration key `kafka.properties.bootstrap.servers`: cannot be overridden: set \
             the brokers with kafka.brokers"
        );
    }
}
