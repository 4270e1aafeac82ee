//! Debian's Prometheus server scrapes the running services with the project's scrape
//! configuration (observability/prometheus.yml): the targets are up and the series exist.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::broker::{free_port, shared_bootstrap};
use e2e_tests::kafka_io::wait_for_group;
use e2e_tests::repo_root;
use e2e_tests::service::{Service, http_get, simulator_args, try_http_get};
use e2e_tests::topics::PipelineTopics;

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The project's configuration with each job's discovery replaced by the test's addresses
/// (compose's DNS names do not exist here) and a 1 s interval; jobs and paths stay as they are.
fn config_for(processor: &str, simulator: &str) -> String {
    let project = std::fs::read_to_string(repo_root().join("observability/prometheus.yml"))
        .expect("observability/prometheus.yml");
    for expected in [
        "job_name: processor",
        "port: 9100",
        "job_name: simulator",
        "simulator:9101",
        "metrics_path: /metrics",
    ] {
        assert!(
            project.contains(expected),
            "observability/prometheus.yml lacks {expected}"
        );
    }
    format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: processor\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"{processor}\"]\n  - job_name: simulator\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"{simulator}\"]\n"
    )
}

fn query(prometheus: &str, expr: &str) -> serde_json::Value {
    let (status, body) = http_get(prometheus, &format!("/api/v1/query?query={expr}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("query answer")
}

#[test]
fn prometheus_scrapes_both_services_with_the_projects_configuration() {
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(repo_root().join("observability/prometheus.yml"))
        .output()
        .expect("promtool must be installed (Debian package prometheus; .ci/run installs it)");
    assert!(
        check.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("prometheus");
    topics.create(&bootstrap, 6);
    let processor = Service::processor(&topics.processor_args(&bootstrap));
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));
    let args = simulator_args(
        &bootstrap,
        &topics.input,
        &["--rate", "200", "--sensors", "20"],
    );
    let simulator = Service::simulator(&args);
    let (p_addr, s_addr) = (
        processor.http_address(Duration::from_secs(30)),
        simulator.http_address(Duration::from_secs(30)),
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, config_for(&p_addr, &s_addr)).expect("config");
    let web = format!("127.0.0.1:{}", free_port());
    let _prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "prometheus must be installed (Debian package prometheus; .ci/run installs it)",
            ),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Prometheus listens before it is ready and answers 503 until then (seen when the
        // machine is busy): its readiness endpoint first, then the queries.
        let up = try_http_get(&web, "/-/ready").is_ok_and(|(status, _)| status == 200)
            && query(&web, "up")["data"]["result"]
                .as_array()
                .is_some_and(|r| r.len() == 2 && r.iter().all(|s| s["value"][1] == "1"));
        let series = up
            && [
                "sensor_readings_consumed_total",
                "sensor_readings_sent_total",
            ]
            .iter()
            .all(|name| {
                query(&web, name)["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v > 0.0)
            });
        if series {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see both targets up with their series"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for name in [
        "sensor_events_produced_total",
        "sensor_consumer_lag",
        "sensor_assigned_partitions",
        "sensor_end_to_end_latency_seconds_bucket",
        "sensor_commit_duration_seconds_count",
        "sensor_simulator_rate",
    ] {
        let result = query(&web, name);
        assert!(
            result["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "Prometheus has no {name}: {result}"
        );
    }
    let jobs = query(&web, "up");
    let mut jobs: Vec<&str> = jobs["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["metric"]["job"].as_str())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["processor", "simulator"]);
}
