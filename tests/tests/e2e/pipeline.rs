//! The whole pipeline on a real broker: simulator → processor replicas → events, compared event
//! for event with the reference semantics computed from the input topic.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use e2e_tests::broker::{PrivateBroker, free_port, shared_bootstrap};
use e2e_tests::expect::{actual_events, assert_same_events, expected_events};
use e2e_tests::kafka_io::{
    committed_offsets, read_topic, try_committed_total, wait_for_group, wait_until_consumed,
};
use e2e_tests::service::{Service, simulator_args};
use e2e_tests::topics::PipelineTopics;
use sensor_contract::{Event, ProcessingRules};

/// The partitions a replica holds at the end, from its JSON log's assignment lines.
fn final_assignment(service: &Service) -> BTreeSet<i32> {
    let mut held = BTreeSet::new();
    for line in service.log().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let parse = |v: &serde_json::Value| -> Vec<i32> {
            v["partitions"]
                .as_str()
                .unwrap_or("")
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect()
        };
        match v["message"].as_str() {
            Some("partitions assigned") => held.extend(parse(&v)),
            Some("partitions revoked") => {
                for p in parse(&v) {
                    held.remove(&p);
                }
            }
            _ => {}
        }
    }
    held
}

#[test]
fn two_replicas_process_a_seeded_run_exactly_as_the_reference_says() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("two-replicas");
    topics.create(&bootstrap, 6);
    let mut replicas = [
        Service::processor(&topics.processor_args(&bootstrap)),
        Service::processor(&topics.processor_args(&bootstrap)),
    ];
    wait_for_group(&bootstrap, &topics.group, 2, Duration::from_secs(60));

    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "6000",
            "--sensors",
            "40",
            "--seed",
            "7",
            "--rate",
            "0",
        ],
    ));
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );

    let input = read_topic(&bootstrap, &topics.input);
    assert_eq!(input.len(), 6000);
    let partitions_used: BTreeSet<i32> = input.iter().map(|r| r.partition).collect();
    assert_eq!(
        partitions_used.len(),
        6,
        "40 sensors spread over all 6 partitions"
    );

    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    // 150 readings per sensor: 141 full windows each, plus the realistic profile's spikes.
    let averages = actual
        .values()
        .flatten()
        .filter(|e| matches!(e, Event::Average(_)))
        .count();
    let alerts = comparison.actual - averages;
    assert_eq!(averages, 40 * 141);
    assert!(alerts > 0, "the realistic profile produces alerts");
    assert!(
        read_topic(&bootstrap, &topics.dlq).is_empty(),
        "no dead letters from valid input"
    );
    println!(
        "two replicas: {} readings, {averages} averages, {alerts} alerts, all equal to the reference",
        input.len()
    );

    // Each replica holds a disjoint, non-empty share of the partitions: a sensor's window
    // lives on exactly one replica.
    let [a, b] = [
        final_assignment(&replicas[0]),
        final_assignment(&replicas[1]),
    ];
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both replicas got partitions: {a:?} {b:?}"
    );
    assert!(a.is_disjoint(&b), "assignments overlap: {a:?} {b:?}");
    assert_eq!(
        a.union(&b).copied().collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );

    for replica in &mut replicas {
        let (status, took) = replica.terminate(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "replica did not stop cleanly\n{}",
            replica.log_tail()
        );
        assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    }
}

#[test]
fn sigterm_mid_stream_then_restart_loses_nothing_and_repeats_nothing() {
    sigterm_then_restart("exactly_once");
}

/// `at_least_once` repeats nothing either when stopped gracefully: the batch in hand is
/// finished, its state acknowledged and its offsets committed before the replica leaves.
#[test]
fn at_least_once_sigterm_mid_stream_then_restart_loses_nothing_and_repeats_nothing() {
    sigterm_then_restart("at_least_once");
}

fn sigterm_then_restart(guarantee: &str) {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique(&format!("sigterm-{}", guarantee.replace('_', "-")));
    topics.create(&bootstrap, 6);
    let mut args = topics.processor_args(&bootstrap);
    args.extend(["--processing-guarantee".into(), guarantee.into()]);
    let mut first = Service::processor(&args);
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));

    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "8000",
            "--sensors",
            "30",
            "--seed",
            "11",
            "--rate",
            "2000",
        ],
    ));
    assert!(simulator.wait_for_log("Kafka is reachable", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_secs(2));
    let (status, took) = first.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM must exit 0\n{}",
        first.log_tail()
    );
    assert!(
        took < Duration::from_secs(10),
        "graceful stop took {took:?}"
    );

    // What the first replica committed is where the second resumes, with the windows it
    // restores from the changelog.
    let committed = committed_offsets(&bootstrap, &topics.group, &topics.input);
    let processed: i64 = committed.values().sum();
    assert!(
        processed > 0 && processed < 8000,
        "stopped mid-stream: {processed} of 8000 processed"
    );

    let mut second = Service::processor(&args);
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );

    let input = read_topic(&bootstrap, &topics.input);
    assert_eq!(input.len(), 8000);
    // One processor running alone, never interrupted, would have produced exactly this.
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    println!(
        "sigterm ({guarantee}): stopped after {processed} of 8000 readings in {took:?}; {} events after restart, none missing or repeated",
        comparison.actual
    );
    second.stop(Duration::from_secs(15));
}

#[test]
fn a_processor_started_before_the_broker_waits_then_works() {
    let broker = PrivateBroker::new(free_port());
    let bootstrap = broker.bootstrap();
    let topics = PipelineTopics::unique("early");
    let mut processor = Service::processor(&topics.processor_args(&bootstrap));
    assert!(
        processor.wait_for_log(
            "waiting for Kafka to become reachable",
            Duration::from_secs(20)
        ),
        "no clear log line while the broker is down\n{}",
        processor.log_tail()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        processor.is_running(),
        "the processor gave up\n{}",
        processor.log_tail()
    );

    broker.start();
    topics.create(&bootstrap, 6);
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "2000",
            "--sensors",
            "20",
            "--seed",
            "5",
            "--rate",
            "0",
        ],
    ));
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );

    let input = read_topic(&bootstrap, &topics.input);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    assert_eq!(input.len(), 2000);
    assert!(
        comparison.actual >= 20 * 91,
        "every sensor's windows filled"
    );
    let (status, _) = processor.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        processor.log_tail()
    );
}

/// Partitions of `topic` in the cluster's metadata (0: no such topic). The metadata request
/// itself never creates the topic (a consumer's `allow.auto.create.topics` is false).
fn partition_count(bootstrap: &str, topic: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("metadata client");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("cluster metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len())
}

/// Kafka's stock broker settings create a missing topic, with one partition, for any client
/// whose metadata request or produce allows it. Tried as a new user would on such a broker, the
/// processor once exited at start because its own metadata request had made the broker create
/// the changelog with one partition. No client of the project may create a topic by accident.
#[test]
fn on_a_broker_with_stock_topic_settings_no_topic_is_created_by_accident() {
    let bootstrap = shared_bootstrap();
    // The test broker really has the stock settings, or this test would prove nothing.
    let described = std::process::Command::new(e2e_tests::repo_root().join("scripts/kafka.sh"))
        .args(["configs", "--bootstrap-server", &bootstrap])
        .args([
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--describe",
            "--all",
        ])
        .output()
        .expect("kafka-configs");
    let described = String::from_utf8_lossy(&described.stdout);
    for stock in ["auto.create.topics.enable=true ", "num.partitions=1 "] {
        assert!(
            described.contains(stock),
            "the broker lacks {stock}:\n{described}"
        );
    }

    let topics = PipelineTopics::unique("stock-broker");
    let state_topic = format!("{}-window-state", topics.group);
    let mut processor = Service::processor(&topics.processor_args(&bootstrap));
    assert!(
        processor.wait_for_log("waiting for topics to be created", Duration::from_secs(30)),
        "{}",
        processor.log_tail()
    );
    std::thread::sleep(Duration::from_secs(2));
    for topic in [&topics.input, &topics.output, &topics.dlq, &state_topic] {
        assert_eq!(
            partition_count(&bootstrap, topic),
            0,
            "{topic} was created while the processor waited for its topics"
        );
    }

    topics.create(&bootstrap, 6);
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "1200",
            "--sensors",
            "12",
            "--seed",
            "3",
            "--rate",
            "0",
        ],
    ));
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );
    assert_eq!(
        partition_count(&bootstrap, &state_topic),
        6,
        "the changelog is co-partitioned with the input"
    );
    let input = read_topic(&bootstrap, &topics.input);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    assert_eq!(input.len(), 1200);
    assert!(
        comparison.actual >= 12 * 91,
        "every sensor's windows filled"
    );
    processor.stop(Duration::from_secs(15));
}

/// A replica joining while the first works through a backlog: the rebalance revokes partitions
/// from the first, most often in the middle of a batch (a backlog keeps it in batches nearly all
/// the time), whose records' events must then not commit: the engine aborts the batch when the
/// revocation reaches it, and the group coordinator's generation check (KIP-447) refuses its
/// offsets when the rebalance completed first. Every event is still there exactly once. Whether
/// a batch is cut depends on when the revocation comes (during a batch, during its commit, or
/// after the backlog), so the aborts are counted and printed, not required.
/// Its batch of 50 000 readings spans every partition it holds; readings of 600 sensors over
/// six partitions give each a share.
#[test]
fn a_replica_joining_during_a_backlog_doubles_no_event() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("revoked-mid-batch");
    topics.create(&bootstrap, 6);
    let readings = 480_000;
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            &readings.to_string(),
            "--sensors",
            "600",
            "--seed",
            "23",
            "--rate",
            "0",
        ],
    ));
    simulator.wait_success(Duration::from_secs(120));

    let args = topics.processor_args(&bootstrap);
    let mut first = Service::processor(&args);
    // The first replica is under way: it has committed some of the backlog, not all of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let started = loop {
        let done = try_committed_total(&bootstrap, &topics.group, &topics.input, 6).unwrap_or(0);
        if done > 0 {
            break done;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first replica committed nothing in 60 s\n{}",
            first.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut second = Service::processor(&args);
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(180),
    );

    let log = first.log();
    let aborted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transaction aborted, the batch will be processed again"))
        .collect();
    let by_revocation = aborted
        .iter()
        .filter(|l| l.contains("of the batch were revoked while it ran"))
        .count();
    let input = read_topic(&bootstrap, &topics.input);
    assert_eq!(input.len(), readings);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    assert!(
        !final_assignment(&second).is_empty(),
        "the second replica took partitions"
    );
    println!(
        "joined during a backlog: the second replica joined after {started} of {readings} readings; \
         {} batch(es) aborted ({by_revocation} by the revocation, the rest by the generation \
         check); {} events, none missing or repeated",
        aborted.len(),
        comparison.actual
    );
    for replica in [&mut first, &mut second] {
        replica.stop(Duration::from_secs(15));
    }
}
