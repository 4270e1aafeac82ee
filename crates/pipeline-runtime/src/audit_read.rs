//! Reading topics for an audit: a group's committed offsets, partition ends, and every committed
//! record up to an end, with a `read_committed` consumer that never joins a group. The audits of
//! both pipelines (`sensor-audit`, `ip-counter audit`) read through here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::kafka::Override::{Allowed, Guarded};
use crate::kafka::{TracingContext, client_config};
use crate::rebootstrap::CreateRebootstrapping;
use crate::settings::KafkaSettings;
use anyhow::{Context as _, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long an end waits for the transactions open when it was asked for (see
/// [`settled_ends`]): past the engine's transaction timeout, after which the broker aborts them.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

fn reader(kafka: &KafkaSettings, client: &str) -> anyhow::Result<BaseConsumer<TracingContext>> {
    reader_at(kafka, client, "read_committed")
}

fn reader_at(
    kafka: &KafkaSettings,
    client: &str,
    isolation: &str,
) -> anyhow::Result<BaseConsumer<TracingContext>> {
    client_config(
        kafka,
        client,
        &[
            ("group.id", client, Guarded),
            ("enable.auto.commit", "false", Guarded),
            ("enable.auto.offset.store", "false", Guarded),
            ("isolation.level", isolation, Guarded),
            ("fetch.max.bytes", "52428800", Allowed),
            // Reaching the end is reported even when it is a transaction marker, not a record.
            ("enable.partition.eof", "true", Guarded),
        ],
    )?
    .create_rebootstrapping(TracingContext::default())
    .context("creating the audit consumer")
}

/// `group`'s committed offsets of `topic`, by partition; `None` if the group has committed none
/// at all (nothing ran: the whole topic is judged). `client` names the audit's Kafka client.
pub fn committed_offsets(
    kafka: &KafkaSettings,
    client: &str,
    group: &str,
    topic: &str,
) -> anyhow::Result<Option<BTreeMap<i32, i64>>> {
    // The group, only to read its offsets: this consumer never joins or commits.
    let consumer: BaseConsumer<TracingContext> = client_config(
        kafka,
        client,
        &[
            ("group.id", group, Guarded),
            ("enable.auto.commit", "false", Guarded),
        ],
    )?
    .create_rebootstrapping(TracingContext::default())
    .context("creating the audit's offset reader")?;
    let partitions = end_offsets(kafka, client, topic)?;
    let mut list = TopicPartitionList::new();
    for p in partitions.keys() {
        list.add_partition(topic, *p);
    }
    let committed: BTreeMap<i32, i64> = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .with_context(|| format!("reading the committed offsets of group {group}"))?
        .elements()
        .iter()
        .filter_map(|e| Some((e.partition(), e.offset().to_raw().filter(|o| *o >= 0)?)))
        .collect();
    Ok((!committed.is_empty()).then_some(committed))
}

/// Each partition's (low, last stable) offsets, once every transaction open on `topic` when this
/// was called has ended: see [`settled_ends`].
pub fn end_offsets(
    kafka: &KafkaSettings,
    client: &str,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let consumer = reader(kafka, client)?;
    let metadata = match consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
        Ok(metadata) => metadata,
        Err(error) => {
            // librdkafka queues its own account of the failure (which broker, what went wrong)
            // as log events that only a poll delivers: deliver them before the error, or they
            // are lost at exit (and were, in about one run in two).
            let _ = consumer.poll(Duration::from_millis(100));
            return Err(error).with_context(|| format!("reading the metadata of {topic}"));
        }
    };
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        bail!("topic {topic} does not exist");
    }
    let uncommitted = reader_at(kafka, client, "read_uncommitted")?;
    settled_ends(&consumer, &uncommitted, topic, &partitions, SETTLE_TIMEOUT)
}

/// Each partition's (low, last stable) offsets, once every transaction that was open on `topic`
/// when this was called has ended: it reads the log ends with `uncommitted` (a
/// `read_uncommitted` consumer) first, then waits until `committed`'s (a `read_committed`
/// consumer's) stable ends reach them.
///
/// Why: Kafka 4's group coordinator writes a transaction's consumer offsets beside the commit
/// markers of its output partitions, not after them. For a moment a group's committed offsets
/// can be read while the outputs of the same transaction cannot, and "the group's offsets, then
/// the output's stable end" missed that transaction's outputs (seen: a chaos run's audit found
/// the last batch of one partition missing, on a busy machine). Every record of a transaction
/// whose offsets are committed is below the log end read here, and committed once its marker
/// is written: so these ends, taken after the offsets, hold everything the offsets stand for.
pub fn settled_ends<C: ConsumerContext>(
    committed: &BaseConsumer<C>,
    uncommitted: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let watermarks = |consumer: &BaseConsumer<C>, p: i32| {
        consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .with_context(|| format!("reading the offsets of {topic} [{p}]"))
    };
    let log_ends = partitions
        .iter()
        .map(|&p| Ok((p, watermarks(uncommitted, p)?.1)))
        .collect::<anyhow::Result<BTreeMap<i32, i64>>>()?;
    let deadline = Instant::now() + timeout;
    let mut ends = BTreeMap::new();
    for (&p, &log_end) in &log_ends {
        loop {
            let (low, stable) = watermarks(committed, p)?;
            if stable >= log_end {
                ends.insert(p, (low, stable));
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "a transaction on {topic} [{p}] stayed open for {} s: its stable end is \
                     {stable}, its log end was {log_end}",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(ends)
}

/// Feeds every committed record of `topic` up to `ends` to `each`, partition by partition in
/// offset order.
pub fn scan(
    kafka: &KafkaSettings,
    client: &str,
    topic: &str,
    ends: &BTreeMap<i32, (i64, i64)>,
    label: &str,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let consumer = reader(kafka, client)?;
    let total: i64 = ends.values().map(|(low, high)| high - low).sum();
    let mut list = TopicPartitionList::new();
    for (&p, &(low, high)) in ends {
        if high > low {
            list.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    consumer.assign(&list)?;
    let mut remaining: BTreeMap<i32, i64> = ends
        .iter()
        .filter(|(_, (l, h))| h > l)
        .map(|(p, (_, h))| (*p, *h))
        .collect();
    let (mut read, mut last_progress, mut last_advance) = (0u64, Instant::now(), Instant::now());
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                last_advance = Instant::now();
                if let Some(&end) = remaining.get(&m.partition())
                    && m.offset() < end
                {
                    read += 1;
                    each(&m);
                    if m.offset() + 1 >= end {
                        remaining.remove(&m.partition());
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                remaining.remove(&partition);
            }
            // librdkafka reports a lost connection (all of them at once, say, when the broker
            // closes idle ones) as an error on the queue, then reconnects by itself: wait for
            // it, bounded by the stall limit below.
            Some(Err(KafkaError::MessageConsumption(code))) if is_transient(code) => {
                tracing::warn!(%code, "reading {topic}: connection lost, waiting for librdkafka to reconnect");
            }
            Some(Err(error)) => bail!("reading {topic}: {error}"),
            None => {}
        }
        // Transaction markers take offsets without being records: when reads pause, the
        // position tells whether the end is passed (end-of-partition events say it too).
        if last_advance.elapsed() > Duration::from_millis(500) || read % 10_000 == 0 {
            let positions = consumer.position()?;
            remaining.retain(|p, end| {
                positions
                    .find_partition(topic, *p)
                    .and_then(|e| e.offset().to_raw())
                    .is_none_or(|pos| pos < *end)
            });
        }
        if last_advance.elapsed() > Duration::from_secs(60) {
            let positions = consumer.position()?;
            let unfinished: Vec<String> = remaining
                .iter()
                .map(|(p, end)| {
                    let at = positions
                        .find_partition(topic, *p)
                        .and_then(|e| e.offset().to_raw())
                        .map_or("no position".to_owned(), |o| format!("at {o}"));
                    format!("partition {p} {at} of {end}")
                })
                .collect();
            bail!(
                "reading {topic} stalled for 60 s ({})",
                unfinished.join(", ")
            );
        }
        if last_progress.elapsed() > Duration::from_secs(3) {
            tracing::info!("{label}: {read} of about {total} records");
            last_progress = Instant::now();
        }
    }
    Ok(())
}

/// Errors librdkafka recovers from by itself: connections lost or not yet made.
fn is_transient(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
    )
}
