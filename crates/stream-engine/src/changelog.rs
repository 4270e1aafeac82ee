//! The state changelog topic: compacted, co-partitioned with the input (input partition p's
//! keys live in changelog partition p, so a replica restores exactly the partitions it is
//! assigned). Creating it, and reading a partition back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipeline_runtime::kafka::{Override, TracingContext, client_config};
use pipeline_runtime::rebootstrap::CreateRebootstrapping;
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
    /// Under `exactly_once`: committed changelog records after the last checkpoint of the
    /// committed input offset, applied. State of a transaction whose committed offsets the
    /// read did not show yet (a transaction's commit markers reach the offsets topic and the
    /// changelog independently, and a coordinator that moves delays one of them); usually 0.
    pub ahead: u64,
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
    /// (`exactly_once`): state past the checkpoint of the committed offset is counted
    /// ([`RestoredPartition::ahead`]). Under `at_least_once` the changelog is written before
    /// its offsets are committed, so later checkpoints are normal. Both read it to the end.
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
        .create_with_context(TracingContext::default())
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
/// Every committed record is applied, to the changelog's end: a committed transaction's
/// state always comes with its outputs and its input offsets, whatever the committed offsets
/// read a moment earlier said. Stopping at the checkpoint of the offset read instead processed
/// that transaction's input again and doubled its outputs (seen: a broker bounce test, the
/// transaction coordinator killed while a commit was under way). Under `exactly_once` the
/// records past the last checkpoint of the committed offset are counted
/// ([`RestoredPartition::ahead`]) and logged.
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
    .create_rebootstrapping(TracingContext::default())
    .context("creating the restore consumer")?;
    let committed = committed_offset(&consumer, target, cancel)?;

    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)
        .context("building the partition list")?;
    consumer.assign(&list).context("assigning the changelog")?;
    let mut read = Accumulator::new(partition, committed, target.transactional);
    let caught_up = |checkpoint: Option<Checkpoint>| {
        committed.is_none_or(|c| checkpoint.is_some_and(|k| k.next_offset >= c))
    };
    let deadline = Instant::now() + target.catch_up_timeout;
    loop {
        if cancel.is_cancelled() {
            return Err(RestoreError::Cancelled);
        }
        if Instant::now() > deadline {
            tracing::warn!(
                partition,
                checkpoint = ?read.latest_checkpoint(),
                ?committed,
                "the changelog did not reach the committed offset in time; \
                 resuming from the checkpoint, state as restored"
            );
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => read.apply(message.key(), message.payload(), message.offset()),
            // The end of what is readable now (more may become readable).
            Some(Err(KafkaError::PartitionEOF(_))) => {
                if caught_up(read.latest_checkpoint()) {
                    break;
                }
            }
            Some(Err(error)) => {
                return Err(anyhow::anyhow!("restoring {topic} [{partition}]: {error}").into());
            }
            // Idle: done if caught up and nothing readable is left.
            None => {
                if caught_up(read.latest_checkpoint()) && at_end(&consumer, topic, partition)? {
                    break;
                }
            }
        }
    }
    let mut restored = read.finish();
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

/// A partition's changelog as a restore reads it, record by record in offset order: each
/// key's latest value and the latest checkpoint. Under `exactly_once` it also counts the
/// committed records after the last checkpoint of the committed input offset (see
/// [`RestoredPartition::ahead`]).
pub(crate) struct Accumulator {
    partition: i32,
    restored: RestoredPartition,
    /// Checkpoints of this input offset are the committed offset's (`exactly_once`).
    committed_input: Option<i64>,
    /// A checkpoint of the committed input offset was read.
    seen_committed: bool,
    /// The changelog offset of the first record after the last such checkpoint.
    first_ahead: Option<i64>,
}

impl Accumulator {
    /// Reads partition `partition` of a changelog whose group committed `committed` (see
    /// [`RestoreTarget::transactional`]).
    pub(crate) fn new(partition: i32, committed: Option<i64>, transactional: bool) -> Self {
        Self {
            partition,
            restored: RestoredPartition {
                committed,
                ..RestoredPartition::default()
            },
            committed_input: committed.filter(|_| transactional),
            seen_committed: false,
            first_ahead: None,
        }
    }

    /// The latest checkpoint read.
    pub(crate) fn latest_checkpoint(&self) -> Option<Checkpoint> {
        self.restored.checkpoint
    }

    /// Applies one changelog record (at changelog offset `offset`): a checkpoint, a key's
    /// value, or a key's tombstone.
    pub(crate) fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, offset: i64) {
        let partition = self.partition;
        self.restored.records += 1;
        let key = key.unwrap_or_default();
        if key == CHECKPOINT_KEY {
            match value.map(Checkpoint::decode) {
                Some(Ok(checkpoint)) => {
                    self.restored.checkpoint = Some(checkpoint);
                    if self.committed_input.is_some()
                        && checkpoint.input_offset == self.committed_input
                    {
                        self.seen_committed = true;
                        self.restored.ahead = 0;
                        self.first_ahead = None;
                    } else {
                        self.note_ahead(offset);
                    }
                }
                _ => tracing::warn!(partition, offset, "unreadable checkpoint skipped"),
            }
            return;
        }
        self.note_ahead(offset);
        let Ok(key) = std::str::from_utf8(key) else {
            tracing::warn!(
                partition,
                offset,
                "changelog record with a key that is not UTF-8 skipped"
            );
            return;
        };
        let values = &mut self.restored.values;
        match value {
            None => {
                values.remove(key);
            }
            Some(value) => match values.get_mut(key) {
                Some(current) => {
                    current.clear();
                    current.extend_from_slice(value);
                }
                None => {
                    values.insert(SmolStr::new(key), value.to_vec());
                }
            },
        }
    }

    fn note_ahead(&mut self, offset: i64) {
        if self.seen_committed {
            self.restored.ahead += 1;
            self.first_ahead.get_or_insert(offset);
        }
    }

    /// The partition as read, every committed record applied.
    pub(crate) fn finish(self) -> RestoredPartition {
        if self.restored.ahead > 0 {
            tracing::warn!(
                partition = self.partition,
                records = self.restored.ahead,
                from_changelog_offset = ?self.first_ahead,
                committed = ?self.restored.committed,
                checkpoint = ?self.restored.checkpoint,
                "the changelog holds committed state past the checkpoint of the committed input \
                 offset: the offsets read lag the transaction's commit markers; applied, as the \
                 committed state it is"
            );
        }
        self.restored
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

    fn checkpoint(input_offset: i64, next_offset: i64) -> Vec<u8> {
        Checkpoint {
            next_offset,
            stream_time_ms: None,
            snapshot: None,
            input_offset: Some(input_offset),
            from_offset: None,
        }
        .encode()
    }

    /// Each key's value as text, the checkpoint's (input, next) offsets, records applied and
    /// records past the last checkpoint of the committed offset.
    type Read = (
        std::collections::BTreeMap<String, String>,
        Option<(Option<i64>, i64)>,
        u64,
        u64,
    );

    /// Reads `records` (key, value) at changelog offsets 0, 1, ...
    fn read(
        committed: Option<i64>,
        transactional: bool,
        records: &[(&[u8], Option<Vec<u8>>)],
    ) -> Read {
        let mut read = Accumulator::new(3, committed, transactional);
        for (offset, (key, value)) in records.iter().enumerate() {
            read.apply(Some(key), value.as_deref(), offset as i64);
        }
        let restored = read.finish();
        let values = restored
            .values
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let checkpoint = restored.checkpoint.map(|c| (c.input_offset, c.next_offset));
        (values, checkpoint, restored.records, restored.ahead)
    }

    fn value(text: &str) -> Option<Vec<u8>> {
        Some(text.as_bytes().to_vec())
    }

    fn values(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A replica that restored from an older snapshot replays, committing input offsets it
    /// had committed before: the committed offset's checkpoint comes twice, and the state is
    /// the one at the second (the transaction that committed it), nothing past it.
    #[test]
    fn a_replay_commits_an_offset_again_and_its_state_is_the_one_restored() {
        let records: &[(&[u8], Option<Vec<u8>>)] = &[
            (b"a", value("1")),
            (CHECKPOINT_KEY, Some(checkpoint(96, 96))),
            (b"a", value("2")),
            (b"b", value("7")),
            (CHECKPOINT_KEY, Some(checkpoint(118, 118))),
            // The replay after a restore: the committed offset goes back to 96.
            (b"a", value("3")),
            (CHECKPOINT_KEY, Some(checkpoint(96, 118))),
        ];
        assert_eq!(
            read(Some(96), true, records),
            (
                values(&[("a", "3"), ("b", "7")]),
                Some((Some(96), 118)),
                7,
                0
            )
        );
    }

    /// Committed state past the checkpoint of the committed offset read is a transaction whose
    /// offsets the read did not show yet: applied (its outputs are committed with it; left
    /// out, its input was processed again and its outputs doubled), and counted.
    #[test]
    fn committed_state_past_the_committed_offset_read_is_applied_and_counted() {
        let records: &[(&[u8], Option<Vec<u8>>)] = &[
            (b"a", value("1")),
            (b"c", value("4")),
            (CHECKPOINT_KEY, Some(checkpoint(100, 100))),
            (b"a", value("2")),
            (b"a", value("5")),
            (b"b", value("9")),
            (b"c", None),
            (CHECKPOINT_KEY, Some(checkpoint(109, 109))),
        ];
        let applied = (values(&[("a", "5"), ("b", "9")]), Some((Some(109), 109)), 8);
        let (v, c, r, ahead) = read(Some(100), true, records);
        assert_eq!(((v, c, r), ahead), (applied.clone(), 5));
        // Under at_least_once the changelog runs ahead of the committed offsets by design:
        // nothing is counted.
        let (v, c, r, ahead) = read(Some(100), false, records);
        assert_eq!(((v, c, r), ahead), (applied.clone(), 0));
        // The checkpoint of the committed offset last: nothing past it.
        assert_eq!(read(Some(109), true, records).3, 0);
        // No checkpoint of the committed offset (written before checkpoints recorded it, or
        // nothing committed): nothing is counted.
        assert_eq!(read(Some(105), true, records).3, 0);
        assert_eq!(read(None, true, records).3, 0);
    }

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
