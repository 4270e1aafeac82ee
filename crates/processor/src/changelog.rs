//! The window-state changelog: a compacted topic, co-partitioned with the input, holding each
//! sensor's latest window keyed by sensor id. Input partition p's sensors live in changelog
//! partition p, so a replica restores exactly the partitions it is assigned.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipeline_runtime::kafka::{TracingContext, client_config};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::windows::{CHECKPOINT_KEY, Sensors, decode_checkpoint, decode_state};

/// How a restore went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreStats {
    /// Changelog records read.
    pub records: u64,
    /// Sensors restored.
    pub sensors: usize,
    /// Seconds it took.
    pub seconds: f64,
}

/// A restored partition.
#[derive(Debug)]
pub struct Restored {
    /// Each sensor's state.
    pub sensors: Sensors,
    /// The input offset the state corresponds to (the latest checkpoint), if any was written:
    /// where processing of the partition resumes.
    pub checkpoint: Option<i64>,
    /// The group's committed input offset when the restore began.
    pub committed: Option<i64>,
    /// Figures.
    pub stats: RestoreStats,
}

/// Where a partition's state is and whose offsets it must match.
#[derive(Debug, Clone)]
pub struct RestoreTarget<'a> {
    /// The changelog topic.
    pub state_topic: &'a str,
    /// The input topic, whose committed offset the state must reach.
    pub input_topic: &'a str,
    /// The processors' consumer group.
    pub group_id: &'a str,
    /// The partition (the same number in both topics).
    pub partition: i32,
    /// Window size of the restored windows.
    pub window_size: usize,
    /// Longest wait for the changelog to catch up with the committed offset.
    pub catch_up_timeout: Duration,
}

/// Creates the changelog topic if it is missing (compacted, `partitions` partitions, the
/// cluster's default replication), and checks that it is co-partitioned with the input.
pub async fn ensure_topic(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<TracingContext> = client_config(kafka, "processor-admin", &[])
        .create_with_context(TracingContext)
        .context("creating the admin client")?;
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
    let mut found = existing()?;
    if found == 0 {
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact")
            .set("min.compaction.lag.ms", "60000")
            .set("segment.ms", "3600000");
        let results = admin
            .create_topics(
                &[new_topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .context("creating the window-state changelog topic")?;
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions, "created the window-state changelog topic")
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
             they must be equal (co-partitioned); delete the changelog or set processor.state_topic"
        );
    }
    Ok(())
}

/// Restores a partition's windows: reads its changelog partition from the beginning until
/// the latest checkpoint reaches the group's committed input offset, and returns each sensor's
/// latest state. Blocking: run it off the async threads.
///
/// Waiting for the checkpoint matters: a transaction's commit markers reach the offsets topic
/// and the changelog independently, so the committed offset can already include a batch whose
/// window changes are not yet readable. Restoring without them would resume after that batch
/// with older windows.
pub fn restore_partition(
    kafka: &KafkaSettings,
    target: &RestoreTarget<'_>,
) -> anyhow::Result<Restored> {
    let started = Instant::now();
    let RestoreTarget {
        state_topic: topic,
        partition,
        ..
    } = *target;
    let consumer: BaseConsumer<TracingContext> = client_config(
        kafka,
        "processor-restore",
        &[
            // The processors' group, to read its committed offsets; this consumer never joins
            // it and never commits.
            ("group.id", target.group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Only committed state (and stable offsets): an aborted or still open
            // transaction's records are not part of it.
            ("isolation.level", "read_committed"),
            ("fetch.max.bytes", "52428800"),
            ("max.partition.fetch.bytes", "10485760"),
            ("enable.partition.eof", "true"),
        ],
    )
    .create_with_context(TracingContext)
    .context("creating the restore consumer")?;
    let mut input = TopicPartitionList::new();
    input.add_partition(target.input_topic, partition);
    let committed = consumer
        .committed_offsets(input, Duration::from_secs(30))
        .with_context(|| {
            format!(
                "reading the committed offset of {} [{partition}]",
                target.input_topic
            )
        })?
        .find_partition(target.input_topic, partition)
        .and_then(|e| e.offset().to_raw())
        .filter(|o| *o >= 0);

    let mut sensors = Sensors::new();
    let mut checkpoint: Option<i64> = None;
    let mut records = 0u64;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&list)?;
    let caught_up =
        |checkpoint: Option<i64>| committed.is_none_or(|c| checkpoint.is_some_and(|k| k >= c));
    let deadline = Instant::now() + target.catch_up_timeout;
    loop {
        if Instant::now() > deadline {
            tracing::warn!(
                partition,
                ?checkpoint,
                ?committed,
                "the changelog did not reach the committed offset in time; \
                 resuming from the checkpoint, windows as restored"
            );
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                records += 1;
                apply_record(&message, target, &mut sensors, &mut checkpoint);
            }
            // The end of what is readable now (more may become readable).
            Some(Err(KafkaError::PartitionEOF(_))) => {
                if caught_up(checkpoint) {
                    break;
                }
            }
            Some(Err(error)) => bail!("restoring {topic} [{partition}]: {error}"),
            // Idle: done if caught up and nothing readable is left.
            None => {
                if caught_up(checkpoint) && at_end(&consumer, topic, partition)? {
                    break;
                }
            }
        }
    }
    let stats = RestoreStats {
        records,
        sensors: sensors.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Restored {
        sensors,
        checkpoint,
        committed,
        stats,
    })
}

/// Applies one changelog record: a checkpoint, a sensor's state, or a sensor's deletion.
fn apply_record(
    message: &BorrowedMessage<'_>,
    target: &RestoreTarget<'_>,
    sensors: &mut Sensors,
    checkpoint: &mut Option<i64>,
) {
    let (partition, offset) = (target.partition, message.offset());
    let key = message.key().unwrap_or_default();
    if key == CHECKPOINT_KEY {
        match message.payload().map(decode_checkpoint) {
            Some(Ok(next)) => *checkpoint = Some(next),
            _ => tracing::warn!(partition, offset, "unreadable checkpoint skipped"),
        }
        return;
    }
    let Ok(sensor) = std::str::from_utf8(key) else {
        return;
    };
    match message.payload() {
        None => {
            sensors.remove(sensor);
        }
        Some(value) => match decode_state(value, target.window_size) {
            Ok(state) => match sensors.get_mut(sensor) {
                Some(current) => *current = state,
                None => {
                    sensors.insert(sensor.into(), state);
                }
            },
            Err(error) => {
                tracing::warn!(partition, offset, sensor_id = sensor, %error, "unreadable changelog record skipped")
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
    let (_, end) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let position = consumer
        .position()?
        .find_partition(topic, partition)
        .and_then(|e| e.offset().to_raw());
    Ok(end == 0 || position.is_some_and(|p| p >= end))
}
