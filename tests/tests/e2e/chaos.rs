//! Chaos on the real broker: replicas killed with SIGKILL and restarted, scaled 3 → 1 → 3, the
//! broker restarted, while the simulator keeps publishing. Then the audit compares the output
//! with what one processor running alone, never interrupted, would have produced.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{lag, read_topic, wait_for_group};
use e2e_tests::service::{Service, binary, simulator_args};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::PipelineTopics;

const REPLICAS: usize = 3;

/// Each run brings a broker, three replicas and a simulator: `.config/nextest.toml` puts the
/// runs with a broker of their own in a test group that lets two of them share the machine.
fn chaos(guarantee: &'static str) {
    let started = Instant::now();
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let topics = PipelineTopics::unique(&format!("chaos-{}", guarantee.replace('_', "-")));
    topics.create(&bootstrap, 6);
    let replica_topics = topics.clone();
    let replica_bootstrap = bootstrap.clone();
    let mut chaos = Replicas::new(REPLICAS, move |i| {
        let mut args = replica_topics.processor_args(&replica_bootstrap);
        args.extend(["--instance-id".into(), format!("replica-{i}")]);
        args.extend(["--processing-guarantee".into(), guarantee.into()]);
        Service::processor(&args)
    });
    for i in 0..REPLICAS {
        chaos.start(i);
    }
    if let Err(failure) = std::panic::catch_unwind(|| {
        wait_for_group(&bootstrap, &topics.group, REPLICAS, Duration::from_secs(60))
    }) {
        for replica in chaos.all() {
            eprintln!("{}", replica.log_tail());
        }
        std::panic::resume_unwind(failure);
    }
    let simulator_args = simulator_args(
        &bootstrap,
        &topics.input,
        &["--sensors", "60", "--rate", "400", "--seed", "21"],
    );
    let mut simulator = Service::simulator(&simulator_args);

    // Kill a random replica every couple of seconds and start it again under the same name.
    for _ in 0..6 {
        chaos.pause(Duration::from_millis(1500 + rand::random_range(0..1500)));
        let victim = rand::random_range(0..REPLICAS);
        chaos.kill(victim);
        chaos.pause(Duration::from_millis(rand::random_range(0..1000)));
        chaos.start(victim);
    }
    // Scale 3 → 1 → 3.
    chaos.pause(Duration::from_secs(2));
    chaos.stop(1);
    chaos.stop(2);
    chaos.pause(Duration::from_secs(4));
    chaos.start(1);
    chaos.start(2);
    chaos.pause(Duration::from_secs(4));
    // Restart the broker under everyone's feet.
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.start();
    chaos.pause(Duration::from_secs(6));
    // Two more kills after the broker is back.
    for _ in 0..2 {
        let victim = rand::random_range(0..REPLICAS);
        chaos.kill(victim);
        chaos.start(victim);
        chaos.pause(Duration::from_secs(2));
    }

    let (status, _) = simulator.terminate(Duration::from_secs(90));
    assert!(
        status.is_some_and(|s| s.success()),
        "the simulator lost readings\n{}",
        simulator.log_tail()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        chaos.supervise();
        if lag(&bootstrap, &topics.group, &topics.input) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas did not catch up within 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut audit = Command::new(binary("sensor-audit"));
    audit
        .args(topics.processor_args(&bootstrap))
        .arg("--json")
        .env_remove("PIPELINE_CONFIG");
    if guarantee == "at_least_once" {
        audit.arg("--allow-duplicates");
    }
    let output = audit.output().expect("running sensor-audit");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "audit output ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let readings = read_topic(&bootstrap, &topics.input).len();
    let rebalances = chaos.count_in_logs("partitions assigned");
    let aborts = chaos.count_in_logs("transaction aborted, the batch will be processed again");
    println!(
        "chaos {guarantee}: {readings} readings, {} kills, {} crashes restarted, {rebalances} assignments, 1 broker restart, \
         {} aborted transactions logged, {} events checked: {} missing, {} duplicated, {} wrong, {} unexpected ({:.0} s)",
        chaos.kills,
        chaos.crashes,
        aborts,
        report["expected_events"],
        report["missing"],
        report["duplicated"],
        report["wrong"],
        report["unexpected"],
        started.elapsed().as_secs_f64()
    );
    let clean = report["missing"] == 0 && report["wrong"] == 0 && report["unexpected"] == 0;
    if !clean || (guarantee == "exactly_once" && report["duplicated"] != 0) {
        let dir = e2e_tests::repo_root()
            .join("target/chaos-logs")
            .join(&topics.group);
        chaos.save_logs(&dir);
        simulator.save_log(&dir.join("simulator.log"));
        let sensors: Vec<_> = report["sensors"]
            .as_object()
            .map(|m| m.iter().take(5).collect())
            .unwrap_or_default();
        eprintln!(
            "chaos: logs kept in {}; first sensors with differences: {sensors:?}",
            dir.display()
        );
    }
    assert!(
        readings > 5_000,
        "the simulator kept publishing: {readings}"
    );
    assert_eq!(report["unusable_input"], 0);
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["wrong"], 0, "{report}");
    assert_eq!(report["unexpected"], 0, "{report}");
    assert_eq!(report["undecodable_output"], 0, "{report}");
    if guarantee == "exactly_once" {
        assert_eq!(report["duplicated"], 0, "{report}");
    }
    assert_eq!(output.status.code(), Some(0), "{report}");
    for i in 0..REPLICAS {
        chaos.stop(i);
    }
}

#[test]
fn chaos_exactly_once_loses_nothing_and_repeats_nothing() {
    chaos("exactly_once");
}

#[test]
fn chaos_at_least_once_loses_nothing() {
    chaos("at_least_once");
}
