//! Chaos for the network-log pipeline on a broker of its own: the log simulator sends through
//! the gateway while `ip-counter` replicas are SIGKILLed and restarted, scaled 3 → 1 → 3, and
//! the broker is restarted under everyone. Then `ip-audit` checks both stages: no request
//! missing, duplicated or unexpected on the repartition topic, no count missing, duplicated or
//! wrong on `ip-counts`.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{lag, wait_until_records_consumed};
use e2e_tests::service::{Service, TRACE_COMMITS, binary, wait_ready};
use e2e_tests::supervisor::Replicas;
use e2e_tests::topics::LogTopics;

const REPLICAS: usize = 3;

#[test]
fn ip_counts_stay_exact_through_kills_scaling_and_a_broker_restart() {
    let started = Instant::now();
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let topics = LogTopics::unique("ip-chaos");
    topics.create(&bootstrap, [6, 6, 6]);
    // librdkafka's own account of the gateway's connections, leaders and producer id, in the
    // log kept when the test fails: once (2026-12-07, beside a release build on both cores) the
    // gateway's producer delivered nothing for 25 s after the broker was back, and its log at
    // INFO could not say why.
    let mut gateway = Service::gateway_with_env(
        &topics.gateway_args(&bootstrap),
        &[
            (
                "PIPELINE__KAFKA__PROPERTIES__DEBUG",
                "broker,topic,metadata,eos",
            ),
            ("RUST_LOG", "info,librdkafka=debug"),
        ],
    );
    let listen = gateway.listen_address(Duration::from_secs(60));
    wait_ready(&gateway.http_address(Duration::from_secs(30)));

    let LogTopics {
        logs,
        requests,
        group,
        ..
    } = topics.clone();
    let args = topics.ip_counter_args(&bootstrap);
    let replica_args = args.clone();
    let mut replicas = Replicas::new(REPLICAS, move |i| {
        let mut args = replica_args.clone();
        args.extend(["--instance-id".to_owned(), format!("replica-{i}")]);
        // Every committed transaction's input spans, to trace a duplicate or a gap back to it.
        Service::start_binary_with_env("ip-counter", &args, &[("RUST_LOG", TRACE_COMMITS)])
    });
    for i in 0..REPLICAS {
        replicas.start(i);
    }

    // Whatever fails below, the logs of every replica, the gateway and the broker are kept.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // 30 000 lines over about 30 s, event time 10 ms apart: a 10 s window closes every second.
        let lines = 30_000;
        let mut simulator = Command::new(binary("log-simulator"))
            .args(["--gateway", &listen, "--rate", "1000", "--connections", "4"])
            .args(["--seed", "17", "--count", &lines.to_string()])
            .args(["--start-time-ms", "1795341600000", "--step-ms", "10"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("log-simulator runs");

        for _ in 0..4 {
            replicas.pause(Duration::from_millis(1500 + rand::random_range(0..1500)));
            let victim = rand::random_range(0..REPLICAS);
            replicas.kill(victim);
            replicas.pause(Duration::from_millis(rand::random_range(0..1000)));
            replicas.start(victim);
        }
        // Scale 3 → 1 → 3.
        replicas.pause(Duration::from_secs(2));
        replicas.stop(1);
        replicas.stop(2);
        replicas.pause(Duration::from_secs(4));
        replicas.start(1);
        replicas.start(2);
        replicas.pause(Duration::from_secs(3));
        // The broker restarted under the gateway and both stages.
        broker.stop();
        std::thread::sleep(Duration::from_secs(2));
        broker.start();
        replicas.pause(Duration::from_secs(5));
        let victim = rand::random_range(0..REPLICAS);
        replicas.kill(victim);
        replicas.start(victim);

        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            replicas.supervise();
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
        // Everything the gateway read is in Kafka once it has stopped on SIGTERM.
        let (gateway_status, _) = gateway.terminate(Duration::from_secs(30));
        assert!(
            gateway_status.is_some_and(|s| s.success()),
            "{}",
            gateway.log_tail()
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            replicas.supervise();
            if lag(&bootstrap, &format!("{group}-lines"), &logs) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the lines stage did not catch up"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        wait_until_records_consumed(
            &bootstrap,
            &format!("{group}-counts"),
            &requests,
            Duration::from_secs(120),
        );

        let audit = Command::new(binary("ip-audit"))
            .args(&args)
            .arg("--json")
            .env_remove("PIPELINE_CONFIG")
            .output()
            .expect("ip-audit runs");
        let report: serde_json::Value = serde_json::from_slice(&audit.stdout)
            .unwrap_or_else(|_| panic!("ip-audit: {}", String::from_utf8_lossy(&audit.stderr)));
        let assignments = replicas.count_in_logs("partitions assigned");
        let rebuilt =
            replicas.count_in_logs("transactional producer rebuilt; restoring the partitions");
        let rewinds =
            replicas.count_in_logs("partitions rewound to the aborted batch's first records");
        let reseeks = replicas.count_in_logs(
            "a rewound partition delivered a later record than the one rewound to: moving it back again",
        );
        println!(
            "ip chaos: {lines} lines, {} kills, {} crashes restarted, scaling 3 -> 1 -> 3, 1 broker restart, \
             {assignments} assignments, {rewinds} aborted batches rewound ({reseeks} seeks repeated), {rebuilt} producers rebuilt; {} requests, {} counts matched: {} missing, {} duplicated, {} wrong, \
             {} unexpected counts; requests {} missing, {} duplicated ({:.0} s)",
            replicas.kills,
            replicas.crashes,
            report["requests_found"],
            report["counts_matched"],
            report["counts_missing"],
            report["counts_duplicated"],
            report["counts_wrong"],
            report["counts_unexpected"],
            report["requests_missing"],
            report["requests_duplicated"],
            started.elapsed().as_secs_f64()
        );
        // A replica that exited on its own was restarted, as a restart policy would; its log is
        // kept to say why.
        if !audit.status.success() || replicas.crashes > 0 {
            replicas.save_logs(
                &e2e_tests::repo_root()
                    .join("target/chaos-logs")
                    .join(&group),
            );
        }
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
        assert!(
            report["counts_matched"].as_u64().unwrap_or(0) > 1000,
            "{report}"
        );
        assert!(audit.status.success(), "{report}");
    }));
    if let Err(panic) = outcome {
        let dir = e2e_tests::repo_root()
            .join("target/chaos-logs")
            .join(&group);
        replicas.save_logs(&dir);
        gateway.save_log(&dir.join("log-gateway.log"));
        let _ = std::fs::copy(broker.dir().join("broker.log"), dir.join("broker.log"));
        eprintln!("ip chaos: logs kept in {}", dir.display());
        std::panic::resume_unwind(panic);
    }
    for i in 0..REPLICAS {
        replicas.stop(i);
    }
}
