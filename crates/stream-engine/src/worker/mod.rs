//! The batch loop: process records as the consumer delivers them, produce their outputs and
//! state, commit the batch with the guarantee's strategy, or roll it back.
//!
//! A batch starts at the first record ready and goes on with the records the consumer has
//! ready, each processed as it is taken (the record is released at once, and the outputs go
//! to the producer every [`OUTPUT_CHUNK`], so that librdkafka compresses and sends them while
//! the batch goes on). It closes as soon as none is ready (or after the commit interval, or at
//! the batch size): a light load gives small batches committed at once, so results are not
//! held back; a backlog gives full batches, so the cost of a commit is spread over many
//! records. Newly assigned partitions stay paused until their state is restored; revoked ones
//! are dropped, and a batch holding records of a partition revoked while it ran is rolled back
//! (its transaction aborted) and the partitions kept are rewound to it.
//!
//! When the transactional producer becomes unusable (fenced by the broker's abort of a
//! transaction that outlived its timeout while this process was frozen or cut off, or left in a
//! state it cannot leave), the replica does what Kafka Streams does when a task migrates: it
//! drops the batch and every partition's state, builds a new producer under the same
//! transactional id (whose initialisation fences the old one and settles its last
//! transaction), and restores each partition from the changelog, resuming at its committed
//! position. It exits only when that keeps happening, which means another live instance has
//! its transactional id.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::{counter, histogram};
use anyhow::Context as _;
use pipeline_runtime::endpoints::Health;
use pipeline_runtime::rebootstrap::CreateRebootstrapping;
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::consumer::{Consumer, MessageStream, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::bad_input::BadInputLog;
use crate::clients::producer_config;
use crate::context::EngineContext;
use crate::deliveries::{Deliveries, EngineProducer, deliver_now, enqueue};
use crate::job::{InputRecord, Job, Rejection};
use crate::metrics::{self, BatchTally};
use crate::progress::Progress;
use crate::restore::Restores;
use crate::task::{Processed, SnapshotPolicy, StateWrites, Task};
use crate::transactions::Transactions;
use crate::{BatchError, EngineSettings, dead_letters};

use produce::produce_state;

mod partitions;
mod produce;

/// Producers rebuilt within [`RECOVERY_WINDOW`] after which the next loss is fatal.
const MAX_RECOVERIES: usize = 3;
/// See [`MAX_RECOVERIES`].
const RECOVERY_WINDOW: Duration = Duration::from_secs(60);
/// Longest wait for the group's committed offsets while its coordinator moves.
const COMMITTED_WAIT: Duration = Duration::from_secs(60);

/// Outputs a batch collects before they are handed to the producer.
const OUTPUT_CHUNK: usize = 256;

/// The batch under way.
struct Batch {
    /// Per partition: the offsets of the batch's records, first to next.
    spans: HashMap<i32, Range<i64>>,
    records: usize,
    /// The oldest Kafka timestamp among its records.
    oldest_ms: i64,
    started: Instant,
    started_ms: i64,
    /// Partitions of the batch revoked while it ran: it cannot commit.
    revoked: Vec<i32>,
}

impl Batch {
    fn new() -> Self {
        Self {
            spans: HashMap::new(),
            records: 0,
            oldest_ms: i64::MAX,
            started: Instant::now(),
            started_ms: metrics::now_ms(),
            revoked: Vec::new(),
        }
    }

    fn add(&mut self, message: &BorrowedMessage<'_>) {
        let (partition, offset) = (message.partition(), message.offset());
        self.spans.entry(partition).or_insert(offset..offset).end = offset + 1;
        self.records += 1;
        if let Some(ms) = message.timestamp().to_millis() {
            self.oldest_ms = self.oldest_ms.min(ms);
        }
    }
}

/// How a batch is committed: the guarantee, as the one place that branches on it.
pub(crate) enum Commit {
    /// Everything in one Kafka transaction.
    ExactlyOnce(Transactions),
    /// Outputs acknowledged, then state, then offsets stored.
    AtLeastOnce,
}

/// How an `exactly_once` batch ended when it did not commit.
enum Failed {
    /// Aborted: rewind and process it again.
    Aborted,
    /// The producer cannot go on: replace it.
    ProducerLost(BatchError),
}

pub(crate) struct Worker<'a, J: Job> {
    settings: &'a EngineSettings,
    kafka: &'a KafkaSettings,
    consumer: &'a StreamConsumer<EngineContext>,
    /// The consumer's records, one stream for the worker's life: `StreamConsumer::recv` makes
    /// a stream per call, whose waker slot costs two mutex locks per record.
    messages: MessageStream<'a, EngineContext>,
    context: &'a EngineContext,
    producer: Arc<EngineProducer>,
    commit: Commit,
    /// When producers were rebuilt, within the last [`RECOVERY_WINDOW`].
    recoveries: Vec<Instant>,
    task: Task<J>,
    restores: Restores,
    health: Arc<Health>,
    assigned: BTreeSet<i32>,
    assigned_once: bool,
    bad_input: BadInputLog,
    progress: Progress,
    tally: BatchTally,
    writes: StateWrites,
    last_snapshot_request: Instant,
    /// Records enqueued by this replica; delivery reports are counted against it.
    sent: u64,
    /// Producers built so far (1 for the first), for the checkpoints' writer header.
    producers: u32,
    /// `<instance_id>/<producers>`: the checkpoints' writer header.
    writer: String,
    /// Partitions rewound after an abort, with the offset their next record must have (the
    /// aborted batch's first: a record that exists and that this consumer read).
    rewound: HashMap<i32, i64>,
    /// Restored partitions waiting, paused, to be moved to where their restored state stands:
    /// librdkafka refuses a seek until it has started fetching the partition, which waits for
    /// the group's committed offset (seconds, while a transaction is open or the coordinator
    /// loads). Moved and resumed as soon as it takes the seek.
    deferred_seeks: HashMap<i32, i64>,
    /// When the deferred seeks are tried next: a deadline, not a sleep restarted with each
    /// wait, so that records of other partitions arriving more often than the retry period
    /// do not put it off for good.
    next_seek_retry: Instant,
}

impl<'a, J: Job> Worker<'a, J> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &'a EngineSettings,
        kafka: &'a KafkaSettings,
        consumer: &'a StreamConsumer<EngineContext>,
        context: &'a EngineContext,
        producer: Arc<EngineProducer>,
        commit: Commit,
        job: J,
        restores: Restores,
        health: Arc<Health>,
    ) -> Self {
        Self {
            settings,
            kafka,
            consumer,
            messages: consumer.stream(),
            context,
            producer,
            commit,
            recoveries: Vec::new(),
            task: Task::with_snapshots(
                job,
                SnapshotPolicy {
                    every_records: settings.snapshot_every_records,
                },
            ),
            last_snapshot_request: Instant::now(),
            sent: 0,
            producers: 1,
            writer: format!("{}/1", settings.instance_id),
            rewound: HashMap::new(),
            deferred_seeks: HashMap::new(),
            next_seek_retry: Instant::now(),
            restores,
            health,
            assigned: BTreeSet::new(),
            assigned_once: false,
            bad_input: BadInputLog::new(Duration::from_secs(10), 10),
            progress: Progress::default(),
            tally: BatchTally::default(),
            writes: StateWrites::default(),
        }
    }

    pub async fn run(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        while !shutdown.is_cancelled() {
            if let Some(first) = self.first_record(shutdown).await? {
                if self.last_snapshot_request.elapsed() >= self.settings.snapshot_interval {
                    self.task.request_snapshots();
                    self.last_snapshot_request = Instant::now();
                }
                self.process_batch(first, shutdown).await?;
            }
            self.progress.maybe_report(self.task.store().keys());
        }
        Ok(())
    }

    /// The producer in use (for the final flush).
    pub fn producer(&self) -> Arc<EngineProducer> {
        self.producer.clone()
    }

    /// Cancels the restores under way and waits for their threads.
    pub async fn shut_down(&mut self) {
        self.restores.shut_down().await;
    }

    /// Runs a batch from its first record: processes it and the records the consumer has
    /// ready, as they come, then commits (or rolls back) the batch.
    async fn process_batch(
        &mut self,
        first: BorrowedMessage<'a>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        // Reports of an earlier aborted batch's records (purged) must not fail this one.
        let deliveries = self.producer.context();
        deliveries.reset(self.sent).await;
        if let Commit::ExactlyOnce(transactions) = &self.commit
            && let Err(error) = transactions.begin()
        {
            // The record is read again: the new producer's partitions resume where they
            // committed.
            return self.replace_producer(error, shutdown).await;
        }
        self.tally.clear();
        let mut batch = Batch::new();
        let outcome = self.process_records(first, &mut batch).await;
        histogram!(self.settings.metrics.processing_seconds)
            .record(batch.started.elapsed().as_secs_f64());
        if batch.oldest_ms != i64::MAX {
            histogram!(self.settings.metrics.input_wait_seconds)
                .record((batch.started_ms - batch.oldest_ms).max(0) as f64 / 1000.0);
        }
        let outcome = outcome.and_then(|()| match batch.revoked.is_empty() {
            true => Ok(()),
            false => Err(BatchError::Revoked {
                partitions: batch.revoked.clone(),
            }),
        });
        let spans = batch.spans;
        let committing = Instant::now();
        let (task, writes, sent) = (&mut self.task, &mut self.writes, &mut self.sent);
        let writer = self.writer.as_str();
        let (producer, settings, consumer) = (&*self.producer, self.settings, self.consumer);
        let committed = match &self.commit {
            Commit::AtLeastOnce if matches!(outcome, Err(BatchError::Revoked { .. })) => {
                // Outputs already enqueued go out (at least once allows the repeat); the
                // state is rolled back and the kept partitions processed again.
                Err(Failed::Aborted)
            }
            Commit::AtLeastOnce => {
                // Any failure stops the replica: its uncommitted input is processed again.
                outcome?;
                deliver_now(producer, *sent).await?;
                produce_state(task, writes, producer, settings, &spans, writer, sent).await?;
                deliver_now(producer, *sent).await?;
                self.store_offsets(&spans)?;
                Ok(())
            }
            Commit::ExactlyOnce(transactions) => {
                let committed = async {
                    outcome?;
                    produce_state(task, writes, producer, settings, &spans, writer, sent).await?;
                    // Every record of the transaction is acknowledged before the commit is
                    // asked for, so that a failed one aborts the batch with its topic named.
                    deliver_now(producer, *sent).await?;
                    transactions
                        .commit(consumer, &settings.input_topic, &spans, shutdown)
                        .await
                }
                .await;
                match committed {
                    Ok(()) => Ok(()),
                    Err(error) if !error.is_fatal() => {
                        if let BatchError::Revoked { .. } = error {
                            // A rebalance, not a failure.
                            tracing::info!(
                                "transaction aborted, the batch will be processed again: {error}"
                            );
                        } else {
                            tracing::warn!(
                                "transaction aborted, the batch will be processed again: {error}"
                            );
                        }
                        match transactions.abort(shutdown).await {
                            Ok(()) => Err(Failed::Aborted),
                            // A transaction that can be neither committed nor aborted: the
                            // producer is in a state it cannot leave.
                            Err(abort) => Err(Failed::ProducerLost(abort)),
                        }
                    }
                    Err(fatal) => Err(Failed::ProducerLost(fatal)),
                }
            }
        };
        match committed {
            Ok(()) => {
                histogram!(self.settings.metrics.commit_seconds)
                    .record(committing.elapsed().as_secs_f64());
                self.task.commit();
                self.tally.committed(&self.settings.metrics);
                self.progress.add(&self.tally);
                if matches!(self.commit, Commit::ExactlyOnce(_)) {
                    self.progress.transactions += 1;
                }
                self.update_health();
            }
            Err(failed) => {
                self.progress.aborts += 1;
                counter!(self.settings.metrics.batches, "outcome" => "aborted").increment(1);
                self.task.rollback();
                match failed {
                    Failed::Aborted => self.rewind(&spans)?,
                    Failed::ProducerLost(error) => {
                        return self.replace_producer(error, shutdown).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// The transactional producer is unusable (`cause`): drops every partition's state,
    /// builds a new producer under the same transactional id, and restores every assigned
    /// partition from the changelog, resuming at its committed position (a stateless job's
    /// partitions move to that position at once). An error when
    /// producers keep being lost: another live instance has this transactional id.
    async fn replace_producer(
        &mut self,
        cause: BatchError,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let Commit::ExactlyOnce(transactions) = &self.commit else {
            return Err(cause.into());
        };
        if let BatchError::Interrupted { what } = cause {
            // Shutdown is under way: the replica stops without a new producer, and the broker
            // aborts the open transaction when its timeout passes (or the next owner's
            // initialisation fences it sooner).
            tracing::warn!("stopping while {what} was blocked: the open transaction is left open");
            return Ok(());
        }
        let transactional_id = transactions.transactional_id().to_owned();
        let now = Instant::now();
        self.recoveries
            .retain(|at| now.duration_since(*at) < RECOVERY_WINDOW);
        if self.recoveries.len() >= MAX_RECOVERIES {
            return Err(anyhow::Error::new(cause).context(format!(
                "the transactional producer was lost {} times within {} s: is another live \
                 instance using transactional id {transactional_id}?",
                MAX_RECOVERIES + 1,
                RECOVERY_WINDOW.as_secs()
            )));
        }
        self.recoveries.push(now);
        counter!(self.settings.metrics.producer_recoveries).increment(1);
        tracing::warn!(
            %transactional_id,
            %cause,
            "the transactional producer is unusable: building a new one; every assigned \
             partition restores from the changelog"
        );
        self.health.set_ready(false);
        // The old producer's queue is dropped: nothing of it may reach the broker now.
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        let producer: Arc<EngineProducer> = Arc::new(
            producer_config(self.kafka, self.settings)?
                .create_rebootstrapping(Deliveries::default())
                .context("creating a new Kafka producer")?,
        );
        let transactions = Transactions::new(producer.clone(), &transactional_id)
            .context("starting the transactional producer's watchdog thread")?;
        // Fences the old producer and settles its last transaction (aborted, or completed if
        // its commit had reached the coordinator): the committed positions below are final.
        if !transactions.init(shutdown).await? {
            return Ok(());
        }
        let old = std::mem::replace(&mut self.producer, producer);
        self.commit = Commit::ExactlyOnce(transactions);
        self.sent = 0;
        self.producers += 1;
        self.writer = format!("{}/{}", self.settings.instance_id, self.producers);
        tokio::task::block_in_place(|| drop(old));

        let partitions: Vec<i32> = self.assigned.iter().copied().collect();
        let positions = self.committed_positions(&partitions).await?;
        if J::STATEFUL {
            let mut paused = TopicPartitionList::new();
            for &partition in &partitions {
                paused.add_partition(&self.settings.input_topic, partition);
            }
            // Fails only for a partition a rebalance took meanwhile; its revocation follows.
            if let Err(error) = self.consumer.pause(&paused) {
                tracing::debug!(%error, "pausing the partitions to restore");
            }
        }
        for (&partition, &position) in partitions.iter().zip(&positions) {
            self.rewound.remove(&partition);
            self.deferred_seeks.remove(&partition);
            self.task.drop_partition(partition);
            if J::STATEFUL {
                self.restores.start_at(partition, position);
            } else {
                // No state to restore (and no changelog to read it from): the partition goes
                // on from its committed position at once.
                self.seek(partition, position)?;
            }
        }
        self.update_health();
        tracing::info!(
            %transactional_id,
            partitions = ?partitions,
            "transactional producer rebuilt; restoring the partitions"
        );
        Ok(())
    }

    /// Where each partition's committed input ends (its low watermark if nothing was
    /// committed yet: `auto.offset.reset` is `earliest`). The group coordinator may be moving
    /// (a producer is usually lost because a broker went down): asked again for up to
    /// [`COMMITTED_WAIT`] while it answers "not coordinator" or "loading".
    async fn committed_positions(&self, partitions: &[i32]) -> anyhow::Result<Vec<i64>> {
        let topic = self.settings.input_topic.as_str();
        let mut list = TopicPartitionList::new();
        for &partition in partitions {
            list.add_partition(topic, partition);
        }
        let deadline = Instant::now() + COMMITTED_WAIT;
        let committed = loop {
            let result = tokio::task::block_in_place(|| {
                self.consumer
                    .committed_offsets(list.clone(), Duration::from_secs(10))
            });
            // A partition answered with an error (above all "unstable offset commit": a
            // transaction with its offsets is still open) has no offset to go by yet.
            let result = result.and_then(|committed| {
                match committed.elements().iter().find_map(|e| e.error().err()) {
                    Some(error) => Err(error),
                    None => Ok(committed),
                }
            });
            match result {
                Ok(committed) => break committed,
                Err(error) if Instant::now() < deadline => {
                    tracing::warn!(%error, "reading the committed offsets failed, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(error).context("reading the committed offsets"),
            }
        };
        partitions
            .iter()
            .map(|&partition| {
                match committed
                    .find_partition(topic, partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(offset)) => Ok(offset),
                    _ => tokio::task::block_in_place(|| {
                        self.consumer
                            .fetch_watermarks(topic, partition, Duration::from_secs(30))
                    })
                    .map(|(low, _)| low)
                    .context("reading a partition's first offset"),
                }
            })
            .collect()
    }

    /// Processes `first` and the records the consumer has ready after it through the task,
    /// producing their outputs (every [`OUTPUT_CHUNK`], so that the producer compresses and
    /// sends them while the batch goes on) and dead letters, until none is ready, the batch is
    /// full, its time is up or one of its partitions is revoked.
    async fn process_records(
        &mut self,
        first: BorrowedMessage<'a>,
        batch: &mut Batch,
    ) -> Result<(), BatchError> {
        let settings = self.settings;
        let mut revoked = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            batch.add(&message);
            self.process_record(&message).await?;
            if self.task.outputs().len() >= OUTPUT_CHUNK {
                self.send_outputs().await?;
            }
            // The clock read every few records: it is not free.
            if batch.records >= settings.batch_max_records
                || (batch.records.is_multiple_of(64)
                    && batch.started.elapsed() >= settings.commit_interval)
            {
                break;
            }
            next = self.next_ready(&mut revoked).await;
            if revoked.iter().any(|p| batch.spans.contains_key(p)) {
                batch.revoked = std::mem::take(&mut revoked);
                // Not processed: its partition is rewound to it (or to the batch's first
                // record there) with the rest.
                if let Some(message) = next.take() {
                    let offset = message.offset();
                    batch
                        .spans
                        .entry(message.partition())
                        .or_insert(offset..offset);
                }
            }
        }
        self.send_outputs().await
    }

    /// Processes one record through the task; an unusable one becomes a dead letter.
    async fn process_record(&mut self, message: &BorrowedMessage<'a>) -> Result<(), BatchError> {
        let record = InputRecord {
            key: message.key(),
            value: message.payload(),
            timestamp_ms: message.timestamp().to_millis(),
            partition: message.partition(),
            offset: message.offset(),
        };
        self.tally.consumed += 1;
        if let Some(ms) = record.timestamp_ms {
            self.tally.timestamps_ms.push(ms);
        }
        match self.task.process(&record) {
            Ok(Processed::Applied) => {}
            Ok(Processed::AlreadyApplied) => self.progress.skipped += 1,
            Ok(Processed::Replayed) => self.progress.replayed += 1,
            Err(reason) => self.dead_letter(message, &reason).await?,
        }
        Ok(())
    }

    /// Produces the outputs emitted since the last call.
    async fn send_outputs(&mut self) -> Result<(), BatchError> {
        let settings = self.settings;
        for output in self.task.outputs().records() {
            metrics::add(&mut self.tally.produced, output.kind, 1);
            let mut record = BaseRecord::to(&settings.output_topics[output.topic])
                .key(output.key)
                .payload(output.value);
            if let Some(header) = settings.kind_header {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: header,
                    value: Some(output.kind),
                }));
            }
            enqueue(&self.producer, record, &mut self.sent, "an output").await?;
        }
        self.task.clear_outputs();
        Ok(())
    }

    /// Produces an unusable record to the dead-letter topic, with its key, bytes and reason.
    async fn dead_letter(
        &mut self,
        message: &BorrowedMessage<'a>,
        reason: &J::Reject,
    ) -> Result<(), BatchError> {
        let (partition, offset) = (message.partition(), message.offset());
        metrics::add(&mut self.tally.dead_letters, reason.kind(), 1);
        self.bad_input
            .record(partition, offset, reason.kind(), &reason.to_string());
        let mut headers = OwnedHeaders::new();
        for (key, value) in
            dead_letters::headers(reason, &self.settings.input_topic, partition, offset)
        {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let mut record =
            BaseRecord::<[u8], [u8], ()>::to(&self.settings.dlq_topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        enqueue(&self.producer, record, &mut self.sent, "a dead letter").await
    }

    /// Stores, for commit, the offset each partition resumes from (`at_least_once`).
    ///
    /// `store_offsets` takes the offsets to resume from as they are. (The single-partition
    /// `store_offset` is librdkafka's legacy call that stores offset + 1, which would skip a
    /// record per partition on restart.)
    fn store_offsets(&self, spans: &HashMap<i32, Range<i64>>) -> anyhow::Result<()> {
        let topic = self.settings.input_topic.as_str();
        for (&partition, span) in spans {
            let offset = span.end;
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

    /// After an abort: every partition of the batch goes back to the batch's first record,
    /// which is the next record each must deliver (checked in [`Self::check_rewound`]).
    fn rewind(&mut self, spans: &HashMap<i32, Range<i64>>) -> anyhow::Result<()> {
        for (&partition, span) in spans {
            if self.assigned.contains(&partition) && !self.restores.is_pending(partition) {
                self.seek(partition, span.start)?;
                self.rewound.insert(partition, span.start);
            }
        }
        tracing::info!(partitions = ?spans, "partitions rewound to the aborted batch's first records");
        Ok(())
    }

    /// Whether a record of a rewound partition may be processed. The first one after a
    /// rewind must be the record rewound to: an earlier one was fetched before the seek (left
    /// out), a later one means the seek did not take effect and records in between would be
    /// skipped, so the partition is moved there again (and the record left out).
    fn check_rewound(&mut self, partition: i32, offset: i64) -> anyhow::Result<bool> {
        let Some(&target) = self.rewound.get(&partition) else {
            return Ok(true);
        };
        match offset.cmp(&target) {
            std::cmp::Ordering::Equal => {
                self.rewound.remove(&partition);
                Ok(true)
            }
            std::cmp::Ordering::Less => Ok(false),
            std::cmp::Ordering::Greater => {
                tracing::warn!(
                    partition,
                    offset,
                    rewound_to = target,
                    "a rewound partition delivered a later record than the one rewound to: \
                     moving it back again"
                );
                self.seek(partition, target)?;
                Ok(false)
            }
        }
    }
}
