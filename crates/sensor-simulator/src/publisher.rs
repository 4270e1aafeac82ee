//! Publishes the generator's readings with an idempotent producer, paced to the target rate.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use metrics::{counter, describe_counter, describe_gauge, gauge};
use pipeline_runtime::endpoints::{self, Health};
use pipeline_runtime::kafka::{
    Override, PRODUCER_DEFAULTS, TracingContext, client_config, send, wait_for_topics,
};
use pipeline_runtime::rebootstrap::CreateRebootstrapping;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use sensor_contract::reading::format_millis;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::source::Source;

/// Readings acknowledged by the broker.
pub const READINGS_SENT: &str = "sensor_readings_sent_total";
/// Readings not delivered after librdkafka's retries.
pub const SEND_ERRORS: &str = "sensor_send_errors_total";
/// Readings per second over the last progress interval.
pub const SEND_RATE: &str = "sensor_simulator_rate";

/// Most deliveries awaited at once before sending waits for acknowledgements.
const MAX_IN_FLIGHT: usize = 200_000;

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Readings the broker acknowledged.
    pub delivered: u64,
    /// Readings whose delivery failed after librdkafka's retries.
    pub failed: u64,
    /// Seconds from the first send to the last acknowledgement.
    pub elapsed_secs: f64,
    /// The seed used.
    pub seed: u64,
}

/// Publishes readings until `count` is reached or `shutdown` fires, then waits for every
/// outstanding delivery. Delivery failures are counted, logged and returned, never dropped.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Summary> {
    let tasks = TaskTracker::new();
    // Stops the endpoints when publishing ends, for any reason.
    let stop = shutdown.child_token();
    let result = publish(config, shutdown, &tasks, &stop).await;
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn publish(
    config: &Config,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> anyhow::Result<Summary> {
    let settings = &config.simulator;
    let seed = settings.seed.unwrap_or_else(rand::random);
    let health = Arc::new(Health::default());
    // The recorder is installed by `serve`: metrics registered before it would be lost.
    endpoints::serve(
        &settings.http_address,
        config.telemetry.http_address_file.as_deref(),
        health.clone(),
        stop.clone(),
        tasks,
    )
    .await?;
    describe_counter!(READINGS_SENT, "Readings acknowledged by the broker.");
    describe_counter!(SEND_ERRORS, "Readings not delivered after retries.");
    describe_gauge!(
        SEND_RATE,
        "Readings per second over the last progress interval."
    );
    counter!(READINGS_SENT).absolute(0);
    counter!(SEND_ERRORS).absolute(0);

    let mut properties = PRODUCER_DEFAULTS.to_vec();
    properties.push(("message.timeout.ms", "60000", Override::Allowed));
    let producer: FutureProducer<TracingContext> =
        client_config(&config.kafka, "sensor-simulator", &properties)?
            .create_rebootstrapping(TracingContext::default())
            .context("creating the Kafka producer")?;

    tracing::info!(
        brokers = %config.kafka.brokers,
        topic = %settings.topic,
        sensors = settings.sensors,
        rate = settings.rate,
        count = settings.count,
        seed,
        profile = ?settings.profile,
        "sensor simulator starting"
    );
    if wait_for_topics(producer.client(), &[settings.topic.as_str()], &shutdown)
        .await?
        .is_none()
    {
        return Ok(Summary {
            delivered: 0,
            failed: 0,
            elapsed_secs: 0.0,
            seed,
        });
    }

    let mut source = Source::new(settings, seed);
    if source.is_injecting() {
        tracing::info!(
            rate = settings.faults.rate,
            kinds = ?settings.faults.kinds,
            "injecting labelled faults (headers `fault`, `fault-id`)"
        );
    }
    let mut in_flight: FuturesUnordered<DeliveryFuture> = FuturesUnordered::new();
    let mut progress = Progress::new(settings.progress_interval_secs, health.clone());
    let started = Instant::now();
    let mut sent: u64 = 0;

    while settings.count == 0 || sent < settings.count {
        if shutdown.is_cancelled() {
            break;
        }
        if settings.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / settings.rate);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        let Some((reading, label)) = source.next(now_rfc3339()) else {
            // A dropout: this reading is not sent (and does not count as sent).
            continue;
        };
        let payload = reading.to_json();
        let fault_id = label.map(|l| l.id.to_string());
        let mut record = FutureRecord::to(&settings.topic)
            .key(reading.sensor_id.as_bytes())
            .payload(&payload);
        if let (Some(label), Some(id)) = (label, &fault_id) {
            record = record.headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "fault",
                        value: Some(label.kind.name()),
                    })
                    .insert(Header {
                        key: "fault-id",
                        value: Some(id.as_str()),
                    }),
            );
        }
        match send(&producer, record).await {
            Ok(delivery) => in_flight.push(delivery),
            Err(error) => {
                progress.failed += 1;
                tracing::error!(%error, sensor_id = %reading.sensor_id, "could not enqueue reading");
            }
        }
        sent += 1;
        while let Some(Some(result)) = futures::FutureExt::now_or_never(in_flight.next()) {
            progress.record(result);
        }
        if in_flight.len() >= MAX_IN_FLIGHT {
            drain_one(&mut in_flight, &mut progress).await;
        }
        progress.maybe_report(sent);
    }

    tracing::info!(
        outstanding = in_flight.len(),
        "waiting for outstanding deliveries"
    );
    while let Some(result) = in_flight.next().await {
        progress.record(result);
    }
    let _ = producer.flush(Timeout::After(Duration::from_secs(10)));
    Ok(Summary {
        delivered: progress.delivered,
        failed: progress.failed,
        elapsed_secs: started.elapsed().as_secs_f64(),
        seed,
    })
}

async fn drain_one(in_flight: &mut FuturesUnordered<DeliveryFuture>, progress: &mut Progress) {
    if let Some(result) = in_flight.next().await {
        progress.record(result);
    }
}

/// Now, as the readings' RFC 3339 timestamps write it.
pub fn now_rfc3339() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    format_millis(ms).unwrap_or_default()
}

/// Delivery counts, the metrics and the rate-limited progress line.
struct Progress {
    health: Arc<Health>,
    interval: Duration,
    last_report: Instant,
    sent_at_last_report: u64,
    delivered: u64,
    failed: u64,
    failures_logged: u64,
}

impl Progress {
    fn new(interval: Duration, health: Arc<Health>) -> Self {
        Self {
            health,
            interval,
            last_report: Instant::now(),
            sent_at_last_report: 0,
            delivered: 0,
            failed: 0,
            failures_logged: 0,
        }
    }

    fn record(&mut self, result: <DeliveryFuture as std::future::Future>::Output) {
        match result {
            Ok(Ok(_)) => {
                self.delivered += 1;
                counter!(READINGS_SENT).increment(1);
                // Producing: ready.
                self.health.set_ready(true);
            }
            Ok(Err((error, _))) => {
                self.failed += 1;
                counter!(SEND_ERRORS).increment(1);
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
                    self.health.set_fatal();
                }
                // The first few failures in full, then only the count in progress lines.
                if self.failures_logged < 10 {
                    self.failures_logged += 1;
                    tracing::error!(%error, "reading not delivered after retries");
                }
            }
            Err(_canceled) => {
                self.failed += 1;
                counter!(SEND_ERRORS).increment(1);
                tracing::error!("delivery report lost: producer closed");
            }
        }
    }

    fn maybe_report(&mut self, sent: u64) {
        let elapsed = self.last_report.elapsed();
        if elapsed < self.interval {
            return;
        }
        let rate = (sent - self.sent_at_last_report) as f64 / elapsed.as_secs_f64();
        gauge!(SEND_RATE).set(rate);
        tracing::info!(
            sent,
            delivered = self.delivered,
            errors = self.failed,
            rate = format!("{rate:.0}/s"),
            "progress"
        );
        self.last_report = Instant::now();
        self.sent_at_last_report = sent;
    }
}
