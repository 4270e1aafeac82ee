//! The sink's loop: consume (read_committed) → decode → one database transaction per batch →
//! commit Kafka offsets for the lag tools.
//!
//! The database is the source of truth for where each partition stands. On assignment a
//! partition is paused until its position is read from the database and the consumer seeks
//! there (Kafka's committed offset can only be behind it: it is committed after the database
//! transaction). In each transaction the positions are read again `FOR UPDATE` and records
//! below them are skipped, so a record is one row even when two replicas hold a partition for a
//! moment during a rebalance.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use pipeline_runtime::endpoints::{self, Health};
use pipeline_runtime::kafka::{
    self, Override, PRODUCER_DEFAULTS, TracingContext, error_to_tracing, log_to_tracing,
};
use pipeline_runtime::rebootstrap::{CreateRebootstrapping, Rebootstrap, Rebootstraps};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use stream_engine::job::Rejection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics as m;
use crate::rows::{self, TopicKind};
use crate::settings::Config;
use crate::store::{Partitions, Store};

/// What a run did, for the exit log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Transactions committed.
    pub transactions: u64,
    /// Rows inserted.
    pub rows: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Records consumed but not written when the grace period ended (read again on restart).
    pub unwritten: u64,
}

/// Rebalance hooks: new partitions are paused and queued until their database position is
/// known.
struct SinkContext {
    assigned: Mutex<Vec<(String, i32)>>,
    rebootstrap: Rebootstrap,
}

impl Rebootstraps for SinkContext {
    fn rebootstrap(&self) -> &Rebootstrap {
        &self.rebootstrap
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_tracing(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error_to_tracing(&error, reason);
        self.rebootstrap.after(&error);
    }
}

impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(error) = consumer.assign(tpl).and_then(|()| consumer.pause(tpl)) {
                    tracing::error!(%error, "assigning partitions failed");
                }
                let mut queue = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
                queue.extend(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
                metrics::gauge!(m::ASSIGNED).set(tpl.count() as f64);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
            }
            _ => {
                self.assigned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "revoking partitions failed");
                }
                metrics::gauge!(m::ASSIGNED).set(0.0);
                tracing::info!("partitions revoked");
            }
        }
    }
}

/// A batch in hand: per topic, per partition, records in offset order with their rows.
#[derive(Default)]
struct Batch {
    topics: Vec<(String, Partitions)>,
    records: usize,
}

impl Batch {
    fn push(&mut self, topic: &str, partition: i32, offset: i64, row: Option<rows::Row>) {
        let index = match self.topics.iter().position(|(t, _)| t == topic) {
            Some(i) => i,
            None => {
                self.topics.push((topic.to_owned(), Partitions::new()));
                self.topics.len() - 1
            }
        };
        let list = self.topics[index].1.entry(partition).or_default();
        // After a rebalance the same partition can be assigned again and read from its stored
        // position, which is behind what the batch holds: a record at an offset the batch has
        // is the same record.
        if list.last().is_some_and(|(last, _)| *last >= offset) {
            return;
        }
        list.push((offset, row));
        self.records += 1;
    }

    /// The offsets to commit to Kafka after the batch is in the database.
    fn commit_list(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in &self.topics {
            for (partition, list) in partitions {
                if let Some((last, _)) = list.last() {
                    // Only fails for a negative offset, which a consumed record never has.
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(last + 1));
                }
            }
        }
        tpl
    }
}

/// Runs the sink until `shutdown`; then writes the batch in hand (within the grace period),
/// commits and returns.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Summary> {
    let s = &config.pg_sink;
    let tasks = TaskTracker::new();
    let health = Arc::new(Health::default());
    let http_stop = CancellationToken::new();
    endpoints::metrics_recorder()?;
    let http = endpoints::serve(
        &s.http_address,
        config.telemetry.http_address_file.as_deref(),
        health.clone(),
        http_stop.clone(),
        &tasks,
    )
    .await?;
    if let Some(address) = http {
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    }

    let result = consume(config, &health, &shutdown).await;
    http_stop.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn consume(
    config: &Config,
    health: &Health,
    shutdown: &CancellationToken,
) -> anyhow::Result<Summary> {
    let s = &config.pg_sink;
    let mut summary = Summary::default();
    let database = crate::store::describe(&s.database_url);
    let Some(mut store) = Store::connect_until(&s.database_url, shutdown).await else {
        return Ok(summary);
    };
    let applied = store.migrate().await?;
    tracing::info!(%database, ?applied, "database reachable, schema up to date");

    let consumer: StreamConsumer<SinkContext> = kafka::client_config(
        &config.kafka,
        &format!("{}-consumer", s.group_id),
        &[
            ("group.id", &s.group_id, Override::Guarded),
            ("enable.auto.commit", "false", Override::Guarded),
            ("enable.auto.offset.store", "false", Override::Guarded),
            ("isolation.level", "read_committed", Override::Guarded),
            ("auto.offset.reset", "earliest", Override::Allowed),
            // Eager: the rebalance hook pauses what it assigns (see `SinkContext`).
            ("partition.assignment.strategy", "range", Override::Guarded),
            // A killed replica's partitions move on after 10 s, not librdkafka's 45.
            ("session.timeout.ms", "10000", Override::Allowed),
            ("heartbeat.interval.ms", "1000", Override::Allowed),
        ],
    )?
    .create_rebootstrapping(SinkContext {
        assigned: Mutex::new(Vec::new()),
        rebootstrap: Rebootstrap::default(),
    })
    .context("creating the consumer")?;
    let producer: FutureProducer<TracingContext> = kafka::client_config(
        &config.kafka,
        &format!("{}-dlq", s.group_id),
        PRODUCER_DEFAULTS,
    )?
    .create_rebootstrapping(TracingContext::default())
    .context("creating the dead-letter producer")?;
    let topics = config.topics();
    let mut wanted = topics.clone();
    wanted.push(&s.dlq_topic);
    if kafka::wait_for_topics(consumer.client(), &wanted, shutdown)
        .await?
        .is_none()
    {
        return Ok(summary);
    }
    consumer.subscribe(&topics)?;
    health.set_ready(true);
    tracing::info!(?topics, group = %s.group_id, "consuming");

    let kind_of = |topic: &str| {
        if topic == s.ip_counts_topic {
            TopicKind::IpCounts
        } else if topic == s.anomalies_topic {
            TopicKind::Anomalies
        } else {
            TopicKind::Events
        }
    };

    'run: loop {
        let mut batch = Batch::default();
        let deadline = Instant::now() + s.batch_linger_ms;
        while batch.records < s.batch_max_records {
            seek_assigned(&consumer, &mut store, config, shutdown, health).await;
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(deadline.into()), if batch.records > 0 => break,
                // With an empty batch, wake up now and then to serve new assignments.
                () = tokio::time::sleep(Duration::from_millis(500)), if batch.records == 0 => continue,
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "consumer error");
                    continue;
                }
            };
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            if is_pending(&consumer, topic, partition) {
                // Fetched before the partition was paused; read again after the seek.
                continue;
            }
            metrics::counter!(m::CONSUMED, "topic" => topic.to_owned()).increment(1);
            let row = match rows::decode(kind_of(topic), message.payload()) {
                Ok(row) => Some(row),
                Err(reason) => {
                    dead_letter(&producer, &s.dlq_topic, &message, &reason).await?;
                    summary.dead_letters += 1;
                    None
                }
            };
            batch.push(topic, partition, offset, row);
        }
        if batch.records == 0 {
            if shutdown.is_cancelled() {
                break 'run;
            }
            continue;
        }

        // Write, retrying through database outages; after SIGTERM, only within the grace
        // period.
        let grace_end = shutdown
            .is_cancelled()
            .then(|| Instant::now() + s.shutdown_grace_secs);
        let mut wait = Duration::from_millis(500);
        loop {
            let started = Instant::now();
            match store
                .write(&s.group_id, &s.notify_channel, &batch.topics)
                .await
            {
                Ok(written) => {
                    metrics::histogram!(m::TRANSACTION_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!(m::TRANSACTIONS).increment(1);
                    metrics::counter!(m::ROWS).increment(written.rows);
                    metrics::counter!(m::SKIPPED).increment(written.skipped);
                    metrics::counter!(m::DUPLICATE_COUNTS).increment(written.duplicate_counts);
                    summary.transactions += 1;
                    summary.rows += written.rows;
                    health.set_ready(true);
                    break;
                }
                Err(error) => {
                    metrics::counter!(m::DB_ERRORS).increment(1);
                    health.set_ready(false);
                    tracing::warn!(
                        %database,
                        records = batch.records,
                        "writing a batch failed, retrying in {} ms: {error:#}",
                        wait.as_millis()
                    );
                }
            }
            if grace_end.is_some_and(|end| Instant::now() + wait > end) {
                summary.unwritten = batch.records as u64;
                break 'run;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
            if store.is_closed() {
                let cancel = CancellationToken::new();
                if let Some(end) = grace_end {
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(end.into()).await;
                        cancel.cancel();
                    });
                }
                match Store::connect_until(&s.database_url, &cancel).await {
                    Some(new) => store = new,
                    None => {
                        summary.unwritten = batch.records as u64;
                        break 'run;
                    }
                }
            }
        }
        // For the lag tools only: the database holds the truth. Fails harmlessly for
        // partitions revoked meanwhile.
        if let Err(error) = consumer.commit(&batch.commit_list(), CommitMode::Async) {
            tracing::debug!(%error, "committing offsets to Kafka failed");
        }
        if shutdown.is_cancelled() {
            break 'run;
        }
    }
    health.set_ready(false);
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final offset commit");
    }
    Ok(summary)
}

fn is_pending(consumer: &StreamConsumer<SinkContext>, topic: &str, partition: i32) -> bool {
    consumer
        .context()
        .assigned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(t, p)| t == topic && *p == partition)
}

/// Moves newly assigned partitions to their database positions and resumes them. While the
/// database is unreachable they stay paused (nothing is read that could not be written).
async fn seek_assigned(
    consumer: &StreamConsumer<SinkContext>,
    store: &mut Store,
    config: &Config,
    shutdown: &CancellationToken,
    health: &Health,
) {
    let pending: Vec<(String, i32)> = consumer
        .context()
        .assigned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if pending.is_empty() {
        return;
    }
    let group = &config.pg_sink.group_id;
    let mut tpl = TopicPartitionList::new();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &pending {
        by_topic.entry(topic).or_default().push(*partition);
    }
    for (topic, partitions) in by_topic {
        let stored = match store.positions(group, topic, &partitions).await {
            Ok(stored) => stored,
            Err(error) => {
                health.set_ready(false);
                metrics::counter!(m::DB_ERRORS).increment(1);
                tracing::warn!("reading partition positions failed, retrying: {error:#}");
                if store.is_closed()
                    && let Some(new) =
                        Store::connect_until(&config.pg_sink.database_url, shutdown).await
                {
                    *store = new;
                }
                return;
            }
        };
        for partition in partitions {
            let offset = stored
                .get(&partition)
                .map_or(Offset::Beginning, |next| Offset::Offset(*next));
            let _ = tpl.add_partition_offset(topic, partition, offset);
        }
    }
    if let Err(error) = consumer.seek_partitions(tpl.clone(), Duration::from_secs(10)) {
        tracing::warn!(%error, "seeking to the database positions failed, retrying");
        return;
    }
    if let Err(error) = consumer.resume(&tpl) {
        tracing::warn!(%error, "resuming partitions failed, retrying");
        return;
    }
    tracing::info!(
        partitions = tpl.count(),
        "positions read from the database; consuming from there"
    );
    consumer
        .context()
        .assigned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| !pending.contains(p));
}

async fn dead_letter<M: Message>(
    producer: &FutureProducer<TracingContext>,
    topic: &str,
    message: &M,
    reason: &rows::Unusable,
) -> anyhow::Result<()> {
    metrics::counter!(m::DEAD_LETTERS, "kind" => reason.kind()).increment(1);
    tracing::warn!(
        source.topic = message.topic(),
        source.partition = message.partition(),
        source.offset = message.offset(),
        "dead-lettering a record: {reason}"
    );
    let mut headers = OwnedHeaders::new();
    for (key, value) in stream_engine::dead_letters::headers(
        reason,
        message.topic(),
        message.partition(),
        message.offset(),
    ) {
        headers = headers.insert(Header {
            key,
            value: Some(&value),
        });
    }
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    // Awaited before the batch that moves past the record commits: a dead letter is never
    // lost (it can be repeated if the sink dies between the two).
    kafka::send(producer, record)
        .await?
        .await
        .context("dead-letter delivery cancelled")?
        .map_err(|(error, _)| error)
        .context("delivering a dead letter")?;
    Ok(())
}
