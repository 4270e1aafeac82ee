//! Lines into Kafka, with a bound on what is not yet acknowledged.
//!
//! Every line takes one permit of a semaphore of `max_in_flight` before it is produced, and the
//! producer's delivery callback gives it back. When Kafka is slow or away the permits run out,
//! the connections wait for one before reading further, and the senders are slowed by TCP flow
//! control: the gateway never drops a line to keep up. Deliveries are counted in the callback,
//! with no future or channel per record. The producer is idempotent with `acks=all`, and
//! `message.timeout.ms=0`: librdkafka retries a record until Kafka takes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use metrics::{counter, gauge};
use pipeline_runtime::endpoints::Health;
use pipeline_runtime::kafka::{
    Override, PRODUCER_DEFAULTS, client_config, error_to_tracing, log_to_tracing,
};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::Semaphore;

use crate::metrics as m;
use crate::syslog::Message as SyslogMessage;

/// What the delivery callback has counted.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Lines Kafka acknowledged on the lines topic.
    pub lines: AtomicU64,
    /// Records Kafka acknowledged on the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Records that could not be delivered.
    pub failed: AtomicU64,
}

/// The producer's context: logs, and the delivery callback that returns permits.
pub struct SinkContext {
    permits: Arc<Semaphore>,
    deliveries: Arc<Deliveries>,
    dlq_topic: String,
    health: Arc<Health>,
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::Fatal)) {
            self.health.set_fatal();
        }
        error_to_tracing(&error, reason);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.permits.add_permits(1);
        match result {
            Ok(message) if message.topic() == self.dlq_topic => {
                self.deliveries.dead_letters.fetch_add(1, Ordering::Relaxed);
                counter!(m::DEAD_LETTERS_PRODUCED).increment(1);
            }
            Ok(_) => {
                self.deliveries.lines.fetch_add(1, Ordering::Relaxed);
                counter!(m::LINES_PRODUCED).increment(1);
            }
            Err((error, message)) => {
                self.deliveries.failed.fetch_add(1, Ordering::Relaxed);
                counter!(m::PRODUCE_FAILURES).increment(1);
                tracing::error!(%error, topic = message.topic(), "a record could not be delivered: it is lost");
            }
        }
    }
}

/// Where a line came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The sender's address, `ip:port`.
    pub sender: String,
    /// When the gateway read the line: ms since the epoch.
    pub received_ms: i64,
}

/// `headers` with where the line came from: `sender` and `received-at-ms` (`received`).
fn with_origin(headers: OwnedHeaders, origin: &Origin, received: &str) -> OwnedHeaders {
    headers
        .insert(Header {
            key: "sender",
            value: Some(origin.sender.as_bytes()),
        })
        .insert(Header {
            key: "received-at-ms",
            value: Some(received.as_bytes()),
        })
}

/// The producer and its permits.
pub struct Sink {
    producer: ThreadedProducer<SinkContext>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    deliveries: Arc<Deliveries>,
    topic: String,
    dlq_topic: String,
    max_line_bytes: usize,
}

impl Sink {
    /// A sink writing lines to `topic` and oversize lines to `dlq_topic`.
    pub fn new(
        kafka: &KafkaSettings,
        settings: &crate::GatewaySettings,
        health: Arc<Health>,
    ) -> anyhow::Result<Self> {
        let permits = Arc::new(Semaphore::new(settings.max_in_flight));
        let deliveries = Arc::new(Deliveries::default());
        let queue = (settings.max_in_flight + 1000).to_string();
        let mut properties = PRODUCER_DEFAULTS.to_vec();
        properties.extend([
            // Retry until Kafka takes the record: nothing is given up while the process lives.
            ("message.timeout.ms", "0", Override::Guarded),
            (
                "queue.buffering.max.messages",
                queue.as_str(),
                Override::Allowed,
            ),
        ]);
        let producer = client_config(kafka, "log-gateway", &properties)?
            .create_with_context(SinkContext {
                permits: permits.clone(),
                deliveries: deliveries.clone(),
                dlq_topic: settings.dlq_topic.clone(),
                health,
            })
            .context("creating the Kafka producer")?;
        Ok(Self {
            producer,
            permits,
            max_in_flight: settings.max_in_flight,
            deliveries,
            topic: settings.topic.clone(),
            dlq_topic: settings.dlq_topic.clone(),
            max_line_bytes: settings.max_line_bytes,
        })
    }

    /// The producer's client, to wait for the topics.
    pub fn client(&self) -> &rdkafka::client::Client<SinkContext> {
        self.producer.client()
    }

    /// What has been delivered so far.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// Records handed to the producer and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }

    /// Produces one line, waiting first for room among the in-flight records.
    pub async fn line(&self, line: &Bytes, origin: &Origin) {
        let received = origin.received_ms.to_string();
        let headers = with_origin(OwnedHeaders::new_with_capacity(2), origin, &received);
        self.produce(&self.topic, line, headers, origin.received_ms)
            .await;
    }

    /// Produces one syslog message: its body as the value, its own time as the record's
    /// timestamp (the time received when it has none), its host and application in headers
    /// `syslog-host` and `syslog-app`.
    pub async fn syslog(&self, frame: &Bytes, message: &SyslogMessage<'_>, origin: &Origin) {
        let received = origin.received_ms.to_string();
        let mut headers = with_origin(OwnedHeaders::new_with_capacity(4), origin, &received);
        for (key, value) in [("syslog-host", message.host), ("syslog-app", message.app)] {
            if let Some(value) = value {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
        }
        let body = frame.slice_ref(message.body);
        let timestamp = message.time_ms.unwrap_or(origin.received_ms);
        self.produce(&self.topic, &body, headers, timestamp).await;
    }

    /// Dead-letters a frame of the syslog listener that is not a syslog message, whole, with
    /// the reason.
    pub async fn not_syslog(&self, frame: &Bytes, reason: &str, origin: &Origin) {
        self.dead_letter(frame, "not_syslog", reason, &[], origin)
            .await;
    }

    /// Dead-letters a line longer than `max_line_bytes`: its first bytes, the reason, the
    /// sender and the line's length in headers.
    pub async fn oversize(&self, prefix: &Bytes, length: u64, origin: &Origin) {
        let reason = format!(
            "line of {length} bytes is longer than gateway.max_line_bytes ({}); the value holds its first {} bytes",
            self.max_line_bytes,
            prefix.len()
        );
        let length = length.to_string();
        self.dead_letter(
            prefix,
            "oversize_line",
            &reason,
            &[("line-bytes", &length)],
            origin,
        )
        .await;
    }

    /// Produces `payload` to the dead-letter topic with headers `error.kind`, `error.reason`,
    /// `extra`, and where it came from.
    async fn dead_letter(
        &self,
        payload: &Bytes,
        kind: &str,
        reason: &str,
        extra: &[(&str, &str)],
        origin: &Origin,
    ) {
        let received = origin.received_ms.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(4 + extra.len());
        for (key, value) in [("error.kind", kind), ("error.reason", reason)]
            .into_iter()
            .chain(extra.iter().copied())
        {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let headers = with_origin(headers, origin, &received);
        self.produce(&self.dlq_topic, payload, headers, origin.received_ms)
            .await;
    }

    async fn produce(&self, topic: &str, payload: &Bytes, headers: OwnedHeaders, timestamp: i64) {
        // Given back by the delivery callback. (The semaphore is never closed.)
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
        gauge!(m::IN_FLIGHT).set(self.in_flight() as f64);
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(payload.as_ref())
            .headers(headers)
            .timestamp(timestamp);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((error, _)) => {
                    self.permits.add_permits(1);
                    self.deliveries.failed.fetch_add(1, Ordering::Relaxed);
                    counter!(m::PRODUCE_FAILURES).increment(1);
                    tracing::error!(%error, topic, "a record could not be produced: it is lost");
                    return;
                }
            }
        }
    }

    /// Waits until every record is acknowledged or `timeout` passes; the records still in
    /// flight then.
    pub fn flush(&self, timeout: Duration) -> usize {
        let _ = self.producer.flush(timeout);
        self.in_flight()
    }
}
