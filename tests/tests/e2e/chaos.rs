//! Chaos on the real broker: replicas killed with SIGKILL and restarted, scaled 3 → 1 → 3, the
//! broker restarted, while the simulator keeps publishing. Then the audit compares the output
//! with what one processor running alone, never interrupted, would have produced.
//!
//! Both guarantees go through the same chaos side by side, on one broker of the test's own:
//! each pipeline has its topics, group, three replicas and simulator, and each kill or stop
//! hits a replica of each. One run instead of two halves the broker starts and the time the run
//! holds three of the suite's slots.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{lag, read_topic, wait_for_group};
use e2e_tests::service::{Service, binary, simulator_args};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::PipelineTopics;

const REPLICAS: usize = 3;

/// One guarantee's pipeline: its topics, replicas and simulator.
struct Pipeline {
    guarantee: &'static str,
    topics: PipelineTopics,
    replicas: Replicas,
    simulator: Service,
}

impl Pipeline {
    fn start(bootstrap: &str, guarantee: &'static str, seed: &str) -> Self {
        let topics = PipelineTopics::unique(&format!("chaos-{}", guarantee.replace('_', "-")));
        topics.create(bootstrap, 6);
        let (replica_topics, replica_bootstrap) = (topics.clone(), bootstrap.to_owned());
        let mut replicas = Replicas::new(REPLICAS, move |i| {
            let mut args = replica_topics.processor_args(&replica_bootstrap);
            args.extend(["--instance-id".into(), format!("replica-{i}")]);
            args.extend(["--processing-guarantee".into(), guarantee.into()]);
            Service::processor(&args)
        });
        for i in 0..REPLICAS {
            replicas.start(i);
        }
        if let Err(failure) = std::panic::catch_unwind(|| {
            wait_for_group(bootstrap, &topics.group, REPLICAS, Duration::from_secs(60))
        }) {
            for replica in replicas.all() {
                eprintln!("{}", replica.log_tail());
            }
            std::panic::resume_unwind(failure);
        }
        let simulator = Service::simulator(&simulator_args(
            bootstrap,
            &topics.input,
            &["--sensors", "60", "--rate", "400", "--seed", seed],
        ));
        Self {
            guarantee,
            topics,
            replicas,
            simulator,
        }
    }

    /// Stops the simulator (every reading it sent acknowledged), waits until the replicas have
    /// committed all of it, audits the output, and stops the replicas.
    fn finish(&mut self, bootstrap: &str, started: Instant) {
        let guarantee = self.guarantee;
        let (status, _) = self.simulator.terminate(Duration::from_secs(90));
        assert!(
            status.is_some_and(|s| s.success()),
            "{guarantee}: the simulator lost readings\n{}",
            self.simulator.log_tail()
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.replicas.supervise();
            if lag(bootstrap, &self.topics.group, &self.topics.input) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{guarantee}: the replicas did not catch up within 120 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }

        let mut audit = Command::new(binary("sensor-audit"));
        audit
            .args(self.topics.processor_args(bootstrap))
            .arg("--json")
            .env_remove("PIPELINE_CONFIG");
        if guarantee == "at_least_once" {
            audit.arg("--allow-duplicates");
        }
        let output = audit.output().expect("running sensor-audit");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
                panic!(
                    "audit output ({e}): {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        let readings = read_topic(bootstrap, &self.topics.input).len();
        let chaos = &self.replicas;
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
                .join(&self.topics.group);
            chaos.save_logs(&dir);
            self.simulator.save_log(&dir.join("simulator.log"));
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
            "{guarantee}: the simulator kept publishing: {readings}"
        );
        for key in [
            "unusable_input",
            "missing",
            "wrong",
            "unexpected",
            "undecodable_output",
        ] {
            assert_eq!(report[key], 0, "{guarantee}: {key}: {report}");
        }
        if guarantee == "exactly_once" {
            assert_eq!(report["duplicated"], 0, "{report}");
        }
        assert_eq!(output.status.code(), Some(0), "{report}");
        for i in 0..REPLICAS {
            self.replicas.stop(i);
        }
    }
}

/// Waits `duration`, restarting (and counting) every replica of `pipelines` that exits.
fn pause(pipelines: &mut [Pipeline], duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        for pipeline in pipelines.iter_mut() {
            pipeline.replicas.supervise();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILLs a random replica of each pipeline and starts it again under the same name.
fn kill_one_of_each(pipelines: &mut [Pipeline]) {
    for pipeline in pipelines.iter_mut() {
        let victim = rand::random_range(0..REPLICAS);
        pipeline.replicas.kill(victim);
        pipeline.replicas.start(victim);
    }
}

#[test]
fn chaos_loses_nothing_under_either_guarantee_and_repeats_nothing_exactly_once() {
    let started = Instant::now();
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let mut pipelines = [
        Pipeline::start(&bootstrap, "exactly_once", "21"),
        Pipeline::start(&bootstrap, "at_least_once", "22"),
    ];

    // Kill a random replica of each every couple of seconds and start it again.
    for _ in 0..6 {
        pause(
            &mut pipelines,
            Duration::from_millis(1500 + rand::random_range(0..1500)),
        );
        for pipeline in pipelines.iter_mut() {
            let victim = rand::random_range(0..REPLICAS);
            pipeline.replicas.kill(victim);
            pipeline
                .replicas
                .pause(Duration::from_millis(rand::random_range(0..500)));
            pipeline.replicas.start(victim);
        }
    }
    // Scale 3 → 1 → 3.
    pause(&mut pipelines, Duration::from_secs(2));
    for pipeline in pipelines.iter_mut() {
        pipeline.replicas.stop(1);
        pipeline.replicas.stop(2);
    }
    pause(&mut pipelines, Duration::from_secs(4));
    for pipeline in pipelines.iter_mut() {
        pipeline.replicas.start(1);
        pipeline.replicas.start(2);
    }
    pause(&mut pipelines, Duration::from_secs(4));
    // Restart the broker under everyone's feet.
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.start();
    pause(&mut pipelines, Duration::from_secs(6));
    // Two more kills after the broker is back.
    for _ in 0..2 {
        kill_one_of_each(&mut pipelines);
        pause(&mut pipelines, Duration::from_secs(2));
    }

    for pipeline in pipelines.iter_mut() {
        pipeline.finish(&bootstrap, started);
    }
}
