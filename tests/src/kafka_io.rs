//! Producing test records and reading topics back, with plain rdkafka clients.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pipeline_runtime::audit_read::settled_ends;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Kafka timestamp, ms.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// The value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

fn consumer(bootstrap: &str, group: Option<&str>) -> BaseConsumer {
    consumer_at(bootstrap, group, "read_committed")
}

fn consumer_at(bootstrap: &str, group: Option<&str>, isolation: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("group.id", group.unwrap_or("e2e-reader"));
    config.create().expect("test consumer")
}

/// The topic's partitions and their stable ends, once every transaction open on the topic now
/// has ended (`pipeline_runtime::audit_read::settled_ends` says why: a group's offsets can be
/// committed a moment before the outputs of the same transaction can be read).
pub fn high_watermarks(bootstrap: &str, topic: &str) -> HashMap<i32, i64> {
    let consumer = consumer(bootstrap, None);
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let uncommitted = consumer_at(bootstrap, None, "read_uncommitted");
    settled_ends(
        &consumer,
        &uncommitted,
        topic,
        &partitions,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("the ends of {topic}: {e:#}"))
    .into_iter()
    .map(|(p, (_, end))| (p, end))
    .collect()
}

/// Every committed record of `topic`, ordered by partition then offset.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let ends = high_watermarks(bootstrap, topic);
    let consumer = consumer(bootstrap, None);
    let mut list = TopicPartitionList::new();
    for p in ends.keys() {
        list.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("partition offset");
    }
    consumer.assign(&list).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The positions are asked for (a list of every partition, built anew) when a poll brings
    // nothing, after a partition's last record, and every 1024 records: not after each record,
    // which made reading 480 000 records take 46 s in a debug build.
    let mut check = true;
    let mut since_check = 0;
    loop {
        if check || since_check >= 1024 {
            let positions = consumer.position().ok();
            let done = ends.iter().all(|(p, end)| {
                *end == 0
                    || matches!(
                        positions.as_ref().and_then(|pos| pos.find_partition(topic, *p).map(|e| e.offset())),
                        Some(Offset::Offset(o)) if o >= *end
                    )
            });
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "reading {topic} did not reach its end within 60 s"
            );
            since_check = 0;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                since_check += 1;
                check = ends
                    .get(&m.partition())
                    .is_none_or(|end| m.offset() + 1 >= *end);
                records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp_ms: m.timestamp().to_millis(),
                });
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => check = true,
        }
    }
    records.retain(|r| r.offset < ends[&r.partition]);
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// The group's committed offsets on `topic` (partitions without a commit are absent).
pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str) -> HashMap<i32, i64> {
    let consumer = consumer(bootstrap, Some(group));
    let ends = high_watermarks(bootstrap, topic);
    let mut list = TopicPartitionList::new();
    for p in ends.keys() {
        list.add_partition(topic, *p);
    }
    // A broker just restarted, or busy on two cores, can time a request out, and a new
    // broker answers NotCoordinator until its offsets topic is loaded (at once, so a count
    // of attempts would be spent in milliseconds): ask again for up to a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = loop {
        match consumer.committed_offsets(list.clone(), Duration::from_secs(10)) {
            Ok(committed) => break committed,
            Err(error) if Instant::now() < deadline => {
                eprintln!("committed offsets of {group} on {topic}: {error}; asking again");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => panic!("committed offsets of {group} on {topic}: {error}"),
        }
    };
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The sum of `group`'s committed offsets on partitions `0..partitions` of `topic`, or `None`
/// if the coordinator does not answer within 2 s (a broker is down): for polling while
/// brokers bounce, where [`committed_offsets`] would wait for every partition's leader.
pub fn try_committed_total(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Option<i64> {
    let consumer = consumer(bootstrap, Some(group));
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(2))
        .ok()?;
    Some(
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum(),
    )
}

/// Waits until `group` has committed every record `topic` holds now. Unlike
/// [`wait_until_consumed`], for a topic written in transactions: the commit markers after a
/// partition's last record take offsets that a consumer never commits past until more records
/// come.
pub fn wait_until_records_consumed(bootstrap: &str, group: &str, topic: &str, timeout: Duration) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    for record in read_topic(bootstrap, topic) {
        let next = last.entry(record.partition).or_default();
        *next = (*next).max(record.offset + 1);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let committed = committed_offsets(bootstrap, group, topic);
        let behind: Vec<_> = last
            .iter()
            .filter(|(p, next)| committed.get(p).is_none_or(|c| c < next))
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} has not committed past the last records of {topic} after {timeout:?}: {behind:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Partitions (of every topic) whose in-sync replicas are fewer than their replicas, as
/// `topic [partition] isr/replicas`; empty when the cluster is fully replicated.
pub fn under_replicated(bootstrap: &str) -> Vec<String> {
    let consumer = consumer(bootstrap, None);
    let Ok(metadata) = consumer.fetch_metadata(None, Duration::from_secs(10)) else {
        return vec!["(no metadata)".to_owned()];
    };
    metadata
        .topics()
        .iter()
        .flat_map(|t| {
            t.partitions()
                .iter()
                .filter(|p| p.isr().len() < p.replicas().len())
                .map(|p| {
                    format!(
                        "{} [{}] {}/{}",
                        t.name(),
                        p.id(),
                        p.isr().len(),
                        p.replicas().len()
                    )
                })
        })
        .collect()
}

/// Records of `topic` that exist now and that `group` has not committed yet.
pub fn lag(bootstrap: &str, group: &str, topic: &str) -> i64 {
    let ends = high_watermarks(bootstrap, topic);
    let committed = committed_offsets(bootstrap, group, topic);
    ends.iter()
        .map(|(p, end)| end - committed.get(p).copied().unwrap_or(0))
        .filter(|lag| *lag > 0)
        .sum()
}

/// Waits until `group` has committed every record of `topic` that exists now, that is until
/// the processors have processed it all and the broker has acknowledged all of its outputs.
pub fn wait_until_consumed(bootstrap: &str, group: &str, topic: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let behind = lag(bootstrap, group, topic);
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} still has {behind} records of {topic} to process after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The state of `group` and its number of members ("" and 0 when it does not exist).
pub fn group_state(bootstrap: &str, group: &str) -> (String, usize) {
    let consumer = consumer(bootstrap, None);
    consumer
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .ok()
        .and_then(|list| {
            list.groups()
                .iter()
                .find(|g| g.name() == group)
                .map(|g| (g.state().to_owned(), g.members().len()))
        })
        .unwrap_or_default()
}

/// Number of members of `group` when it is stable, else 0.
pub fn group_members(bootstrap: &str, group: &str) -> usize {
    match group_state(bootstrap, group) {
        (state, members) if state == "Stable" => members,
        _ => 0,
    }
}

/// Waits until `group` is stable with `members` members.
pub fn wait_for_group(bootstrap: &str, group: &str, members: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (state, found) = group_state(bootstrap, group);
        if state == "Stable" && found == members {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} did not reach {members} stable members: last seen {state:?} with {found}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A producer for test input.
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .expect("test producer")
}

/// Produces one record and waits for its acknowledgement; returns (partition, offset).
pub fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> (i32, i64) {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    let delivery = producer
        .send_result(record)
        .map_err(|(e, _)| e)
        .expect("enqueue");
    let delivered = futures::executor::block_on(delivery)
        .expect("delivery report")
        .map_err(|(e, _)| e)
        .expect("delivered");
    (delivered.partition, delivered.offset)
}

/// Sets (`Some`) or removes (`None`) the broker's client quota `quota` (`producer_byte_rate`,
/// `consumer_byte_rate`) for clients named `client_id`.
pub fn client_quota(bootstrap: &str, client_id: &str, quota: &str, bytes_per_second: Option<u32>) {
    let change = match bytes_per_second {
        Some(rate) => vec!["--add-config".to_owned(), format!("{quota}={rate}")],
        None => vec!["--delete-config".to_owned(), quota.to_owned()],
    };
    let output = std::process::Command::new(crate::repo_root().join("scripts/kafka.sh"))
        .args(["configs", "--bootstrap-server", bootstrap, "--alter"])
        .args(change)
        .args(["--entity-type", "clients", "--entity-name", client_id])
        .output()
        .expect("scripts/kafka.sh configs runs");
    assert!(
        output.status.success(),
        "kafka-configs: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
