//! The window-state changelog: a compacted topic, co-partitioned with the input, holding each
//! sensor's latest window keyed by sensor id. Input partition p's sensors live in changelog
//! partition p, so a replica restores exactly the partitions it is assigned.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipeline_runtime::kafka::{TracingContext, client_config};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::windows::{SensorState, decode_state};

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

/// Reads changelog partition `partition` from the beginning to its last committed record and
/// returns each sensor's latest state. Blocking: run it off the async threads.
pub fn restore_partition(
    kafka: &KafkaSettings,
    topic: &str,
    partition: i32,
    window_size: usize,
) -> anyhow::Result<(HashMap<String, SensorState>, RestoreStats)> {
    let started = Instant::now();
    let consumer: BaseConsumer<TracingContext> = client_config(
        kafka,
        "processor-restore",
        &[
            // Never joins or commits: it only assigns itself one partition.
            ("group.id", "sensor-pipeline-restore"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Only committed state: an aborted or still open transaction's records are not
            // part of it, just as that transaction's input offsets are not committed.
            ("isolation.level", "read_committed"),
            ("fetch.max.bytes", "52428800"),
            ("max.partition.fetch.bytes", "10485760"),
            ("enable.partition.eof", "true"),
        ],
    )
    .create_with_context(TracingContext)
    .context("creating the restore consumer")?;
    // With read_committed the end is the last stable offset: nothing after an open transaction.
    let (low, end) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .with_context(|| format!("reading the end of {topic} [{partition}]"))?;
    let mut sensors = HashMap::new();
    let mut records = 0u64;
    if end > low {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Beginning)?;
        consumer.assign(&list)?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if Instant::now() > deadline {
                bail!("restoring {topic} [{partition}] did not reach offset {end} within 300 s");
            }
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(message)) => {
                    if message.offset() >= end {
                        break;
                    }
                    records += 1;
                    if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
                        match message.payload() {
                            None => {
                                sensors.remove(key);
                            }
                            Some(value) => match decode_state(value, window_size) {
                                Ok(state) => {
                                    sensors.insert(key.to_owned(), state);
                                }
                                Err(error) => tracing::warn!(
                                    partition,
                                    offset = message.offset(),
                                    sensor_id = key,
                                    %error,
                                    "unreadable changelog record skipped"
                                ),
                            },
                        }
                    }
                    if message.offset() + 1 >= end {
                        break;
                    }
                }
                // The end of what is committed, which may be a transaction marker.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(error)) => bail!("restoring {topic} [{partition}]: {error}"),
                None => {}
            }
        }
    }
    let stats = RestoreStats {
        records,
        sensors: sensors.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((sensors, stats))
}
