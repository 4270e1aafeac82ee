//! Restoring a partition's windows from the changelog: complete, and fast. Prints the time for
//! a partition holding 100 000 sensors.

use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::unique;
use pipeline_runtime::settings::KafkaSettings;
use processor::job::{SensorState, TemperatureJob};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sensor_contract::Window;
use sensor_contract::{DecodeOptions, ProcessingRules};
use stream_engine::Job;
use stream_engine::changelog::{RestoreTarget, ensure_topic, restore_partition};
use stream_engine::codec::{CHECKPOINT_KEY, Checkpoint, write_envelope};
use tokio_util::sync::CancellationToken;

/// A sensor's changelog value after `updates` readings, as the processor writes it.
fn state(sensor: u32, updates: u32) -> Vec<u8> {
    let mut window = Window::new(10);
    for k in 0..updates {
        window.push(f64::from(sensor % 50) + f64::from(k) / 10.0);
    }
    let job = TemperatureJob::new(ProcessingRules::default(), DecodeOptions::default());
    let mut value = Vec::new();
    write_envelope(
        i64::from(sensor * 3 + updates),
        TemperatureJob::STATE_VERSION,
        &mut value,
    );
    let state = SensorState {
        window,
        model: None,
    };
    job.encode_state(&state, &mut value);
    value
}

/// A checkpoint as engines before `input_offset` wrote them.
fn checkpoint(next_offset: i64) -> Vec<u8> {
    Checkpoint {
        next_offset,
        stream_time_ms: None,
        snapshot: None,
        input_offset: None,
        from_offset: None,
    }
    .encode()
}

/// A checkpoint of a batch that committed input offset `next_offset`.
fn checkpoint_of(next_offset: i64) -> Vec<u8> {
    Checkpoint {
        input_offset: Some(next_offset),
        ..Checkpoint::decode(&checkpoint(next_offset)).expect("a checkpoint")
    }
    .encode()
}

/// A producer writing one record at a time to partition 0 of `topic`, each acknowledged.
fn writer(brokers: &str, topic: &str) -> impl Fn(&[u8], Vec<u8>) + use<> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    let topic = topic.to_owned();
    move |key: &[u8], value: Vec<u8>| {
        producer
            .send(BaseRecord::to(&topic).partition(0).key(key).payload(&value))
            .map_err(|(e, _)| e)
            .expect("enqueue");
        producer.flush(Duration::from_secs(10)).expect("flush");
    }
}

/// Commits input offset `offset` of partition 0 of `topic` for `group`.
fn commit(brokers: &str, group: &str, topic: &str, offset: i64) {
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit");
}

/// Committed state the changelog holds past the checkpoint of the committed input offset is a
/// transaction whose offsets the read did not show yet (its commit markers reach the offsets
/// topic and the changelog independently): the restore applies it, to the changelog's end, and
/// counts it as `ahead` under exactly_once. (Stopped at the checkpoint instead, a broker-bounce
/// run processed such a transaction's input again and doubled 3 events.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_applies_committed_state_past_the_committed_offset_read() {
    let kafka = KafkaSettings {
        brokers: shared_bootstrap(),
        ..KafkaSettings::default()
    };
    let (state_topic, input_topic, group) = (
        unique("restore-ahead-state"),
        unique("restore-ahead-input"),
        unique("restore-ahead-group"),
    );
    for topic in [&state_topic, &input_topic] {
        ensure_topic(&kafka, topic, 1).await.expect("topic");
    }
    commit(&kafka.brokers, &group, &input_topic, 500);
    let write = writer(&kafka.brokers, &state_topic);
    write(b"s", state(1, 3));
    write(CHECKPOINT_KEY, checkpoint_of(400));
    write(b"s", state(1, 7));
    write(CHECKPOINT_KEY, checkpoint_of(500));
    write(b"s", state(1, 9));
    write(b"t", state(2, 1));
    write(CHECKPOINT_KEY, checkpoint_of(600));
    let target = RestoreTarget {
        state_topic: state_topic.clone(),
        input_topic: input_topic.clone(),
        group_id: group.clone(),
        partition: 0,
        catch_up_timeout: Duration::from_secs(30),
        transactional: true,
    };
    let never = CancellationToken::new();
    let restored = restore_partition(&kafka, &target, &never).expect("restore");
    assert_eq!(restored.committed, Some(500));
    assert_eq!(restored.checkpoint.map(|c| c.next_offset), Some(600));
    assert_eq!(restored.values["s"], state(1, 9));
    assert_eq!(restored.values["t"], state(2, 1));
    assert_eq!((restored.records, restored.ahead), (7, 3));

    // Under at_least_once the changelog runs ahead of the committed offsets by design (written
    // before they are committed, its outputs acknowledged): the same state, nothing counted.
    let at_least_once = restore_partition(
        &kafka,
        &RestoreTarget {
            transactional: false,
            ..target.clone()
        },
        &never,
    )
    .expect("restore");
    assert_eq!(at_least_once.values, restored.values);
    assert_eq!((at_least_once.records, at_least_once.ahead), (7, 0));

    // Once the group has committed 600, nothing is ahead.
    commit(&kafka.brokers, &group, &input_topic, 600);
    let restored = restore_partition(&kafka, &target, &never).expect("restore");
    assert_eq!(restored.values["s"], state(1, 9));
    assert_eq!((restored.records, restored.ahead), (7, 0));

    // A changelog of an earlier engine (no input offsets) is read to its end, as before.
    let legacy_topic = unique("restore-ahead-legacy");
    ensure_topic(&kafka, &legacy_topic, 1).await.expect("topic");
    let write = writer(&kafka.brokers, &legacy_topic);
    write(b"s", state(1, 7));
    write(CHECKPOINT_KEY, checkpoint(600));
    write(b"s", state(1, 9));
    write(CHECKPOINT_KEY, checkpoint(700));
    let restored = restore_partition(
        &kafka,
        &RestoreTarget {
            state_topic: legacy_topic,
            ..target.clone()
        },
        &never,
    )
    .expect("restore");
    assert_eq!(restored.values["s"], state(1, 9));
    assert_eq!(restored.checkpoint.map(|c| c.next_offset), Some(700));
    assert_eq!(restored.ahead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_of_100_000_sensors_is_restored_exactly() {
    let kafka = KafkaSettings {
        brokers: shared_bootstrap(),
        ..KafkaSettings::default()
    };
    let topic = unique("restore-window-state");
    ensure_topic(&kafka, &topic, 2)
        .await
        .expect("changelog topic");

    // Each sensor written twice, as consecutive batches would: the later state must win.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    const SENSORS: u32 = 100_000;
    for updates in [4, 12] {
        for sensor in 0..SENSORS {
            let key = format!("sensor-{sensor:06}");
            let value = state(sensor, updates);
            producer
                .send(
                    BaseRecord::to(&topic)
                        .partition(0)
                        .key(&key)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");

    let target = RestoreTarget {
        state_topic: topic.clone(),
        input_topic: "no-such-input".into(),
        group_id: "restore-test-group-without-commits".into(),
        partition: 0,
        catch_up_timeout: Duration::from_secs(30),
        transactional: true,
    };
    let never = CancellationToken::new();
    let started = Instant::now();
    let restored = tokio::task::block_in_place(|| restore_partition(&kafka, &target, &never))
        .expect("restore");
    let records = restored.records;
    let sensors = restored.values;
    let took = started.elapsed();
    assert_eq!(records, 2 * u64::from(SENSORS));
    assert_eq!(sensors.len(), SENSORS as usize);
    for sensor in [0, 1, 4_242, 99_999] {
        assert_eq!(
            sensors[format!("sensor-{sensor:06}").as_str()],
            state(sensor, 12),
            "sensor {sensor}"
        );
    }
    println!(
        "restore: {} sensors from {} changelog records in {:.2} s ({:.0} records/s)",
        sensors.len(),
        records,
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64()
    );

    let other = restore_partition(
        &kafka,
        &RestoreTarget {
            partition: 1,
            ..target
        },
        &never,
    )
    .expect("restore of partition 1");
    assert!(
        other.values.is_empty(),
        "partition 1 holds nothing: co-partitioned state stays apart"
    );
}

/// The committed offset can include a batch whose state is not readable yet (its transaction
/// markers reach the changelog later): the restore waits for the checkpoint that covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_waits_until_the_changelog_reaches_the_committed_offset() {
    let kafka = KafkaSettings {
        brokers: shared_bootstrap(),
        ..KafkaSettings::default()
    };
    let state_topic = unique("restore-wait-state");
    let input_topic = unique("restore-wait-input");
    let group = unique("restore-wait-group");
    ensure_topic(&kafka, &state_topic, 1)
        .await
        .expect("changelog topic");
    ensure_topic(&kafka, &input_topic, 1)
        .await
        .expect("input topic");

    // The group has committed input offset 500 ...
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&input_topic, 0, Offset::Offset(500))
        .unwrap();
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit");

    // ... but the changelog only holds the state of offset 400 so far.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .expect("producer");
    let write = |key: &[u8], value: Vec<u8>| {
        producer
            .send(
                BaseRecord::to(&state_topic)
                    .partition(0)
                    .key(key)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        producer.flush(Duration::from_secs(10)).expect("flush");
    };
    write(b"s", state(1, 3));
    write(CHECKPOINT_KEY, checkpoint(400));

    let target = RestoreTarget {
        state_topic: state_topic.clone(),
        input_topic: input_topic.clone(),
        group_id: group.clone(),
        partition: 0,
        catch_up_timeout: Duration::from_secs(30),
        transactional: true,
    };
    let never = CancellationToken::new();
    let started = Instant::now();
    let restored = std::thread::scope(|scope| {
        let restore = scope.spawn(|| restore_partition(&kafka, &target, &never));
        std::thread::sleep(Duration::from_millis(1500));
        write(b"s", state(1, 7));
        write(CHECKPOINT_KEY, checkpoint(500));
        restore.join().expect("restore thread")
    })
    .expect("restore");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the restore waited for the checkpoint"
    );
    assert_eq!(restored.committed, Some(500));
    assert_eq!(restored.checkpoint.map(|c| c.next_offset), Some(500));
    assert_eq!(
        restored.values["s"],
        state(1, 7),
        "the state of offset 500, not 400"
    );

    // A checkpoint that never comes: the restore gives up after the timeout, with what it has.
    offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&input_topic, 0, Offset::Offset(900))
        .unwrap();
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit");
    let restored = restore_partition(
        &kafka,
        &RestoreTarget {
            catch_up_timeout: Duration::from_secs(2),
            ..target.clone()
        },
        &never,
    )
    .expect("restore");
    assert_eq!(
        (
            restored.committed,
            restored.checkpoint.map(|c| c.next_offset)
        ),
        (Some(900), Some(500))
    );

    // Shutdown during a restore that waits for its checkpoint ends it at once.
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let result = std::thread::scope(|scope| {
        let restore = scope.spawn(|| restore_partition(&kafka, &target, &cancel));
        std::thread::sleep(Duration::from_millis(500));
        cancel.cancel();
        restore.join().expect("restore thread")
    });
    assert!(
        matches!(
            result,
            Err(stream_engine::changelog::RestoreError::Cancelled)
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cancelled in {:?}",
        started.elapsed()
    );
}

/// A SIGTERM while a partition's restore waits for its checkpoint (here, one that never comes:
/// the restore would wait for the transaction timeout + 30 s) stops the processor at once: the
/// restore runs on a tracked, cancellable thread. Meanwhile, reaching the changelog's end is not
/// logged as a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_a_restore_stops_the_processor_at_once() {
    use e2e_tests::service::{Service, http_get};
    use e2e_tests::topics::PipelineTopics;

    let bootstrap = shared_bootstrap();
    let kafka = KafkaSettings {
        brokers: bootstrap.clone(),
        ..KafkaSettings::default()
    };
    let topics = PipelineTopics::unique("restore-sigterm");
    topics.create(&bootstrap, 1);
    let state_topic = format!("{}-window-state", topics.group);
    ensure_topic(&kafka, &state_topic, 1)
        .await
        .expect("changelog topic");
    // The group committed offset 500, the changelog's checkpoint says 400.
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &topics.group)
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topics.input, 0, Offset::Offset(500))
        .unwrap();
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    producer
        .send(
            BaseRecord::to(&state_topic)
                .partition(0)
                .key(CHECKPOINT_KEY)
                .payload(&checkpoint(400)),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    producer.flush(Duration::from_secs(10)).expect("flush");

    let mut processor = Service::processor(&topics.processor_args(&bootstrap));
    assert!(
        processor.wait_for_log("partitions assigned", Duration::from_secs(30)),
        "{}",
        processor.log_tail()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let address = processor.http_address(Duration::from_secs(5));
    assert_eq!(
        http_get(&address, "/readyz").0,
        503,
        "still restoring: not ready"
    );
    let warnings: Vec<String> = processor
        .log()
        .lines()
        .filter(|l| l.contains("\"WARN\"") && l.contains("EOF"))
        .map(str::to_owned)
        .collect();
    // Reaching a changelog partition's end is how a restore works, not a warning.
    assert!(
        warnings.is_empty(),
        "end-of-partition warnings: {warnings:?}"
    );
    let (status, took) = processor.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        processor.log_tail()
    );
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM during a restore took {took:?}"
    );
    println!("sigterm during a restore: exit 0 after {took:?}");
}
