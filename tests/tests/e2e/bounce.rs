//! Brokers bounced under load, on a three-node cluster (replication 3, `min.insync.replicas`
//! 2, unclean leader election off), as Kafka Streams' `streams_broker_bounce_test` does. The
//! temperature pipeline runs twice side by side, once per guarantee, each with three replicas
//! and a simulator publishing throughout. Five bounces hit the nodes that matter: four hard
//! ones (SIGKILL: the leader of an input partition, the exactly_once group's coordinator, the
//! transaction coordinator of a replica's transactional id, the leader of a changelog
//! partition), with one replica of each pipeline SIGKILLed on top, then one clean one (SIGTERM,
//! a controlled shutdown). Then `sensor-audit`: exactly_once 0 missing / 0 duplicated / 0 wrong,
//! at_least_once 0 missing / 0 wrong, and no replica exited on its own. Prints, per bounce, how
//! long each pipeline's committed input stalled.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::Cluster;
use e2e_tests::kafka_io::{lag, read_topic, try_committed_total, wait_for_group};
use e2e_tests::service::{Service, binary, simulator_args};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::PipelineTopics;

const REPLICAS: usize = 3;

struct Pipeline {
    guarantee: &'static str,
    topics: PipelineTopics,
    replicas: Replicas,
    simulator: Service,
}

impl Pipeline {
    fn start(bootstrap: &str, guarantee: &'static str, seed: &str) -> Self {
        let topics = PipelineTopics::unique(&format!("bounce-{}", guarantee.replace('_', "-")));
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
        wait_for_group(bootstrap, &topics.group, REPLICAS, Duration::from_secs(90));
        let simulator = Service::simulator(&simulator_args(
            bootstrap,
            &topics.input,
            &["--sensors", "60", "--rate", "200", "--seed", seed],
        ));
        Self {
            guarantee,
            topics,
            replicas,
            simulator,
        }
    }

    /// The committed input, once the coordinator answers.
    fn committed(&self, bootstrap: &str) -> i64 {
        loop {
            if let Some(total) = self.try_committed(bootstrap) {
                return total;
            }
        }
    }

    fn try_committed(&self, bootstrap: &str) -> Option<i64> {
        try_committed_total(bootstrap, &self.topics.group, &self.topics.input, 6)
    }
}

/// Waits until every pipeline's committed input has moved past where it was at `since`;
/// returns how long each took, supervising the replicas meanwhile.
fn stalls(
    bootstrap: &str,
    pipelines: &mut [Pipeline],
    at_kill: &[i64],
    since: Instant,
) -> Vec<f64> {
    let mut done: Vec<Option<f64>> = vec![None; pipelines.len()];
    let deadline = since + Duration::from_secs(90);
    while done.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "a pipeline stalled for 90 s");
        for (i, pipeline) in pipelines.iter_mut().enumerate() {
            pipeline.replicas.supervise();
            if done[i].is_none()
                && pipeline
                    .try_committed(bootstrap)
                    .is_some_and(|c| c > at_kill[i])
            {
                done[i] = Some(since.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    done.into_iter().flatten().collect()
}

/// Not in the default run yet: alone it takes about 3 minutes (the run went from 15 to 19
/// minutes), and beside another heavy test one clean bounce stalled past the 90 s limit. Run
/// it with `cargo nextest run -p e2e-tests --run-ignored only -E 'test(/^bounce::/)'`.
#[test]
#[ignore = "three Kafka nodes for 3 minutes: run with --run-ignored (README, Running on a cluster)"]
fn brokers_bounced_under_load_lose_and_double_nothing_in_the_temperature_pipeline() {
    let started = Instant::now();
    let cluster = Cluster::start();
    let bootstrap = cluster.bootstrap();
    let mut pipelines = vec![
        Pipeline::start(&bootstrap, "exactly_once", "41"),
        Pipeline::start(&bootstrap, "at_least_once", "42"),
    ];
    std::thread::sleep(Duration::from_secs(2));

    let eo = pipelines[0].topics.clone();
    let mut figures = Vec::new();
    let bounces: [(&str, bool); 5] = [
        ("leader of an input partition", true),
        ("exactly_once group's coordinator", true),
        ("transaction coordinator of replica-0", true),
        ("leader of a changelog partition", true),
        ("leader of an input partition, clean", false),
    ];
    for (n, (what, hard)) in bounces.iter().enumerate() {
        let node = match n {
            0 => cluster.leader(&eo.input, 0),
            1 => cluster.group_coordinator(&eo.group),
            2 => cluster.txn_coordinator(&format!("{}-replica-0", eo.group)),
            3 => cluster.leader(&format!("{}-window-state", eo.group), 1),
            _ => cluster.leader(&eo.input, 2),
        };
        let at_kill: Vec<i64> = pipelines.iter().map(|p| p.committed(&bootstrap)).collect();
        let since = Instant::now();
        if *hard {
            cluster.kill(node);
        } else {
            cluster.stop(node);
        }
        // The node comes back 2 s after it went down, while the stall is measured.
        let (stalled, restart) = std::thread::scope(|scope| {
            let restarting = scope.spawn(|| {
                std::thread::sleep(Duration::from_secs(2));
                let started = Instant::now();
                cluster.restart(node);
                started.elapsed().as_secs_f64()
            });
            let stalled = stalls(&bootstrap, &mut pipelines, &at_kill, since);
            (stalled, restarting.join().expect("the restart"))
        });
        println!(
            "bounce {}: node {node} ({what}), {}: committed input moved again after {:.1} s (exactly_once), {:.1} s (at_least_once); node restarted 2 s after, up in {restart:.1} s",
            n + 1,
            if *hard { "SIGKILL" } else { "SIGTERM" },
            stalled[0],
            stalled[1]
        );
        figures.push((node, *hard, stalled));
        if n == 1 {
            // A replica of each pipeline SIGKILLed on top, and started again.
            for pipeline in &mut pipelines {
                pipeline.replicas.kill(1);
                pipeline.replicas.start(1);
            }
        }
        for pipeline in &mut pipelines {
            pipeline.replicas.pause(Duration::from_secs(1));
        }
    }

    for pipeline in &mut pipelines {
        let (status, _) = pipeline.simulator.terminate(Duration::from_secs(90));
        assert!(
            status.is_some_and(|s| s.success()),
            "the simulator lost readings\n{}",
            pipeline.simulator.log_tail()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    for pipeline in &mut pipelines {
        while lag(&bootstrap, &pipeline.topics.group, &pipeline.topics.input) > 0 {
            pipeline.replicas.supervise();
            assert!(
                Instant::now() < deadline,
                "{}: not caught up",
                pipeline.guarantee
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    for pipeline in &mut pipelines {
        let mut audit = Command::new(binary("sensor-audit"));
        audit
            .args(pipeline.topics.processor_args(&bootstrap))
            .arg("--json")
            .env_remove("PIPELINE_CONFIG");
        if pipeline.guarantee == "at_least_once" {
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
        let readings = read_topic(&bootstrap, &pipeline.topics.input).len();
        let recoveries = pipeline
            .replicas
            .count_in_logs("transactional producer rebuilt; restoring the partitions");
        println!(
            "bounce {}: {readings} readings, 5 broker bounces, 1 replica SIGKILL, {} crashes, {recoveries} producers rebuilt, {} events checked: {} missing, {} duplicated, {} wrong, {} unexpected",
            pipeline.guarantee,
            pipeline.replicas.crashes,
            report["expected_events"],
            report["missing"],
            report["duplicated"],
            report["wrong"],
            report["unexpected"],
        );
        if pipeline.replicas.crashes > 0 || output.status.code() != Some(0) {
            pipeline.replicas.save_logs(
                &e2e_tests::repo_root()
                    .join("target/bounce-logs")
                    .join(&pipeline.topics.group),
            );
        }
        for key in ["missing", "wrong", "unexpected", "unusable_input"] {
            assert_eq!(report[key], 0, "{}: {key}: {report}", pipeline.guarantee);
        }
        if pipeline.guarantee == "exactly_once" {
            assert_eq!(report["duplicated"], 0, "{report}");
        }
        assert_eq!(output.status.code(), Some(0), "{report}");
        assert_eq!(
            pipeline.replicas.crashes, 0,
            "{}: a replica exited on its own",
            pipeline.guarantee
        );
        assert!(
            readings > 10_000,
            "the simulator kept publishing: {readings}"
        );
    }
    for pipeline in &mut pipelines {
        for i in 0..REPLICAS {
            pipeline.replicas.stop(i);
        }
    }
    println!("bounce: {:.0} s in all", started.elapsed().as_secs_f64());
}
