//! The consume → process → produce → commit loop, one batch at a time.
//!
//! A batch collects records for up to `commit_interval_ms` (or `batch_max_records`), turns
//! them into events and dead letters, waits until the broker has acknowledged every one of
//! them, and only then stores the batch's offsets for commit. A crash can therefore repeat a
//! batch's outputs but never lose them (at-least-once). The batch is also the unit a Kafka
//! transaction will wrap for exactly-once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipeline_runtime::kafka::{TracingContext, client_config, wait_for_topics};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use sensor_contract::RawRecord;
use tokio_util::sync::CancellationToken;

use crate::bad_input::BadInputLog;
use crate::rebalance::{AssignmentChange, ProcessorContext};
use crate::routing::{EVENT_TYPE_HEADER, Router, dead_letter_headers};
use crate::{Config, ProcessorSettings};

type Processor = StreamConsumer<ProcessorContext>;

/// Runs the processor until `shutdown` fires, then commits what it has processed, leaves the
/// group and returns. Returns an error when an output cannot be delivered: its input offset is
/// then not committed, and the replica's restart processes it again.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = &config.processor;
    let client_id = format!("processor-{}", instance_name());
    let context = ProcessorContext::default();
    let consumer: Processor = client_config(
        &config.kafka,
        &client_id,
        &[
            ("group.id", settings.group_id.as_str()),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
            // Offsets are stored by hand, only after the outputs they caused are acknowledged.
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ],
    )
    .create_with_context(context.clone())
    .context("creating the Kafka consumer")?;
    let producer: FutureProducer<TracingContext> = client_config(
        &config.kafka,
        &client_id,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
        ],
    )
    .create_with_context(TracingContext)
    .context("creating the Kafka producer")?;

    tracing::info!(
        brokers = %config.kafka.brokers,
        group_id = %settings.group_id,
        input_topic = %settings.input_topic,
        output_topic = %settings.output_topic,
        dlq_topic = %settings.dlq_topic,
        window_size = settings.window_size,
        threshold = settings.threshold,
        %client_id,
        "processor starting"
    );
    let topics = [
        settings.input_topic.as_str(),
        settings.output_topic.as_str(),
        settings.dlq_topic.as_str(),
    ];
    if !wait_for_topics(consumer.client(), &topics, &shutdown).await {
        return Ok(());
    }
    consumer
        .subscribe(&[settings.input_topic.as_str()])
        .context("subscribing to the input topic")?;

    let mut worker = Worker {
        settings,
        consumer: &consumer,
        context: &context,
        producer: &producer,
        router: Router::new(settings.rules(), settings.decode_options()),
        bad_input: BadInputLog::new(Duration::from_secs(10), 10),
        stats: Stats::default(),
    };
    let result = worker.run(&shutdown).await;

    // Commit what was processed and acknowledged, then leave the group so the partitions move
    // to the other replicas at once instead of after the session timeout.
    final_commit(&consumer).await;
    consumer.unsubscribe();
    drop(worker);
    drop(consumer);
    let _ = producer.flush(Timeout::After(Duration::from_secs(10)));
    tracing::info!("processor stopped");
    result
}

struct Worker<'a> {
    settings: &'a ProcessorSettings,
    consumer: &'a Processor,
    context: &'a ProcessorContext,
    producer: &'a FutureProducer<TracingContext>,
    router: Router,
    bad_input: BadInputLog,
    stats: Stats,
}

impl<'a> Worker<'a> {
    async fn run(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            let batch = self.collect_batch(shutdown).await;
            if !batch.is_empty() {
                self.process_batch(&batch).await?;
            }
            self.stats.maybe_report(self.router.sensors());
        }
        Ok(())
    }

    /// Waits for a first record, then collects more until the commit interval has passed,
    /// the batch is full or shutdown is requested.
    async fn collect_batch(&mut self, shutdown: &CancellationToken) -> Vec<BorrowedMessage<'a>> {
        let consumer = self.consumer;
        let mut batch = Vec::new();
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return batch,
            message = consumer.recv() => message,
        };
        self.accept(&mut batch, first).await;
        let deadline = Instant::now() + Duration::from_millis(self.settings.commit_interval_ms);
        while batch.len() < self.settings.batch_max_records {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(deadline.into()) => break,
                message = consumer.recv() => self.accept(&mut batch, message).await,
            }
        }
        self.apply_assignment_changes(&mut batch);
        batch
    }

    async fn accept(
        &mut self,
        batch: &mut Vec<BorrowedMessage<'a>>,
        message: Result<BorrowedMessage<'a>, KafkaError>,
    ) {
        // A rebalance reported during this poll applies to what was collected before it.
        self.apply_assignment_changes(batch);
        match message {
            Ok(message) => batch.push(message),
            Err(error) => {
                tracing::warn!(%error, "consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Drops the windows, and the collected records, of partitions that were revoked.
    fn apply_assignment_changes(&mut self, batch: &mut Vec<BorrowedMessage<'a>>) {
        for change in self.context.take_changes() {
            if let AssignmentChange::Revoked(partitions) = change {
                for partition in &partitions {
                    self.router.drop_partition(*partition);
                }
                batch.retain(|m| !partitions.contains(&m.partition()));
            }
        }
    }

    async fn process_batch(&mut self, batch: &[BorrowedMessage<'a>]) -> anyhow::Result<()> {
        let settings = self.settings;
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(batch.len() * 2);
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        let mut events = Vec::new();
        for message in batch {
            let (partition, offset) = (message.partition(), message.offset());
            let record = RawRecord {
                key: message.key(),
                payload: message.payload(),
                timestamp_ms: message.timestamp().to_millis(),
                offset,
            };
            self.stats.consumed += 1;
            match self.router.route(partition, &record, &mut events) {
                Ok(()) => {
                    for event in events.drain(..) {
                        self.stats.count_event(event.kind());
                        let payload = event.to_json();
                        let headers = OwnedHeaders::new().insert(Header {
                            key: EVENT_TYPE_HEADER,
                            value: Some(event.kind()),
                        });
                        let record = FutureRecord::to(&settings.output_topic)
                            .key(event.sensor_id())
                            .payload(&payload)
                            .headers(headers);
                        deliveries.push(send(self.producer, record).await?);
                    }
                }
                Err(error) => {
                    self.stats.dead_letters += 1;
                    let reason = error.to_string();
                    self.bad_input
                        .record(partition, offset, error.kind(), &reason);
                    let mut headers = OwnedHeaders::new();
                    for (key, value) in
                        dead_letter_headers(&error, &settings.input_topic, partition, offset)
                    {
                        headers = headers.insert(Header {
                            key,
                            value: Some(value.as_str()),
                        });
                    }
                    let mut record =
                        FutureRecord::<[u8], [u8]>::to(&settings.dlq_topic).headers(headers);
                    if let Some(key) = record_key(message) {
                        record = record.key(key);
                    }
                    if let Some(payload) = message.payload() {
                        record = record.payload(payload);
                    }
                    deliveries.push(send(self.producer, record).await?);
                }
            }
            next_offsets.insert(partition, offset + 1);
        }
        for delivery in futures::future::join_all(deliveries).await {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => bail!(
                    "an output was not delivered, stopping so its input is processed again: {error}"
                ),
                Err(_) => bail!("the producer closed before an output was acknowledged"),
            }
        }
        self.store_offsets(&next_offsets)
    }

    /// Stores, for commit, the offset each partition resumes from.
    ///
    /// `store_offsets` takes the offsets to resume from as they are. (The single-partition
    /// `store_offset` is librdkafka's legacy call that stores offset + 1, which would skip a
    /// record per partition on restart.)
    fn store_offsets(&self, next_offsets: &HashMap<i32, i64>) -> anyhow::Result<()> {
        let topic = self.settings.input_topic.as_str();
        for (&partition, &offset) in next_offsets {
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(topic, partition, Offset::Offset(offset))
                .context("building the offset list")?;
            // Fails only for a partition revoked meanwhile; its new owner processes it again.
            if let Err(error) = self.consumer.store_offsets(&list) {
                tracing::debug!(partition, offset, %error, "offset not stored: partition no longer assigned");
            }
        }
        Ok(())
    }
}

/// Commits the stored offsets before leaving the group. A rebalance under way (several
/// replicas stopping at once) makes the commit fail until the consumer has served it, so it is
/// retried while polling for up to five seconds. Records polled meanwhile are not processed
/// and their offsets are not stored: the next owner processes them.
async fn final_commit(consumer: &Processor) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return,
            Err(KafkaError::ConsumerCommit(
                code
                @ (RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration),
            )) if Instant::now() < deadline => {
                tracing::debug!(?code, "final commit waits for the rebalance");
                let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
            }
            Err(error) => {
                tracing::warn!(%error, "final offset commit failed; the next owner may repeat some outputs");
                return;
            }
        }
    }
}

fn record_key<'m>(message: &'m BorrowedMessage<'_>) -> Option<&'m [u8]> {
    message.key()
}

/// Enqueues a record, waiting while librdkafka's local queue is full.
async fn send<K, P>(
    producer: &FutureProducer<TracingContext>,
    mut record: FutureRecord<'_, K, P>,
) -> anyhow::Result<DeliveryFuture>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((error, _)) => bail!("could not enqueue an output record: {error}"),
        }
    }
}

/// A name for this replica: the container's host name, else the process id.
fn instance_name() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| std::process::id().to_string())
}

/// Counters for the periodic summary line.
#[derive(Debug)]
struct Stats {
    consumed: u64,
    alerts: u64,
    averages: u64,
    dead_letters: u64,
    last_report: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            consumed: 0,
            alerts: 0,
            averages: 0,
            dead_letters: 0,
            last_report: Instant::now(),
        }
    }
}

impl Stats {
    fn count_event(&mut self, kind: &str) {
        if kind == "alert" {
            self.alerts += 1;
        } else {
            self.averages += 1;
        }
    }

    fn maybe_report(&mut self, sensors: usize) {
        if self.last_report.elapsed() < Duration::from_secs(30) {
            return;
        }
        self.last_report = Instant::now();
        tracing::info!(
            consumed = self.consumed,
            alerts = self.alerts,
            averages = self.averages,
            dead_letters = self.dead_letters,
            sensors,
            "progress"
        );
    }
}
