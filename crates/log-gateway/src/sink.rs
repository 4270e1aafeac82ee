//! Lines into Kafka, with a bound on what is not yet acknowledged.
//!
//! Every line takes one permit of a semaphore of `max_in_flight` before it is produced, and the
//! producer's delivery callback gives it back. When Kafka is slow or away the permits run out,
//! the connections wait for one before reading further, and the senders are slowed by TCP flow
//! control: the gateway never drops a line to keep up. Deliveries are counted in the callback,
//! with no future or channel per record. The producer is idempotent with `acks=all`, and
//! `message.timeout.ms=0`: librdkafka retries a record until Kafka takes it.
//!
//! A request of the HTTP endpoint ([`Sink::request`]) takes the permits for all its lines at
//! once and registers a [`Pending`] tally under an id that rides along with each record as its
//! delivery opaque; the callback counts it down and wakes the request when Kafka has
//! acknowledged the last of them. Lines of the TCP listeners carry id 0 and cost no lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use metrics::{counter, gauge};
use pipeline_runtime::endpoints::Health;
use pipeline_runtime::kafka::{
    Override, PRODUCER_DEFAULTS, client_config, error_to_tracing, log_to_tracing,
};
use pipeline_runtime::rebootstrap::{CreateRebootstrapping, Rebootstrap, Rebootstraps};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::sync::{Notify, Semaphore};

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

/// The records of one HTTP request that Kafka has not settled yet.
#[derive(Debug)]
struct Pending {
    /// Records not yet acknowledged or failed.
    remaining: AtomicUsize,
    /// Records that failed.
    failed: AtomicUsize,
    /// Woken when `remaining` reaches 0.
    settled: Notify,
}

impl Pending {
    /// Counts one record settled; true when it was the last.
    fn settle(&self, ok: bool) -> bool {
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify_one();
            return true;
        }
        false
    }
}

/// The requests waiting for Kafka's acknowledgements, by id (0: none, the TCP lines).
#[derive(Debug, Default)]
struct Requests {
    next: AtomicUsize,
    pending: Mutex<HashMap<usize, Arc<Pending>>>,
}

impl Requests {
    fn register(&self, records: usize) -> (usize, Arc<Pending>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let pending = Arc::new(Pending {
            remaining: AtomicUsize::new(records),
            failed: AtomicUsize::new(0),
            settled: Notify::new(),
        });
        self.map().insert(id, pending.clone());
        (id, pending)
    }

    /// Settles one record of request `id`, forgetting the request after its last.
    fn settle(&self, id: usize, ok: bool) {
        let mut map = self.map();
        if let Some(pending) = map.get(&id)
            && pending.settle(ok)
        {
            map.remove(&id);
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Arc<Pending>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a request's lines were not all acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No room among the in-flight records within the wait: nothing was produced.
    #[error("no room for {lines} lines among the records in flight")]
    Busy { lines: usize },
    /// Not all acknowledged within the timeout; those produced stay in flight and may still be
    /// written.
    #[error("Kafka did not acknowledge every line in time")]
    Unacknowledged,
    /// Some records could not be delivered.
    #[error("{failed} lines could not be delivered")]
    Failed { failed: usize },
}

/// The producer's context: logs, and the delivery callback that returns permits.
pub struct SinkContext {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    deliveries: Arc<Deliveries>,
    requests: Arc<Requests>,
    dlq_topic: String,
    health: Arc<Health>,
    rebootstrap: Rebootstrap,
}

impl Rebootstraps for SinkContext {
    fn rebootstrap(&self) -> &Rebootstrap {
        &self.rebootstrap
    }
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
        self.rebootstrap.after(&error);
    }
}

impl ProducerContext for SinkContext {
    /// The id of the HTTP request the record belongs to; 0 for none.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, request: usize) {
        self.permits.add_permits(1);
        // The gauge is set as records are produced; the last acknowledgement sets it to 0, so
        // it does not stay at its last value once the traffic stops.
        if self.permits.available_permits() == self.max_in_flight {
            gauge!(m::IN_FLIGHT).set(0.0);
        }
        if request != 0 {
            self.requests.settle(request, result.is_ok());
        }
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
    requests: Arc<Requests>,
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
        let requests = Arc::new(Requests::default());
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
            .create_rebootstrapping(SinkContext {
                permits: permits.clone(),
                max_in_flight: settings.max_in_flight,
                deliveries: deliveries.clone(),
                requests: requests.clone(),
                dlq_topic: settings.dlq_topic.clone(),
                health,
                rebootstrap: Rebootstrap::default(),
            })
            .context("creating the Kafka producer")?;
        Ok(Self {
            producer,
            permits,
            max_in_flight: settings.max_in_flight,
            deliveries,
            requests,
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

    /// Produces the lines of one HTTP request and waits until Kafka has acknowledged every one:
    /// the number produced. Room for all of them among the in-flight records is taken at once,
    /// waiting at most `room_wait` (else nothing is produced: [`RequestError::Busy`]); the
    /// acknowledgements are awaited at most `ack_timeout` ([`RequestError::Unacknowledged`]:
    /// the lines stay in flight and may still be written).
    pub async fn request(
        &self,
        lines: &[Bytes],
        origin: &Origin,
        room_wait: Duration,
        ack_timeout: Duration,
    ) -> Result<usize, RequestError> {
        let count = lines.len();
        if count == 0 {
            return Ok(0);
        }
        let busy = RequestError::Busy { lines: count };
        let wanted = u32::try_from(count).map_err(|_| busy)?;
        match tokio::time::timeout(room_wait, self.permits.acquire_many(wanted)).await {
            Ok(Ok(permits)) => permits.forget(),
            _ => return Err(busy),
        }
        gauge!(m::IN_FLIGHT).set(self.in_flight() as f64);
        let (id, pending) = self.requests.register(count);
        let received = origin.received_ms.to_string();
        for line in lines {
            let headers = with_origin(OwnedHeaders::new_with_capacity(2), origin, &received);
            if !self
                .send(&self.topic, line, headers, origin.received_ms, id)
                .await
            {
                self.requests.settle(id, false);
            }
        }
        if tokio::time::timeout(ack_timeout, pending.settled.notified())
            .await
            .is_err()
        {
            return Err(RequestError::Unacknowledged);
        }
        match pending.failed.load(Ordering::Relaxed) {
            0 => Ok(count),
            failed => Err(RequestError::Failed { failed }),
        }
    }

    async fn produce(&self, topic: &str, payload: &Bytes, headers: OwnedHeaders, timestamp: i64) {
        // Given back by the delivery callback. (The semaphore is never closed.)
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
        gauge!(m::IN_FLIGHT).set(self.in_flight() as f64);
        self.send(topic, payload, headers, timestamp, 0).await;
    }

    /// Hands one record, whose permit is taken, to the producer; false (and the permit given
    /// back) when it could not be.
    async fn send(
        &self,
        topic: &str,
        payload: &Bytes,
        headers: OwnedHeaders,
        timestamp: i64,
        request: usize,
    ) -> bool {
        let mut record = BaseRecord::with_opaque_to(topic, request)
            .payload(payload.as_ref())
            .headers(headers)
            .timestamp(timestamp);
        loop {
            match self.producer.send::<(), [u8]>(record) {
                Ok(()) => return true,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((error, _)) => {
                    self.permits.add_permits(1);
                    self.deliveries.failed.fetch_add(1, Ordering::Relaxed);
                    counter!(m::PRODUCE_FAILURES).increment(1);
                    tracing::error!(%error, topic, "a record could not be produced: it is lost");
                    return false;
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
