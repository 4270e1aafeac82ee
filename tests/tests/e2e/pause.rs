//! A replica frozen or cut off past its timeouts rides it out. Three exactly_once replicas
//! share the input while the simulator publishes. Two in turn are frozen with SIGSTOP for
//! longer than the 10 s session and transaction timeouts (as a long GC pause or a stalled VM
//! freezes a process), while the others take their partitions over and the broker aborts their
//! open transactions, and then thawed. The third runs in a network namespace of its own and is
//! cut off from the broker (every packet dropped, both ways) for longer still, then reconnected.
//! A replica back finds its producer fenced by that abort, or its transaction in a state it
//! cannot leave: it must build a new producer under the same transactional id, restore its
//! partitions, rejoin and go on, not exit. Then the audit: nothing missing, doubled or wrong,
//! no replica ever exited, and the reconnected one has partitions again.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{lag, read_topic, wait_for_group};
use e2e_tests::netns::NetNs;
use e2e_tests::service::{Service, binary, simulator_args};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::PipelineTopics;
use nix::sys::signal::Signal;

const REPLICAS: usize = 3;
/// Longer than the session timeout and the transaction timeout (10 s each) plus the broker's
/// check for timed-out transactions (every 10 s by default): the broker has surely aborted the
/// frozen replica's transaction, bumping its producer epoch, by the time it thaws.
const FROZEN: Duration = Duration::from_secs(21);
/// As [`FROZEN`], and longer: librdkafka's requests time out and its connections are torn
/// down meanwhile, as they are not in a frozen process.
const CUT_OFF: Duration = Duration::from_secs(25);
/// The replica in the network namespace.
const CUT: usize = 0;

#[test]
fn replicas_frozen_or_cut_off_past_their_timeouts_recover_and_the_output_stays_exact() {
    let started = Instant::now();
    // The broker listens where the namespace reaches it; the test and the other replicas reach
    // it there too.
    let netns = NetNs::create();
    let broker = PrivateBroker::on_host(&netns.host_address(), free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let topics = PipelineTopics::unique("pause");
    topics.create(&bootstrap, 6);
    let (replica_topics, replica_bootstrap) = (topics.clone(), bootstrap.clone());
    let namespace = netns.name().to_owned();
    let mut replicas = Replicas::new(REPLICAS, move |i| {
        let mut args = replica_topics.processor_args(&replica_bootstrap);
        args.extend(["--instance-id".into(), format!("replica-{i}")]);
        if i == CUT {
            Service::start_in_netns(&namespace, "processor", &args)
        } else {
            Service::processor(&args)
        }
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

    for i in (0..REPLICAS).filter(|i| *i != CUT) {
        replicas.pause(Duration::from_secs(2));
        let replica = replicas.running[i].as_ref().expect("running");
        replica.signal(Signal::SIGSTOP);
        std::thread::sleep(FROZEN);
        replica.signal(Signal::SIGCONT);
    }
    replicas.pause(Duration::from_secs(2));
    let assigned = |replicas: &Replicas| {
        replicas.running[CUT]
            .as_ref()
            .expect("running")
            .log_events("partitions assigned")
            .iter()
            .filter(|e| e["partitions"] != "[]")
            .count()
    };
    let assigned_before = assigned(&replicas);
    netns.cut();
    replicas.pause(CUT_OFF);
    netns.heal();
    replicas.pause(Duration::from_secs(3));
    simulator.wait_success(Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(180);
    while lag(&bootstrap, &topics.group, &topics.input) > 0 {
        replicas.supervise();
        assert!(Instant::now() < deadline, "the replicas did not catch up");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every replica is alive and in the group again, the reconnected one with partitions.
    wait_for_group(&bootstrap, &topics.group, REPLICAS, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned(&replicas) == assigned_before {
        assert!(
            Instant::now() < deadline,
            "the reconnected replica was given no partitions"
        );
        replicas.pause(Duration::from_millis(500));
    }

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
        "pause: {readings} readings, 2 replicas each frozen {} s in turn, 1 cut off {} s, {recoveries} producers rebuilt, {} crashes, {} events checked: {} missing, {} duplicated, {} wrong ({:.0} s)",
        FROZEN.as_secs(),
        CUT_OFF.as_secs(),
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
    // Whether a replica back finds its producer fenced depends on where the freeze or the cut
    // caught it (inside a transaction the broker then aborted, or between two): most runs
    // replace one or two producers, some none. What must hold in every run: no replica exits.
    assert_eq!(
        replicas.crashes, 0,
        "a thawed or reconnected replica exited"
    );
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
