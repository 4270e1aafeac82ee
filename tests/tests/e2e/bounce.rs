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
use e2e_tests::kafka_io::{
    lag, read_topic, try_committed_total, under_replicated, wait_for_group,
    wait_until_records_consumed,
};
use e2e_tests::results::{Kind, ResultsDb, Tables};
use e2e_tests::service::{Service, binary, simulator_args, wait_ready};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::{PipelineTopics, create_topics};

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
}

/// What a bounce watches: a pipeline's committed input, and the replicas to keep supervised
/// meanwhile.
trait UnderLoad {
    /// The committed input, or `None` while the group coordinator does not answer.
    fn try_committed(&self, bootstrap: &str) -> Option<i64>;
    /// Restarts replicas that exited (and counts them as crashes).
    fn supervise(&mut self);

    /// The committed input, once the coordinator answers.
    fn committed(&self, bootstrap: &str) -> i64 {
        loop {
            if let Some(total) = self.try_committed(bootstrap) {
                return total;
            }
        }
    }
}

impl UnderLoad for Pipeline {
    fn try_committed(&self, bootstrap: &str) -> Option<i64> {
        try_committed_total(bootstrap, &self.topics.group, &self.topics.input, 6)
    }

    fn supervise(&mut self) {
        self.replicas.supervise();
    }
}

/// How a bounce went: seconds from the node going down.
struct Bounced {
    /// Until each pipeline's committed input moved again.
    stalled: Vec<f64>,
    /// Until the node answered again (it is started 2 s after it went down).
    up: f64,
    /// Until every partition had all its replicas in sync again.
    in_sync: f64,
}

/// Takes node `node` down (SIGKILL if `hard`, else SIGTERM), starts it again 2 s later, and
/// waits until every pipeline's committed input has moved past where it was at the kill, and
/// until every partition is fully replicated again, as a rolling restart does before it takes
/// the next node down: bouncing a second node while the first is still catching up leaves
/// partitions below `min.insync.replicas`, which stops every producer by design.
fn bounce(
    cluster: &Cluster,
    node: u32,
    hard: bool,
    pipelines: &mut [&mut dyn UnderLoad],
) -> Bounced {
    let bootstrap = cluster.bootstrap();
    let at_kill: Vec<i64> = pipelines.iter().map(|p| p.committed(&bootstrap)).collect();
    let since = Instant::now();
    if hard {
        cluster.kill(node);
    } else {
        cluster.stop(node);
    }
    std::thread::scope(|scope| {
        let restarting = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            let started = Instant::now();
            cluster.restart(node);
            started.elapsed().as_secs_f64()
        });
        let mut done: Vec<Option<f64>> = vec![None; pipelines.len()];
        let deadline = since + Duration::from_secs(90);
        while done.iter().any(Option::is_none) {
            assert!(Instant::now() < deadline, "a pipeline stalled for 90 s");
            for (i, pipeline) in pipelines.iter_mut().enumerate() {
                pipeline.supervise();
                if done[i].is_none()
                    && pipeline
                        .try_committed(&bootstrap)
                        .is_some_and(|c| c > at_kill[i])
                {
                    done[i] = Some(since.elapsed().as_secs_f64());
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let stalled = done.into_iter().flatten().collect();
        let up = restarting.join().expect("the restart") + 2.0;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let short = under_replicated(&bootstrap);
            if short.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "partitions still under-replicated 120 s after node {node} came back: {short:?}"
            );
            for pipeline in pipelines.iter_mut() {
                pipeline.supervise();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Bounced {
            stalled,
            up,
            in_sync: since.elapsed().as_secs_f64(),
        }
    })
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
        let bounced = {
            let mut watched: Vec<&mut dyn UnderLoad> = pipelines
                .iter_mut()
                .map(|p| p as &mut dyn UnderLoad)
                .collect();
            bounce(&cluster, node, *hard, &mut watched)
        };
        println!(
            "bounce {}: node {node} ({what}), {}: committed input moved again after {:.1} s (exactly_once), {:.1} s (at_least_once); node up again after {:.1} s, every partition in sync after {:.1} s",
            n + 1,
            if *hard { "SIGKILL" } else { "SIGTERM" },
            bounced.stalled[0],
            bounced.stalled[1],
            bounced.up,
            bounced.in_sync
        );
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

/// The network-log pipeline: the gateway, two `ip-counter` replicas and the results sink.
struct LogPipeline {
    logs: String,
    requests: String,
    counts: String,
    dlq: String,
    /// The sink's other input, left empty.
    events: String,
    group: String,
    ip_args: Vec<String>,
    replicas: Replicas,
    sink: Service,
    sink_group: String,
}

impl LogPipeline {
    fn start(bootstrap: &str, database: &ResultsDb) -> Self {
        let id = e2e_tests::unique("bounce-logs");
        let (logs, requests, counts, dlq, events, sink_dlq) = (
            format!("{id}-access-logs"),
            format!("{id}-requests"),
            format!("{id}-ip-counts"),
            format!("{id}-dlq"),
            format!("{id}-events"),
            format!("{id}-sink-dlq"),
        );
        create_topics(
            bootstrap,
            &[
                (&logs, 6),
                (&requests, 6),
                (&counts, 6),
                (&dlq, 1),
                (&events, 1),
                (&sink_dlq, 1),
            ],
        );
        let group = format!("{id}-job");
        let ip_args: Vec<String> = [
            "--brokers",
            bootstrap,
            "--input-topic",
            &logs,
            "--repartition-topic",
            &requests,
            "--output-topic",
            &counts,
            "--dlq-topic",
            &dlq,
            "--group-id",
            &group,
            "--window",
            "10",
            "--lateness",
            "2",
        ]
        .map(String::from)
        .to_vec();
        let replica_args = ip_args.clone();
        let mut replicas = Replicas::new(LOG_REPLICAS, move |i| {
            let mut args = replica_args.clone();
            args.extend(["--instance-id".to_owned(), format!("replica-{i}")]);
            Service::start_binary("ip-counter", &args)
        });
        for i in 0..LOG_REPLICAS {
            replicas.start(i);
        }
        let sink_group = format!("{id}-pg-sink");
        let sink = Service::start_binary(
            "pg-sink",
            &[
                "--brokers",
                bootstrap,
                "--database-url",
                database.url(),
                "--events-topic",
                &events,
                "--ip-counts-topic",
                &counts,
                "--dlq-topic",
                &sink_dlq,
                "--group-id",
                &sink_group,
            ]
            .map(String::from),
        );
        Self {
            logs,
            requests,
            counts,
            dlq,
            events,
            group,
            ip_args,
            replicas,
            sink,
            sink_group,
        }
    }

    fn lines_group(&self) -> String {
        format!("{}-lines", self.group)
    }
}

impl UnderLoad for LogPipeline {
    fn try_committed(&self, bootstrap: &str) -> Option<i64> {
        try_committed_total(bootstrap, &self.lines_group(), &self.logs, 6)
    }

    fn supervise(&mut self) {
        self.replicas.supervise();
    }
}

const LOG_REPLICAS: usize = 2;

/// The log pipeline on the cluster: the log simulator sends through the gateway, which stays up
/// throughout; two `ip-counter` replicas (exactly_once) and `pg-sink` into PostgreSQL run
/// while five nodes are bounced as in the temperature test (the leader of a lines partition,
/// the lines group's coordinator with a replica SIGKILLed on top, a replica's transaction
/// coordinator, the leader of a repartition partition, then a clean bounce). Then: every line
/// the simulator sent is in the lines topic (the gateway lost nothing it accepted while
/// leadership moved), `ip-audit` finds both stages exact, and the sink's `ip_counts` table
/// equals the counts topic row for row.
#[test]
#[ignore = "three Kafka nodes for 3 minutes: run with --run-ignored (README, Running on a cluster)"]
fn brokers_bounced_under_load_lose_and_double_nothing_in_the_log_pipeline_and_its_sink() {
    let started = Instant::now();
    let cluster = Cluster::start();
    let bootstrap = cluster.bootstrap();
    let database = ResultsDb::fresh(Kind::Postgres, &e2e_tests::unique("bounce-logs"));
    let mut pipeline = LogPipeline::start(&bootstrap, &database);
    let mut gateway = Service::gateway(
        &[
            "--brokers",
            &bootstrap,
            "--topic",
            &pipeline.logs,
            "--dlq-topic",
            &pipeline.dlq,
        ]
        .map(String::from),
    );
    let listen = gateway.listen_address(Duration::from_secs(60));
    wait_ready(&gateway.http_address(Duration::from_secs(30)));
    wait_for_group(
        &bootstrap,
        &pipeline.lines_group(),
        LOG_REPLICAS,
        Duration::from_secs(90),
    );

    // 40 000 lines at 400/s: about 100 s, through every bounce. Event time 10 ms apart.
    let lines = 40_000u64;
    let simulator_log = tempfile::NamedTempFile::new().expect("a log file");
    let mut simulator = Command::new(binary("log-simulator"))
        .args(["--gateway", &listen, "--rate", "400", "--connections", "4"])
        .args(["--seed", "23", "--count", &lines.to_string()])
        .args(["--start-time-ms", "1795341600000", "--step-ms", "10"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(simulator_log.reopen().expect("the log file"))
        .spawn()
        .expect("log-simulator runs");
    let logs_dir = e2e_tests::repo_root()
        .join("target/bounce-logs")
        .join(&pipeline.group);
    // Whatever fails below, every process's log and the nodes' are kept.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::thread::sleep(Duration::from_secs(3));

        let bounces: [(&str, bool); 5] = [
            ("leader of a lines partition", true),
            ("the lines group's coordinator", true),
            ("transaction coordinator of replica-0's lines stage", true),
            ("leader of a repartition partition", true),
            ("leader of a lines partition, clean", false),
        ];
        for (n, (what, hard)) in bounces.iter().enumerate() {
            let node = match n {
                0 => cluster.leader(&pipeline.logs, 0),
                1 => cluster.group_coordinator(&pipeline.lines_group()),
                2 => cluster.txn_coordinator(&format!("{}-replica-0", pipeline.lines_group())),
                3 => cluster.leader(&pipeline.requests, 1),
                _ => cluster.leader(&pipeline.logs, 2),
            };
            let bounced = bounce(&cluster, node, *hard, &mut [&mut pipeline]);
            println!(
                "bounce logs {}: node {node} ({what}), {}: committed lines moved again after {:.1} s; node up again after {:.1} s, every partition in sync after {:.1} s",
                n + 1,
                if *hard { "SIGKILL" } else { "SIGTERM" },
                bounced.stalled[0],
                bounced.up,
                bounced.in_sync
            );
            if n == 1 {
                pipeline.replicas.kill(1);
                pipeline.replicas.start(1);
            }
            pipeline.replicas.pause(Duration::from_secs(1));
        }

        let deadline = Instant::now() + Duration::from_secs(180);
        let status = loop {
            pipeline.replicas.supervise();
            if let Some(status) = simulator.try_wait().expect("log-simulator") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the log simulator did not finish"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(status.success(), "log-simulator failed");
        let (gateway_status, _) = gateway.terminate(Duration::from_secs(30));
        assert!(
            gateway_status.is_some_and(|s| s.success()),
            "{}",
            gateway.log_tail()
        );
        let in_topic = read_topic(&bootstrap, &pipeline.logs).len() as u64;
        let deadline = Instant::now() + Duration::from_secs(180);
        while lag(&bootstrap, &pipeline.lines_group(), &pipeline.logs) > 0 {
            pipeline.replicas.supervise();
            assert!(
                Instant::now() < deadline,
                "the lines stage did not catch up"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        wait_until_records_consumed(
            &bootstrap,
            &format!("{}-counts", pipeline.group),
            &pipeline.requests,
            Duration::from_secs(120),
        );
        let audit = Command::new(binary("ip-audit"))
            .args(&pipeline.ip_args)
            .arg("--json")
            .env_remove("PIPELINE_CONFIG")
            .output()
            .expect("ip-audit runs");
        let report: serde_json::Value = serde_json::from_slice(&audit.stdout)
            .unwrap_or_else(|_| panic!("ip-audit: {}", String::from_utf8_lossy(&audit.stderr)));

        // The sink: every count a row, once.
        let counts = read_topic(&bootstrap, &pipeline.counts);
        wait_until_records_consumed(
            &bootstrap,
            &pipeline.sink_group,
            &pipeline.counts,
            Duration::from_secs(120),
        );
        let expected = Tables::from_topics(&read_topic(&bootstrap, &pipeline.events), &counts);
        let actual = database.tables();
        let recoveries = pipeline
            .replicas
            .count_in_logs("transactional producer rebuilt; restoring the partitions");
        println!(
            "bounce logs: {lines} lines sent, {in_topic} in the topic, 5 broker bounces, 1 replica SIGKILL, {} crashes, {recoveries} producers rebuilt; requests {} found: {} missing, {} duplicated; counts {} matched: {} missing, {} duplicated, {} wrong, {} unexpected; {} sink rows ({:.0} s in all)",
            pipeline.replicas.crashes,
            report["requests_found"],
            report["requests_missing"],
            report["requests_duplicated"],
            report["counts_matched"],
            report["counts_missing"],
            report["counts_duplicated"],
            report["counts_wrong"],
            report["counts_unexpected"],
            actual.counts.len(),
            started.elapsed().as_secs_f64()
        );
        assert_eq!(in_topic, lines, "the gateway lost or doubled lines");
        assert_eq!(report["lines_judged"].as_u64(), Some(lines), "{report}");
        for field in [
            "requests_missing",
            "requests_duplicated",
            "requests_unexpected",
            "counts_missing",
            "counts_duplicated",
            "counts_wrong",
            "counts_unexpected",
        ] {
            assert_eq!(report[field], 0, "{field}: {report}");
        }
        assert!(audit.status.success(), "{report}");
        assert!(!expected.counts.is_empty(), "no counts to compare");
        expected.assert_equal(&actual);
        assert_eq!(
            pipeline.replicas.crashes, 0,
            "an ip-counter replica exited on its own"
        );
        assert!(
            pipeline.sink.is_running(),
            "pg-sink exited: {}",
            pipeline.sink.log_tail()
        );
    }));
    if outcome.is_err() || pipeline.replicas.crashes > 0 {
        pipeline.replicas.save_logs(&logs_dir);
        gateway.save_log(&logs_dir.join("log-gateway.log"));
        pipeline.sink.save_log(&logs_dir.join("pg-sink.log"));
        let _ = std::fs::copy(simulator_log.path(), logs_dir.join("log-simulator.log"));
        cluster.save_logs(&logs_dir);
        eprintln!("bounce logs: logs kept in {}", logs_dir.display());
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    for i in 0..LOG_REPLICAS {
        pipeline.replicas.stop(i);
    }
}
