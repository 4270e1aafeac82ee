//! The consume → process → produce → commit loop, one batch at a time.
//!
//! A batch takes the records the consumer has ready, and closes as soon as it has none ready
//! (or after `commit_interval_ms`, or at `batch_max_records`): a light load gives small batches
//! committed at once, so results are not held back; a backlog gives full batches, so the cost
//! of a commit is spread over many records. The batch's records become events, dead letters
//! and window-state changes, and are committed:
//!
//! - `exactly_once`: all of it, with the batch's input offsets, in one Kafka transaction. An
//!   abortable error aborts it, rewinds the consumer to the batch's first offsets and rolls the
//!   windows back; a fatal one (fencing) ends the replica with an error.
//! - `at_least_once`: waits until the broker has acknowledged every output, then writes the
//!   window state, waits again, and only then stores the offsets for commit. A crash can
//!   repeat outputs, never lose them, and never apply a reading to a window twice.
//!
//! Newly assigned partitions stay paused until their windows are restored from the changelog.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::{counter, histogram};
use anyhow::{Context as _, bail};
use futures::FutureExt as _;
use pipeline_runtime::endpoints::{self, Health};
use pipeline_runtime::kafka::{TracingContext, client_config, wait_for_topics};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sensor_contract::{Event, RawRecord};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bad_input::BadInputLog;
use crate::changelog::{self, RestoreTarget, Restored};
use crate::metrics::BatchTally;
use crate::rebalance::{AssignmentChange, ProcessorContext};
use crate::transactions::Transactions;
use crate::windows::{
    CHECKPOINT_KEY, EVENT_TYPE_HEADER, Routed, Router, dead_letter_headers, encode_checkpoint,
    encode_state_into,
};
use crate::{Config, Guarantee};

type Processor = StreamConsumer<ProcessorContext>;
type RestoreDone = (i32, u64, anyhow::Result<Restored>);

/// Runs the processor until `shutdown` fires, then commits what it has processed, leaves the
/// group and returns. Returns an error when it cannot go on safely (an output not delivered
/// in `at_least_once`, a fenced producer in `exactly_once`): its supervisor restarts it, and
/// the uncommitted input is processed again.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = &config.processor;
    let instance = settings.instance_id();
    let client_id = format!("processor-{instance}");
    let exactly_once = settings.processing_guarantee == Guarantee::ExactlyOnce;
    let health = Arc::new(Health::default());
    // The recorder is installed by `serve`: metrics registered before it would be lost.
    endpoints::serve(&settings.http_address, health.clone(), shutdown.clone()).await?;
    crate::metrics::describe();
    let context = ProcessorContext::new(health.clone());
    let consumer: Processor = consumer_config(config, &client_id)
        .create_with_context(context.clone())
        .context("creating the Kafka consumer")?;
    let producer: FutureProducer<TracingContext> = producer_config(config, &client_id, &instance)
        .create_with_context(TracingContext)
        .context("creating the Kafka producer")?;

    let state_topic = settings.state_topic();
    tracing::info!(
        brokers = %config.kafka.brokers,
        group_id = %settings.group_id,
        input_topic = %settings.input_topic,
        output_topic = %settings.output_topic,
        dlq_topic = %settings.dlq_topic,
        state_topic = %state_topic,
        guarantee = ?settings.processing_guarantee,
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
    let input_partitions = tokio::task::block_in_place(|| {
        consumer
            .fetch_metadata(Some(&settings.input_topic), Duration::from_secs(10))
            .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))
    })
    .context("reading the input topic's partitions")?;
    changelog::ensure_topic(&config.kafka, &state_topic, input_partitions as i32).await?;
    let transactions = if exactly_once {
        let transactions = Transactions::new(&producer, &transactional_id(config, &instance));
        if !transactions.init(&shutdown).await? {
            return Ok(());
        }
        Some(transactions)
    } else {
        None
    };
    consumer
        .subscribe(&[settings.input_topic.as_str()])
        .context("subscribing to the input topic")?;

    let (restored_tx, restored_rx) = mpsc::unbounded_channel();
    let mut worker = Worker {
        config,
        state_topic,
        consumer: &consumer,
        context: &context,
        producer: &producer,
        transactions,
        router: Router::new(settings.rules(), settings.decode_options()),
        restores: HashMap::new(),
        next_restore: 0,
        restored_tx,
        restored_rx,
        bad_input: BadInputLog::new(Duration::from_secs(10), 10),
        stats: Stats::default(),
        health: health.clone(),
        assigned: BTreeSet::new(),
        assigned_once: false,
        tally: BatchTally::default(),
    };
    let result = worker.run(&shutdown).await;
    health.set_ready(false);

    if !exactly_once {
        final_commit(&consumer).await;
    }
    consumer.unsubscribe();
    drop(worker);
    drop(consumer);
    let _ = producer.flush(Timeout::After(Duration::from_secs(10)));
    tracing::info!("processor stopped");
    result
}

/// The consumer's configuration: the group, cooperative rebalancing, offsets stored by the
/// loop (committed by librdkafka in `at_least_once`, in transactions in `exactly_once`),
/// `read_committed`. Public so that benchmarks measure clients set up exactly like this.
pub fn consumer_config(config: &Config, client_id: &str) -> ClientConfig {
    let settings = &config.processor;
    let exactly_once = settings.processing_guarantee == Guarantee::ExactlyOnce;
    client_config(
        &config.kafka,
        client_id,
        &[
            ("group.id", settings.group_id.as_str()),
            ("partition.assignment.strategy", "cooperative-sticky"),
            // at_least_once commits stored offsets; exactly_once commits them in transactions.
            (
                "enable.auto.commit",
                if exactly_once { "false" } else { "true" },
            ),
            ("auto.commit.interval.ms", "1000"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            // Per-partition lag for the metrics.
            ("statistics.interval.ms", "5000"),
        ],
    )
}

/// The producer's configuration: idempotent, lz4, and transactional in `exactly_once` with
/// the transactional id `<group_id>-<instance>`.
pub fn producer_config(config: &Config, client_id: &str, instance: &str) -> ClientConfig {
    let settings = &config.processor;
    let transactional_id = transactional_id(config, instance);
    let transaction_timeout = settings.transaction_timeout_ms.to_string();
    let mut producer_settings = vec![
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("linger.ms", "5"),
        ("compression.type", "lz4"),
    ];
    if settings.processing_guarantee == Guarantee::ExactlyOnce {
        producer_settings.push(("transactional.id", transactional_id.as_str()));
        producer_settings.push(("transaction.timeout.ms", transaction_timeout.as_str()));
    }
    client_config(&config.kafka, client_id, &producer_settings)
}

/// `<group_id>-<instance>`: one per replica, fenced by the group generation (KIP-447).
fn transactional_id(config: &Config, instance: &str) -> String {
    format!("{}-{instance}", config.processor.group_id)
}

/// A partition whose windows are being restored.
struct PendingRestore {
    /// Tells a finished restore of an earlier assignment of the partition from this one's.
    id: u64,
    /// Offset of the first record of the partition fetched before it was paused, if any; the
    /// partition is rewound to it once restored.
    rewind_to: Option<i64>,
}

struct Worker<'a> {
    config: &'a Config,
    state_topic: String,
    consumer: &'a Processor,
    context: &'a ProcessorContext,
    producer: &'a FutureProducer<TracingContext>,
    transactions: Option<Transactions<'a>>,
    router: Router,
    restores: HashMap<i32, PendingRestore>,
    next_restore: u64,
    restored_tx: mpsc::UnboundedSender<RestoreDone>,
    restored_rx: mpsc::UnboundedReceiver<RestoreDone>,
    bad_input: BadInputLog,
    stats: Stats,
    health: Arc<Health>,
    assigned: BTreeSet<i32>,
    assigned_once: bool,
    tally: BatchTally,
}

impl<'a> Worker<'a> {
    async fn run(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            let mut batch = self.collect_batch(shutdown).await?;
            self.apply_assignment_changes(&mut batch);
            if !batch.is_empty() {
                self.process_batch(&batch).await?;
            }
            self.stats.maybe_report(self.router.sensors());
        }
        Ok(())
    }

    /// Waits for a first record, then takes the records already waiting until none is ready,
    /// the batch is full or the commit interval has passed. Finished restores and assignment
    /// changes are applied meanwhile.
    async fn collect_batch(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Vec<BorrowedMessage<'a>>> {
        let consumer = self.consumer;
        let settings = &self.config.processor;
        let interval = Duration::from_millis(settings.commit_interval_ms);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(restored) = self.restored_rx.recv() => self.finish_restore(restored)?,
                _ = self.context.changed() => self.apply_assignment_changes(&mut batch),
                message = consumer.recv() => {
                    let started = Instant::now();
                    self.accept(&mut batch, message).await;
                    // Take what else is ready without waiting; close the batch when nothing
                    // is, when it is full, or after the commit interval.
                    while batch.len() < settings.batch_max_records && started.elapsed() < interval {
                        match consumer.recv().now_or_never() {
                            Some(message) => self.accept(&mut batch, message).await,
                            None => break,
                        }
                    }
                    if !batch.is_empty() {
                        break;
                    }
                }
            }
        }
        Ok(batch)
    }

    async fn accept(
        &mut self,
        batch: &mut Vec<BorrowedMessage<'a>>,
        message: Result<BorrowedMessage<'a>, KafkaError>,
    ) {
        // A rebalance reported during this poll applies to what was collected before it.
        self.apply_assignment_changes(batch);
        match message {
            Ok(message) => {
                let partition = message.partition();
                if let Some(pending) = self.restores.get_mut(&partition) {
                    // Fetched before the partition was paused: processed after the restore.
                    pending.rewind_to.get_or_insert(message.offset());
                } else {
                    batch.push(message);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Revoked partitions: their windows and collected records are dropped. Assigned ones:
    /// their restore starts.
    fn apply_assignment_changes(&mut self, batch: &mut Vec<BorrowedMessage<'a>>) {
        // Called for every record: nothing to do is the common case.
        let changes = self.context.take_changes();
        if changes.is_empty() {
            return;
        }
        for change in changes {
            match change {
                AssignmentChange::Revoked(partitions) => {
                    counter!(crate::metrics::REBALANCES).increment(1);
                    for partition in &partitions {
                        self.router.drop_partition(*partition);
                        self.restores.remove(partition);
                        self.assigned.remove(partition);
                    }
                    batch.retain(|m| !partitions.contains(&m.partition()));
                }
                AssignmentChange::Assigned(partitions) => {
                    counter!(crate::metrics::REBALANCES).increment(1);
                    self.assigned_once = true;
                    for partition in partitions {
                        self.assigned.insert(partition);
                        self.start_restore(partition);
                    }
                }
            }
        }
        self.update_health();
    }

    /// Ready once an assignment has arrived and every assigned partition is restored.
    fn update_health(&self) {
        self.health
            .set_ready(self.assigned_once && self.restores.is_empty());
        crate::metrics::set_state(self.assigned.len(), self.router.sensors());
    }

    fn start_restore(&mut self, partition: i32) {
        self.next_restore += 1;
        let id = self.next_restore;
        self.restores.insert(
            partition,
            PendingRestore {
                id,
                rewind_to: None,
            },
        );
        let kafka = self.config.kafka.clone();
        let settings = self.config.processor.clone();
        let state_topic = self.state_topic.clone();
        let done = self.restored_tx.clone();
        tokio::task::spawn_blocking(move || {
            let target = RestoreTarget {
                state_topic: &state_topic,
                input_topic: &settings.input_topic,
                group_id: &settings.group_id,
                partition,
                window_size: settings.window_size,
                // Long enough for an abandoned transaction to be aborted by the broker.
                catch_up_timeout: Duration::from_millis(settings.transaction_timeout_ms)
                    + Duration::from_secs(30),
            };
            let result = changelog::restore_partition(&kafka, &target);
            let _ = done.send((partition, id, result));
        });
    }

    fn finish_restore(&mut self, (partition, id, result): RestoreDone) -> anyhow::Result<()> {
        let Some(pending) = self.restores.get(&partition) else {
            return Ok(());
        };
        if pending.id != id {
            return Ok(()); // a restore of an earlier assignment of this partition
        }
        let restored = match result {
            Ok(restored) => restored,
            Err(error) => {
                tracing::warn!(partition, %error, "restoring windows failed, retrying");
                self.start_restore(partition);
                return Ok(());
            }
        };
        let rewind_to = pending.rewind_to;
        self.restores.remove(&partition);
        tracing::info!(
            partition,
            sensors = restored.stats.sensors,
            records = restored.stats.records,
            seconds = restored.stats.seconds,
            checkpoint = ?restored.checkpoint,
            committed = ?restored.committed,
            "windows restored"
        );
        histogram!(crate::metrics::RESTORE_SECONDS).record(restored.stats.seconds);
        self.router.load_partition(partition, restored.sensors);
        self.update_health();
        // The state belongs to the checkpoint's offset: resume there. Without one (a new
        // partition) resume where the consumer started, before any record dropped meanwhile.
        if let Some(offset) = restored.checkpoint.or(rewind_to) {
            self.seek(partition, offset)?;
        }
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.config.processor.input_topic, partition);
        self.consumer
            .resume(&list)
            .context("resuming a restored partition")?;
        Ok(())
    }

    fn seek(&self, partition: i32, offset: i64) -> anyhow::Result<()> {
        self.consumer
            .seek(
                &self.config.processor.input_topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            )
            .with_context(|| format!("moving partition {partition} to offset {offset}"))
    }

    async fn process_batch(&mut self, batch: &[BorrowedMessage<'a>]) -> anyhow::Result<()> {
        let settings = &self.config.processor;
        let mut first_offsets: HashMap<i32, i64> = HashMap::new();
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        for message in batch {
            first_offsets
                .entry(message.partition())
                .or_insert(message.offset());
            next_offsets.insert(message.partition(), message.offset() + 1);
        }
        self.router.commit_batch();
        if let Some(transactions) = &self.transactions {
            transactions.begin()?;
        }
        self.tally = BatchTally::default();
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(batch.len() * 2);
        let processing = Instant::now();
        let outcome = self.produce_outputs(batch, &mut deliveries).await;
        histogram!(crate::metrics::PROCESSING_SECONDS).record(processing.elapsed().as_secs_f64());
        let committing = Instant::now();
        let Some(transactions) = &self.transactions else {
            outcome?;
            await_all(deliveries, "an output").await?;
            let mut state_writes = Vec::new();
            self.produce_state(&next_offsets, &mut state_writes).await?;
            await_all(state_writes, "a window-state record").await?;
            self.router.commit_batch();
            self.store_offsets(&next_offsets)?;
            histogram!(crate::metrics::COMMIT_SECONDS).record(committing.elapsed().as_secs_f64());
            self.tally.committed();
            self.stats.add(&self.tally);
            self.update_health();
            return Ok(());
        };
        let committed = async {
            outcome?;
            let mut state_writes = Vec::new();
            self.produce_state(&next_offsets, &mut state_writes).await?;
            // Every record of the transaction is acknowledged before the commit is asked for.
            // The commit would wait for them anyway, but through rust-rdkafka's flush, which
            // polls the event queue in 100 ms slices that the producer's own polling thread
            // empties first: every commit took 100 ms more than it needed.
            await_all(deliveries, "an output").await?;
            await_all(state_writes, "a window-state record").await?;
            transactions
                .commit(self.consumer, &settings.input_topic, &next_offsets)
                .await
        }
        .await;
        match committed {
            Ok(()) => {
                histogram!(crate::metrics::COMMIT_SECONDS)
                    .record(committing.elapsed().as_secs_f64());
                self.router.commit_batch();
                self.stats.transactions += 1;
                self.tally.committed();
                self.stats.add(&self.tally);
                self.update_health();
                Ok(())
            }
            Err(error) if Transactions::is_fatal(&error) => Err(error),
            Err(error) => {
                tracing::warn!("transaction aborted, the batch will be processed again: {error:#}");
                transactions.abort()?;
                self.stats.aborts += 1;
                BatchTally::aborted();
                self.router.rollback_batch();
                self.rewind(&first_offsets)
            }
        }
    }

    /// Produces the events and dead letters of a batch.
    async fn produce_outputs(
        &mut self,
        batch: &[BorrowedMessage<'a>],
        deliveries: &mut Vec<DeliveryFuture>,
    ) -> anyhow::Result<()> {
        let settings = &self.config.processor;
        let mut events = Vec::new();
        let mut payload = Vec::with_capacity(256);
        for message in batch {
            let (partition, offset) = (message.partition(), message.offset());
            let record = RawRecord {
                key: message.key(),
                payload: message.payload(),
                timestamp_ms: message.timestamp().to_millis(),
                offset,
            };
            self.tally.consumed += 1;
            if let Some(ms) = record.timestamp_ms {
                self.tally.timestamps_ms.push(ms);
            }
            match self.router.route(partition, &record, &mut events) {
                Ok(Routed::Applied) => {
                    for event in events.drain(..) {
                        match event {
                            Event::Alert(_) => self.tally.alerts += 1,
                            Event::Average(_) => self.tally.averages += 1,
                        }
                        payload.clear();
                        event.write_json(&mut payload);
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
                Ok(Routed::AlreadyApplied) => self.stats.skipped += 1,
                Err(error) => {
                    *self.tally.dead_letters.entry(error.kind()).or_default() += 1;
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
                    if let Some(key) = message.key() {
                        record = record.key(key);
                    }
                    if let Some(payload) = message.payload() {
                        record = record.payload(payload);
                    }
                    deliveries.push(send(self.producer, record).await?);
                }
            }
        }
        Ok(())
    }

    /// Writes each sensor the batch touched to its partition of the changelog, then each
    /// partition's checkpoint: the input offset this state corresponds to.
    async fn produce_state(
        &self,
        next_offsets: &HashMap<i32, i64>,
        deliveries: &mut Vec<DeliveryFuture>,
    ) -> anyhow::Result<()> {
        // One buffer for every value: librdkafka copies each record when it is enqueued.
        let mut value = Vec::with_capacity(256);
        for (partition, sensor, state) in self.router.touched() {
            value.clear();
            encode_state_into(state, &mut value);
            let record = FutureRecord::to(&self.state_topic)
                .partition(partition)
                .key(sensor.as_bytes())
                .payload(value.as_slice());
            deliveries.push(send(self.producer, record).await?);
        }
        for (&partition, &next) in next_offsets {
            if !self.router.has_partition(partition) {
                continue;
            }
            let value = encode_checkpoint(next);
            let record = FutureRecord::to(&self.state_topic)
                .partition(partition)
                .key(CHECKPOINT_KEY)
                .payload(value.as_slice());
            deliveries.push(send(self.producer, record).await?);
        }
        Ok(())
    }

    /// Stores, for commit, the offset each partition resumes from (`at_least_once`).
    ///
    /// `store_offsets` takes the offsets to resume from as they are. (The single-partition
    /// `store_offset` is librdkafka's legacy call that stores offset + 1, which would skip a
    /// record per partition on restart.)
    fn store_offsets(&self, next_offsets: &HashMap<i32, i64>) -> anyhow::Result<()> {
        let topic = self.config.processor.input_topic.as_str();
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

    /// After an abort: every partition of the batch goes back to the batch's first record.
    fn rewind(&self, first_offsets: &HashMap<i32, i64>) -> anyhow::Result<()> {
        for (&partition, &offset) in first_offsets {
            if self.router.has_partition(partition) {
                self.seek(partition, offset)?;
            }
        }
        Ok(())
    }
}

/// Waits for every delivery; the first failure is an error naming `what` was not delivered.
async fn await_all(deliveries: Vec<DeliveryFuture>, what: &str) -> anyhow::Result<()> {
    for delivery in futures::future::join_all(deliveries).await {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => {
                bail!("{what} was not delivered, stopping so its input is processed again: {error}")
            }
            Err(_) => bail!("the producer closed before {what} was acknowledged"),
        }
    }
    Ok(())
}

/// Commits the stored offsets before leaving the group (`at_least_once`). A rebalance under
/// way (several replicas stopping at once) makes the commit fail until the consumer has served
/// it, so it is retried while polling for up to five seconds. Records polled meanwhile are not
/// processed and their offsets are not stored: the next owner processes them.
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

/// Enqueues a record, waiting while librdkafka's local queue is full. Public so that the
/// benchmark's passthrough enqueues exactly as the processor does.
pub async fn send<K, P>(
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

/// Counters for the periodic summary line.
#[derive(Debug)]
struct Stats {
    consumed: u64,
    alerts: u64,
    averages: u64,
    dead_letters: u64,
    skipped: u64,
    transactions: u64,
    aborts: u64,
    last_report: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            consumed: 0,
            alerts: 0,
            averages: 0,
            dead_letters: 0,
            skipped: 0,
            transactions: 0,
            aborts: 0,
            last_report: Instant::now(),
        }
    }
}

impl Stats {
    /// Adds a committed batch, so the log line agrees with the metrics.
    fn add(&mut self, tally: &BatchTally) {
        self.consumed += tally.consumed;
        self.alerts += tally.alerts;
        self.averages += tally.averages;
        self.dead_letters += tally.dead_letters.values().sum::<u64>();
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
            already_applied = self.skipped,
            transactions = self.transactions,
            aborts = self.aborts,
            sensors,
            "progress"
        );
    }
}
