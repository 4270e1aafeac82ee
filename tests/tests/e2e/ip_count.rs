//! The network-log pipeline end to end on the real broker: the log simulator over four
//! connections into the gateway, two `ip-counter` replicas, and both stages held to their
//! specification: the repartition topic holds exactly the addresses and event times of the
//! lines, and `ip-counts` exactly the closed windows the reference model computes from the
//! repartition topic's partitions, late requests dead-lettered.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::{read_topic, wait_until_consumed, wait_until_records_consumed};
use e2e_tests::service::{Service, binary, wait_ready};
use e2e_tests::topics::LogTopics;
use ip_count::lines::read_line;
use ip_count::reference::expected;
use ip_count::{Count, WindowRules};

/// A repartitioned request as the reference model takes it.
type Request = Option<(String, i64)>;

#[test]
fn log_lines_become_exact_ip_counts_per_window() {
    let bootstrap = shared_bootstrap();
    let topics = LogTopics::unique("ip-count");
    topics.create(&bootstrap, [3, 4, 4]);
    let mut gateway = Service::gateway(&topics.gateway_args(&bootstrap));
    let listen = gateway.listen_address(Duration::from_secs(60));
    wait_ready(&gateway.http_address(Duration::from_secs(30)));

    let LogTopics {
        logs,
        requests,
        counts,
        dlq,
        group,
    } = topics.clone();
    let counter_args = topics.ip_counter_args(&bootstrap);
    let mut counters = [
        Service::start_binary("ip-counter", &counter_args),
        Service::start_binary("ip-counter", &counter_args),
    ];
    for counter in &counters {
        wait_ready(&counter.http_address(Duration::from_secs(30)));
    }

    let lines = 8000;
    let output = std::process::Command::new(binary("log-simulator"))
        .args([
            "--gateway",
            &listen,
            "--rate",
            "2000",
            "--connections",
            "4",
            "--seed",
            "5",
        ])
        .args([
            "--count",
            &lines.to_string(),
            "--start-time-ms",
            "1795341600000",
            "--step-ms",
            "10",
        ])
        .output()
        .expect("log-simulator runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    gateway.stop(Duration::from_secs(30));
    let waited = std::panic::catch_unwind(|| {
        let timeout = Duration::from_secs(120);
        wait_until_consumed(&bootstrap, &format!("{group}-lines"), &logs, timeout);
        wait_until_records_consumed(&bootstrap, &format!("{group}-counts"), &requests, timeout);
    });
    if let Err(panic) = waited {
        let dir = e2e_tests::repo_root().join("target/test-logs");
        let _ = std::fs::create_dir_all(&dir);
        for (i, counter) in counters.iter().enumerate() {
            counter.save_log(&dir.join(format!("{group}-ip-counter-{i}.log")));
        }
        std::panic::resume_unwind(panic);
    }

    // Stage 1: every line's addresses, at the line's time, once.
    let input = read_topic(&bootstrap, &logs);
    assert_eq!(input.len(), lines);
    let mut want: Vec<(String, i64)> = Vec::new();
    let mut unusable = 0;
    for record in &input {
        match read_line(
            record.payload.as_deref().unwrap_or_default(),
            record.timestamp_ms,
        ) {
            Ok(read) => want.extend(read.addresses.iter().map(|a| (a.to_string(), read.time_ms))),
            Err(_) => unusable += 1,
        }
    }
    let repartitioned = read_topic(&bootstrap, &requests);
    let mut got: Vec<(String, i64)> = repartitioned
        .iter()
        .map(|r| {
            let key = String::from_utf8(r.key.clone().unwrap_or_default()).expect("key");
            let time = String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default())
                .parse()
                .expect("time");
            (key, time)
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "one request per address per line");
    assert!(
        got == want,
        "the repartition topic holds other requests than the lines"
    );

    // Stage 2: per repartition partition, in offset order, the reference's closed windows.
    let rules = WindowRules {
        size_ms: 10_000,
        lateness_ms: 2_000,
    };
    let mut by_partition: BTreeMap<i32, Vec<(i64, Request)>> = BTreeMap::new();
    for record in &repartitioned {
        let key = String::from_utf8(record.key.clone().unwrap_or_default()).expect("key");
        let time: i64 = String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default())
            .parse()
            .expect("time");
        by_partition
            .entry(record.partition)
            .or_default()
            .push((record.offset, Some((key, time))));
    }
    let mut expected_counts = Vec::new();
    let mut late = 0;
    for records in by_partition.values_mut() {
        records.sort_by_key(|(offset, _)| *offset);
        let records: Vec<_> = records.iter().map(|(_, r)| r.clone()).collect();
        let model = expected(rules, &records);
        expected_counts.extend(model.closed);
        late += model.late;
    }
    expected_counts.sort();
    let mut actual: Vec<Count> = read_topic(&bootstrap, &counts)
        .iter()
        .map(|r| {
            let count: Count = serde_json::from_slice(r.payload.as_deref().unwrap_or_default())
                .expect("count JSON");
            assert_eq!(
                r.key.as_deref(),
                Some(count.ip.as_bytes()),
                "keyed by the address"
            );
            count
        })
        .collect();
    actual.sort();
    assert!(!expected_counts.is_empty(), "windows closed");
    assert_eq!(
        actual.len(),
        expected_counts.len(),
        "one count per closed (window, address)"
    );
    assert!(
        actual == expected_counts,
        "the counts differ from the reference"
    );

    let dead = read_topic(&bootstrap, &dlq);
    let kinds = |kind: &str| {
        dead.iter()
            .filter(|r| r.header("error.kind").as_deref() == Some(kind))
            .count()
    };
    assert_eq!(kinds("late"), late, "late requests dead-lettered");
    assert_eq!(
        dead.len() - kinds("late"),
        unusable,
        "unusable lines dead-lettered"
    );
    // The audit agrees, and says what was checked.
    let audit = std::process::Command::new(binary("ip-audit"))
        .args(&counter_args)
        .arg("--json")
        .output()
        .expect("ip-audit runs");
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|_| panic!("ip-audit: {}", String::from_utf8_lossy(&audit.stderr)));
    assert!(audit.status.success(), "{report}");
    assert_eq!(report["counts_matched"], actual.len());
    assert_eq!(report["requests_expected"], got.len());
    assert_eq!(report["lines_unusable"], unusable);
    assert_eq!(report["late"], late);

    let top = actual.iter().max_by_key(|c| c.count).expect("a count");
    println!(
        "ip-count: {lines} lines, {} requests, {} closed counts as the reference says, {late} late, {unusable} unusable; top talker {} with {} in one window",
        got.len(),
        actual.len(),
        top.ip,
        top.count
    );
    for counter in &mut counters {
        counter.stop(Duration::from_secs(30));
    }
}
