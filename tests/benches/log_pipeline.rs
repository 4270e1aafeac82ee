//! The network-log pipeline's benchmark on a real local broker (`scripts/bench.sh logs`):
//!
//! - gateway: log-simulator at full speed over 4 connections into the gateway; lines/s and MiB/s
//!   until every line is acknowledged by Kafka, the gateway's CPU per million lines, and the
//!   lines it held in flight (read, not yet acknowledged: what a SIGKILL loses) sampled from its
//!   `/metrics`, at full speed and at 1 000 lines/s;
//! - job: one `ip-counter` (exactly once) over the pre-loaded lines, both stages, from start to
//!   zero lag; lines/s and CPU per million lines.
//!
//! Sizes: BENCH_LINES (default 1 000 000). Writes target/bench/log_pipeline.json.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{high_watermarks, lag, wait_until_records_consumed};
use e2e_tests::repo_root;
use e2e_tests::service::{Service, binary, cpu_seconds, scrape, wait_ready};
use e2e_tests::topics::create_topics;
use serde_json::json;

fn total(ends: &std::collections::HashMap<i32, i64>) -> i64 {
    ends.values().sum()
}

/// Sends `count` lines at `rate` (0: full speed) through the gateway; samples its in-flight
/// gauge every 20 ms until Kafka holds `expected_total` lines. Returns (seconds, in-flight
/// samples, bytes received).
fn send(
    bootstrap: &str,
    topic: &str,
    gateway: &Service,
    listen: &str,
    count: u64,
    rate: u64,
    expected_total: i64,
) -> (f64, Vec<f64>, f64) {
    let http = gateway.http_address(Duration::from_secs(10));
    let started = Instant::now();
    let mut simulator = Command::new(binary("log-simulator"))
        .args(["--gateway", listen, "--connections", "4", "--seed", "3"])
        .args(["--rate", &rate.to_string(), "--count", &count.to_string()])
        .args(["--malformed-share", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("log-simulator");
    let mut samples = Vec::new();
    let mut last_check = Instant::now();
    loop {
        if let Ok((_, body)) = e2e_tests::service::try_http_get(&http, "/metrics") {
            let value = body
                .lines()
                .find(|l| l.starts_with("log_gateway_producer_in_flight"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(v) = value {
                samples.push(v);
            }
        }
        if last_check.elapsed() > Duration::from_millis(250) {
            last_check = Instant::now();
            if total(&high_watermarks(bootstrap, topic)) >= expected_total {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    assert!(simulator.wait().expect("simulator").success());
    let bytes = scrape(&http)
        .get("log_gateway_bytes_received_total")
        .copied()
        .unwrap_or(0.0);
    (seconds, samples, bytes)
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let lines: u64 = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let (logs, requests, counts, dlq) = ("access-logs", "ip-count-requests", "ip-counts", "dlq");
    create_topics(
        &bootstrap,
        &[(logs, 6), (requests, 6), (counts, 6), (dlq, 1)],
    );

    // Gateway, full speed.
    let mut gateway = Service::gateway(
        &["--brokers", &bootstrap, "--topic", logs, "--dlq-topic", dlq].map(String::from),
    );
    let listen = gateway.listen_address(Duration::from_secs(60));
    let http = gateway.http_address(Duration::from_secs(30));
    wait_ready(&http);
    let cpu_before = cpu_seconds(gateway.pid());
    eprintln!("gateway: {lines} lines at full speed over 4 connections...");
    let (seconds, mut in_flight, bytes) =
        send(&bootstrap, logs, &gateway, &listen, lines, 0, lines as i64);
    let gateway_cpu = cpu_seconds(gateway.pid()) - cpu_before;
    let full = json!({
        "lines": lines,
        "seconds": seconds,
        "lines_per_second": lines as f64 / seconds,
        "mib_per_second": bytes / seconds / 1_048_576.0,
        "cpu_seconds_per_million": gateway_cpu / lines as f64 * 1e6,
        "in_flight_p50": percentile(&mut in_flight, 0.5),
        "in_flight_p99": percentile(&mut in_flight, 0.99),
        "in_flight_max": percentile(&mut in_flight, 1.0),
    });
    eprintln!("  {full}");
    eprintln!("gateway: 20 000 lines at 1 000/s...");
    let light_lines = 20_000;
    let (_, mut light, _) = send(
        &bootstrap,
        logs,
        &gateway,
        &listen,
        light_lines,
        1_000,
        (lines + light_lines) as i64,
    );
    let light = json!({
        "rate": 1000,
        "in_flight_p50": percentile(&mut light, 0.5),
        "in_flight_p99": percentile(&mut light, 0.99),
        "in_flight_max": percentile(&mut light, 1.0),
    });
    eprintln!("  {light}");
    drop(gateway);

    // The job over everything on access-logs.
    let all_lines = total(&high_watermarks(&bootstrap, logs)) as f64;
    eprintln!("ip-counter: one replica, exactly once, over {all_lines} lines...");
    let group = "bench-ip";
    let counter = Service::start_binary(
        "ip-counter",
        &[
            "--brokers",
            &bootstrap,
            "--input-topic",
            logs,
            "--repartition-topic",
            requests,
            "--output-topic",
            counts,
            "--dlq-topic",
            dlq,
            "--group-id",
            group,
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(900);
    while lag(&bootstrap, &format!("{group}-lines"), logs) != 0
        || started.elapsed() < Duration::from_secs(2)
    {
        assert!(
            Instant::now() < deadline,
            "the lines stage did not catch up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until_records_consumed(
        &bootstrap,
        &format!("{group}-counts"),
        requests,
        Duration::from_secs(600),
    );
    let job_seconds = started.elapsed().as_secs_f64();
    let job_cpu = cpu_seconds(counter.pid());
    let requests_total = total(&high_watermarks(&bootstrap, requests));
    let job = json!({
        "guarantee": "exactly_once",
        "replicas": 1,
        "lines": all_lines,
        "requests": requests_total,
        "seconds": job_seconds,
        "lines_per_second": all_lines / job_seconds,
        "cpu_seconds_per_million_lines": job_cpu / all_lines * 1e6,
    });
    eprintln!("  {job}");
    drop(counter);

    let report = json!({ "gateway_full_speed": full, "gateway_light": light, "job": job });
    println!("\nnetwork-log pipeline (one broker, same machine):");
    println!(
        "  gateway  {:>9.0} lines/s  {:>6.1} MiB/s  {:.2} CPU-s per million lines; in flight at full speed p50 {} p99 {} max {}; at 1 000 lines/s p50 {} max {}",
        full["lines_per_second"].as_f64().unwrap_or(0.0),
        full["mib_per_second"].as_f64().unwrap_or(0.0),
        full["cpu_seconds_per_million"].as_f64().unwrap_or(0.0),
        full["in_flight_p50"],
        full["in_flight_p99"],
        full["in_flight_max"],
        light["in_flight_p50"],
        light["in_flight_max"],
    );
    println!(
        "  job      {:>9.0} lines/s  ({} requests, both stages, exactly once, 1 replica)  {:.2} CPU-s per million lines",
        job["lines_per_second"].as_f64().unwrap_or(0.0),
        requests_total,
        job["cpu_seconds_per_million_lines"].as_f64().unwrap_or(0.0),
    );
    let path = repo_root().join("target/bench/log_pipeline.json");
    let _ = std::fs::create_dir_all(path.parent().expect("dir"));
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON")).expect("write");
    eprintln!("written {}", path.display());
}
