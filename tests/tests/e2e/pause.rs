//! A replica frozen past its timeouts rides it out. Three exactly_once replicas share the
//! input while the simulator publishes; each in turn is frozen with SIGSTOP for longer than the
//! 10 s session and transaction timeouts (as a long GC pause or a stalled VM freezes a
//! process), while the others take its partitions over and the broker aborts its open
//! transaction, and then thawed. A thawed replica finds its producer fenced by that abort: it
//! must build a new one under the same transactional id, restore its partitions and go on, not
//! exit. Then the audit: nothing missing, doubled or wrong, and no replica ever exited.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::{lag, read_topic, wait_for_group};
use e2e_tests::service::{Service, binary, simulator_args};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::PipelineTopics;
use nix::sys::signal::Signal;

const REPLICAS: usize = 3;
/// Longer than the session timeout and the transaction timeout (10 s each) plus the broker's
/// check for timed-out transactions (every 10 s by default): the broker has surely aborted the
/// frozen replica's transaction, bumping its producer epoch, by the time it thaws.
const FROZEN: Duration = Duration::from_secs(21);

#[test]
fn replicas_frozen_past_their_timeouts_recover_and_the_output_stays_exact() {
    let started = Instant::now();
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("pause");
    topics.create(&bootstrap, 6);
    let (replica_topics, replica_bootstrap) = (topics.clone(), bootstrap.clone());
    let mut replicas = Replicas::new(REPLICAS, move |i| {
        let mut args = replica_topics.processor_args(&replica_bootstrap);
        args.extend(["--instance-id".into(), format!("replica-{i}")]);
        Service::processor(&args)
    });
    for i in 0..REPLICAS {
        replicas.start(i);
    }
    wait_for_group(&bootstrap, &topics.group, REPLICAS, Duration::from_secs(60));
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--sensors",
            "60",
            "--rate",
            "20000",
            "--count",
            "400000",
            "--seed",
            "33",
        ],
    ));

    for i in 0..REPLICAS {
        replicas.pause(Duration::from_secs(2));
        let replica = replicas.running[i].as_ref().expect("running");
        replica.signal(Signal::SIGSTOP);
        std::thread::sleep(FROZEN);
        replica.signal(Signal::SIGCONT);
    }
    replicas.pause(Duration::from_secs(3));
    simulator.wait_success(Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(180);
    while lag(&bootstrap, &topics.group, &topics.input) > 0 {
        replicas.supervise();
        assert!(Instant::now() < deadline, "the replicas did not catch up");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every replica is alive and in the group again.
    wait_for_group(&bootstrap, &topics.group, REPLICAS, Duration::from_secs(30));

    let output = Command::new(binary("sensor-audit"))
        .args(topics.processor_args(&bootstrap))
        .arg("--json")
        .env_remove("PIPELINE_CONFIG")
        .output()
        .expect("running sensor-audit");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "audit output ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let readings = read_topic(&bootstrap, &topics.input).len();
    let recoveries =
        replicas.count_in_logs("transactional producer rebuilt; restoring the partitions");
    println!(
        "pause: {readings} readings, {REPLICAS} replicas each frozen {} s in turn, {recoveries} producers rebuilt, {} crashes, {} events checked: {} missing, {} duplicated, {} wrong ({:.0} s)",
        FROZEN.as_secs(),
        replicas.crashes,
        report["expected_events"],
        report["missing"],
        report["duplicated"],
        report["wrong"],
        started.elapsed().as_secs_f64()
    );
    if replicas.crashes > 0 {
        replicas.save_logs(
            &e2e_tests::repo_root()
                .join("target/pause-logs")
                .join(&topics.group),
        );
    }
    // Whether a thawed replica finds its producer fenced depends on where the freeze caught it
    // (inside a transaction the broker then aborted, or between two): most runs replace one or
    // two producers, some none. What must hold in every run: no replica exits.
    assert_eq!(replicas.crashes, 0, "a thawed replica exited");
    for key in [
        "missing",
        "duplicated",
        "wrong",
        "unexpected",
        "unusable_input",
    ] {
        assert_eq!(report[key], 0, "{key}: {report}");
    }
    assert_eq!(output.status.code(), Some(0), "{report}");
    for i in 0..REPLICAS {
        replicas.stop(i);
    }
}
