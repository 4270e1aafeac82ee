//! The state changelog topic: compacted, co-partitioned with the input (input partition p's
//! keys live in changelog partition p, so a replica restores exactly the partitions it is
//! assigned). Creating it, and reading a partition back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipeline_runtime::kafka::{Override, TracingContext, client_config};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};
use smol_str::SmolStr;
use tokio_util::sync::CancellationToken;

use crate::codec::{CHECKPOINT_KEY, Checkpoint};

/// A partition read back from the changelog: each key's latest value, undecoded.
#[derive(Debug, Default)]
pub struct RestoredPartition {
    /// Each key's latest value (tombstoned keys are absent).
    pub values: HashMap<SmolStr, Vec<u8>>,
    /// The latest checkpoint: where processing of the partition resumes.
    pub checkpoint: Option<Checkpoint>,
    /// The group's committed input offset when the restore began.
    pub committed: Option<i64>,
    /// Changelog records read.
    pub records: u64,
    /// Committed changelog records found after the checkpoint of the committed input offset,
    /// left out (see [`restore_partition`]); 0 unless something is wrong.
    pub left_out: u64,
    /// Seconds it took.
    pub seconds: f64,
}

/// Where a partition's state is and whose offsets it must match.
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    /// The changelog topic.
    pub state_topic: String,
    /// The input topic, whose committed offset the state must reach.
    pub input_topic: String,
    /// The consumer group.
    pub group_id: String,
    /// The partition (the same number in both topics).
    pub partition: i32,
    /// Longest wait for the changelog to catch up with the committed offset.
    pub catch_up_timeout: Duration,
    /// The changelog is written in the transactions that commit the input offsets
    /// (`exactly_once`): the restore stops at the checkpoint of the committed offset. Under
    /// `at_least_once` the changelog is written before its offsets are committed, so later
    /// checkpoints are normal (their outputs were acknowledged) and it is read to the end.
    pub transactional: bool,
}

/// Why a restore ended without a result.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Shutdown was requested.
    #[error("cancelled by shutdown")]
    Cancelled,
    /// Kafka failed; the restore can be tried again.
    #[error(transparent)]
    Kafka(#[from] anyhow::Error),
}

/// Creates the changelog topic if it is missing (compacted, `partitions` partitions, the
/// replication and `min.insync.replicas` of `[kafka.topics]`, by default the cluster's), and
/// checks that it is co-partitioned with the input.
pub async fn ensure_topic(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<TracingContext> = client_config(kafka, "changelog-admin", &[])?
        .create_with_context(TracingContext)
        .context("creating the admin client")?;
    // The admin client never lets the broker create a topic for its metadata request
    // (`allow.auto.create.topics=false` on every client): a stock broker would create the
    // changelog with its default partition count.
    let existing = || -> anyhow::Result<usize> {
        tokio::task::block_in_place(|| {
            admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map(|m| {
                    m.topics()
                        .first()
                        .filter(|t| t.error().is_none())
                        .map_or(0, |t| t.partitions().len())
                })
        })
        .context("reading the changelog topic's metadata")
    };
    if partitions < 1 {
        bail!(
            "the changelog topic {topic} needs the input's partition count, which was {partitions}"
        );
    }
    let mut found = existing()?;
    if found == 0 {
        let settings = kafka.topics;
        let min_insync = settings.min_insync_replicas.to_string();
        let mut new_topic = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(settings.replication_factor),
        )
        .set("cleanup.policy", "compact")
        .set("min.compaction.lag.ms", "60000")
        .set("segment.ms", "3600000");
        if settings.min_insync_replicas > 0 {
            new_topic = new_topic.set("min.insync.replicas", &min_insync);
        }
        let results = admin
            .create_topics(
                &[new_topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .context("creating the state changelog topic")?;
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions, "created the state changelog topic")
                }
                // Another replica created it first.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("could not create the changelog topic {name}: {code}"),
            }
        }
        // A new topic takes a moment to appear in metadata, with or without its partitions.
        let deadline = Instant::now() + Duration::from_secs(30);
        found = existing()?;
        while found == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            found = existing()?;
        }
    }
    if found != partitions as usize {
        bail!(
            "the changelog topic {topic} has {found} partitions but the input topic has {partitions}: \
             they must be equal (co-partitioned); delete the changelog or choose another state topic"
        );
    }
    Ok(())
}

/// Reads a partition of the changelog from the beginning until its latest checkpoint reaches
/// the group's committed input offset; returns each key's latest value. Blocking: run it off
/// the async threads. Returns [`RestoreError::Cancelled`] within a fraction of a second of
/// `cancel` firing.
///
/// Waiting for the checkpoint matters: a transaction's commit markers reach the offsets topic
/// and the changelog independently, so the committed offset can already include a batch whose
/// state changes are not yet readable. Restoring without them would resume after that batch
/// with older state.
///
/// And under `exactly_once` ([`RestoreTarget::transactional`]) the restore stops at the
/// checkpoint written with the committed offset (its `input_offset`): the state is exactly what
/// the committed input stands for. A committed
/// record after it would be state from input whose offsets are not committed (applied, its
/// records would be taken as processed, and their outputs never written): such records are
/// counted, logged and left out, never applied.
pub fn restore_partition(
    kafka: &KafkaSettings,
    target: &RestoreTarget,
    cancel: &CancellationToken,
) -> Result<RestoredPartition, RestoreError> {
    let started = Instant::now();
    let (topic, partition) = (target.state_topic.as_str(), target.partition);
    let consumer: BaseConsumer<TracingContext> = client_config(
        kafka,
        "changelog-restore",
        &[
            // The group, to read its committed offsets; this consumer never joins it and
            // never commits.
            ("group.id", target.group_id.as_str(), Override::Guarded),
            ("enable.auto.commit", "false", Override::Guarded),
            ("enable.auto.offset.store", "false", Override::Guarded),
            // Only committed state (and stable offsets): an aborted or still open
            // transaction's records are not part of it.
            ("isolation.level", "read_committed", Override::Guarded),
            ("fetch.max.bytes", "52428800", Override::Allowed),
            ("max.partition.fetch.bytes", "10485760", Override::Allowed),
            ("enable.partition.eof", "true", Override::Guarded),
        ],
    )
    .map_err(anyhow::Error::from)?
    .create_with_context(TracingContext)
    .context("creating the restore consumer")?;
    let committed = committed_offset(&consumer, target, cancel)?;

    let mut restored = RestoredPartition {
        committed,
        ..RestoredPartition::default()
    };
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)
        .context("building the partition list")?;
    consumer.assign(&list).context("assigning the changelog")?;
    let caught_up = |checkpoint: Option<Checkpoint>| {
        committed.is_none_or(|c| checkpoint.is_some_and(|k| k.next_offset >= c))
    };
    // The state of the committed input is complete (checkpoints that record their batch's
    // input offset only).
    let complete = |restored: &RestoredPartition| {
        target.transactional
            && committed.is_some()
            && restored
                .checkpoint
                .is_some_and(|k| k.input_offset == committed)
    };
    let deadline = Instant::now() + target.catch_up_timeout;
    loop {
        if cancel.is_cancelled() {
            return Err(RestoreError::Cancelled);
        }
        if Instant::now() > deadline {
            tracing::warn!(
                partition,
                checkpoint = ?restored.checkpoint,
                ?committed,
                "the changelog did not reach the committed offset in time; \
                 resuming from the checkpoint, state as restored"
            );
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) if complete(&restored) => {
                restored.left_out += 1;
                tracing::warn!(
                    partition,
                    offset = message.offset(),
                    committed = ?committed,
                    "a committed changelog record after the checkpoint of the committed input \
                     offset: left out"
                );
            }
            Some(Ok(message)) => {
                restored.records += 1;
                apply_record(
                    &mut restored,
                    partition,
                    message.key(),
                    message.payload(),
                    message.offset(),
                );
            }
            // The end of what is readable now (more may become readable).
            Some(Err(KafkaError::PartitionEOF(_))) => {
                if caught_up(restored.checkpoint) {
                    break;
                }
            }
            Some(Err(error)) => {
                return Err(anyhow::anyhow!("restoring {topic} [{partition}]: {error}").into());
            }
            // Idle: done if caught up and nothing readable is left.
            None => {
                if caught_up(restored.checkpoint) && at_end(&consumer, topic, partition)? {
                    break;
                }
            }
        }
    }
    restored.seconds = started.elapsed().as_secs_f64();
    Ok(restored)
}

/// The group's committed offset of the input partition, asked in short attempts so that a
/// shutdown is seen while the broker is unreachable.
///
/// An answer with an error for the partition is no answer: above all "unstable offset commit"
/// (a transaction with offsets for it is still open), which librdkafka passes on once its own
/// retries run out, with no offset. Taken as "nothing committed", the restore would end before
/// that transaction's state, and the replica would process its input again.
fn committed_offset(
    consumer: &BaseConsumer<TracingContext>,
    target: &RestoreTarget,
    cancel: &CancellationToken,
) -> Result<Option<i64>, RestoreError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut input = TopicPartitionList::new();
        input.add_partition(&target.input_topic, target.partition);
        let answer = consumer
            .committed_offsets(input, Duration::from_secs(2))
            .and_then(|list| {
                let element = list.find_partition(&target.input_topic, target.partition);
                match element.as_ref().map(|e| e.error()) {
                    Some(Err(error)) => Err(error),
                    _ => Ok(element
                        .and_then(|e| e.offset().to_raw())
                        .filter(|o| *o >= 0)),
                }
            });
        match answer {
            Ok(offset) => return Ok(offset),
            Err(_) if cancel.is_cancelled() => return Err(RestoreError::Cancelled),
            Err(error) if Instant::now() > deadline => {
                return Err(anyhow::anyhow!(
                    "reading the committed offset of {} [{}]: {error}",
                    target.input_topic,
                    target.partition
                )
                .into());
            }
            Err(error) => {
                tracing::debug!(%error, "reading the committed offset, retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Applies one changelog record: a checkpoint, a key's value, or a key's tombstone.
fn apply_record(
    restored: &mut RestoredPartition,
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    offset: i64,
) {
    let key = key.unwrap_or_default();
    if key == CHECKPOINT_KEY {
        match value.map(Checkpoint::decode) {
            Some(Ok(checkpoint)) => restored.checkpoint = Some(checkpoint),
            _ => tracing::warn!(partition, offset, "unreadable checkpoint skipped"),
        }
        return;
    }
    let Ok(key) = std::str::from_utf8(key) else {
        tracing::warn!(
            partition,
            offset,
            "changelog record with a key that is not UTF-8 skipped"
        );
        return;
    };
    match value {
        None => {
            restored.values.remove(key);
        }
        Some(value) => match restored.values.get_mut(key) {
            Some(current) => {
                current.clear();
                current.extend_from_slice(value);
            }
            None => {
                restored.values.insert(SmolStr::new(key), value.to_vec());
            }
        },
    }
}

/// Whether the consumer has read everything readable (up to the last stable offset).
fn at_end(
    consumer: &BaseConsumer<TracingContext>,
    topic: &str,
    partition: i32,
) -> anyhow::Result<bool> {
    let (_, end) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(2))?;
    let position = consumer
        .position()?
        .find_partition(topic, partition)
        .and_then(|e| e.offset().to_raw());
    Ok(end == 0 || position.is_some_and(|p| p >= end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition count that cannot be right is refused before anything is asked of Kafka
    /// (here there is no broker at all), with the reason.
    #[tokio::test]
    async fn a_changelog_of_no_partitions_is_refused_with_the_reason() {
        let kafka = KafkaSettings {
            brokers: "127.0.0.1:1".to_owned(),
            ..KafkaSettings::default()
        };
        let error = ensure_topic(&kafka, "state", 0)
            .await
            .expect_err("0 partitions");
        assert_eq!(
            error.to_string(),
            "the changelog topic state needs the input's partition count, which was 0"
        );
    }
}
