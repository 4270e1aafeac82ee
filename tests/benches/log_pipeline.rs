//! The network-log pipeline's benchmark on a real local broker (`scripts/bench.sh logs`):
//!
//! - gateway, per protocol (lines over TCP, syslog over TCP, acknowledged HTTP plain and
//!   gzip), each a gateway of its own writing a topic of its own: log-simulator at full speed
//!   (4 connections, or 4 requests of 1 000 lines in flight) into it; lines/s and MiB/s (of
//!   lines, before any compression) until every line is acknowledged by Kafka, the gateway's CPU
//!   per million lines; for TCP lines also the lines it held in flight (read, not yet
//!   acknowledged: what a SIGKILL loses) sampled from its `/metrics`, at full speed and at
//!   1 000 lines/s;
//! - jobs: one `ip-counter` (exactly once) over the TCP runs' lines as a backlog (event time
//!   1 ms apart: 1 000 s of it, sent in seconds), from start until both stages have caught up:
//!   lines/s, CPU per million lines, requests and late requests; then the same job on Kafka
//!   Streams (`bench/kafka-streams`, `LogStreams`: `flatMap` → `groupByKey` → `windowedBy` →
//!   `count` → `suppress(untilWindowCloses)`, exactly_once_v2) over the same lines on the same
//!   broker, measured the same way (whole-process CPU, start-up included); then both at once on
//!   live traffic (20 000 lines/s for 15 s through a gateway, event time the time sent): each
//!   one's CPU per million lines at that steady rate.
//!
//! Sizes: BENCH_LINES (default 1 000 000). Writes target/bench/log_pipeline.json.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{high_watermarks, lag, read_topic};
use e2e_tests::kafka_streams::StreamsApp;
use e2e_tests::repo_root;
use e2e_tests::service::{Service, binary, cpu_seconds, scrape, wait_ready};
use e2e_tests::topics::create_topics;
use serde_json::{Value, json};

fn total(ends: &std::collections::HashMap<i32, i64>) -> i64 {
    ends.values().sum()
}

/// Sends `count` lines at `rate` (0: full speed) through the gateway with `protocol`'s
/// simulator flags; samples its in-flight gauge every 20 ms until Kafka holds `expected_total`
/// lines. Returns (seconds, in-flight samples, bytes received).
#[allow(clippy::too_many_arguments)]
fn send(
    bootstrap: &str,
    topic: &str,
    gateway: &Service,
    listen: &str,
    protocol: &[&str],
    count: u64,
    rate: u64,
    expected_total: i64,
) -> (f64, Vec<f64>, f64) {
    let http = gateway.http_address(Duration::from_secs(10));
    let started = Instant::now();
    let mut simulator = Command::new(binary("log-simulator"))
        .args(["--gateway", listen, "--connections", "4", "--seed", "3"])
        .args(protocol)
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

/// Waits until each (group, topic) has committed to within one transaction marker of the end
/// of each of the topic's six partitions, three checks in a row. (Reading a repartition topic to
/// find its last record is too slow beside the job, and Kafka Streams purges its records as it
/// commits them.)
fn wait_caught_up(bootstrap: &str, stages: &[(&str, &str)], mut check: impl FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut settled = 0;
    while settled < 3 {
        check();
        assert!(Instant::now() < deadline, "the job did not catch up");
        let done = stages
            .iter()
            .all(|(group, topic)| lag(bootstrap, group, topic) <= 6);
        settled = if done { settled + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The repartition topic, output topic and group of the ip-counter run on `input`.
fn ip_counter_names(input: &str) -> (String, String, String) {
    (
        format!("{input}-requests"),
        format!("{input}-counts"),
        format!("bench-ip-{input}"),
    )
}

/// Starts one `ip-counter` (exactly once) on `input`, with topics of its own.
fn start_ip_counter(bootstrap: &str, input: &str, dlq: &str) -> Service {
    let (requests, counts, group) = ip_counter_names(input);
    create_topics(bootstrap, &[(&requests, 6), (&counts, 6)]);
    Service::start_binary(
        "ip-counter",
        &[
            "--brokers",
            bootstrap,
            "--input-topic",
            input,
            "--repartition-topic",
            &requests,
            "--output-topic",
            &counts,
            "--dlq-topic",
            dlq,
            "--group-id",
            &group,
            "--http-address",
            "127.0.0.1:0",
        ]
        .map(String::from),
    )
}

/// The output topic, application id and repartition topic of the Kafka Streams run on `input`.
fn streams_names(input: &str) -> (String, String, String) {
    let application = format!("bench-log-streams-{input}");
    let repartition = format!("{application}-requests-repartition");
    (format!("{input}-counts-streams"), application, repartition)
}

/// Starts the Kafka Streams job (exactly_once_v2) on `input`, with an output topic of its own.
fn start_streams(bootstrap: &str, input: &str) -> StreamsApp {
    let (output, application, _) = streams_names(input);
    create_topics(bootstrap, &[(&output, 6)]);
    StreamsApp::start(
        "LogStreams",
        &[bootstrap, input, &output, &application, "exactly_once"],
    )
}

/// Both jobs at once on live traffic: started and ready first, then `LIVE_RATE` lines a second
/// for `LIVE_SECONDS` through a gateway, event time the time sent (as from real servers); each
/// job's CPU from the first line until it has caught up, per million lines.
fn live(bootstrap: &str, dlq: &str) -> Value {
    let (rate, seconds) = (LIVE_RATE, LIVE_SECONDS);
    let lines = rate * seconds;
    let input = "access-logs-live";
    create_topics(bootstrap, &[(input, 6)]);
    eprintln!("live: both jobs at once, {lines} lines at {rate}/s through the gateway...");
    let counter = start_ip_counter(bootstrap, input, dlq);
    let counter_http = counter.http_address(Duration::from_secs(30));
    wait_ready(&counter_http);
    let mut app = start_streams(bootstrap, input);
    let mut gateway = Service::gateway(
        &["--brokers", bootstrap, "--topic", input, "--dlq-topic", dlq].map(String::from),
    );
    let listen = gateway.listen_address(Duration::from_secs(60));
    wait_ready(&gateway.http_address(Duration::from_secs(30)));
    let (counter_before, streams_before) = (cpu_seconds(counter.pid()), app.cpu_seconds());
    send(
        bootstrap,
        input,
        &gateway,
        &listen,
        &[],
        lines,
        rate,
        lines as i64,
    );
    let (requests, _, group) = ip_counter_names(input);
    let (_, application, repartition) = streams_names(input);
    wait_caught_up(
        bootstrap,
        &[
            (&format!("{group}-lines"), input),
            (&format!("{group}-counts"), &requests),
            (&application, input),
            (&application, &repartition),
        ],
        || app.check_alive(),
    );
    let per_million = |cpu: f64| cpu / lines as f64 * 1e6;
    let metrics = scrape(&counter_http);
    let live = json!({
        "rate": rate,
        "lines": lines,
        "ip_counter": {
            "cpu_seconds_per_million_lines": per_million(cpu_seconds(counter.pid()) - counter_before),
            "late_requests": metrics.get("ip_count_late_requests_total{reason=\"late\"}").copied().unwrap_or(0.0),
        },
        "kafka_streams": {
            "cpu_seconds_per_million_lines": per_million(app.cpu_seconds() - streams_before),
        },
    });
    eprintln!("  {live}");
    app.stop();
    drop(counter);
    live
}

/// One `ip-counter` (exactly once) over `input` from its start until both stages have caught
/// up: lines/s from its start, CPU of the whole process, requests, late requests and counts.
fn ip_counter(bootstrap: &str, input: &str, dlq: &str) -> Value {
    let lines = total(&high_watermarks(bootstrap, input)) as f64;
    eprintln!("ip-counter over the backlog: one replica, exactly once, over {lines} lines...");
    let counter = start_ip_counter(bootstrap, input, dlq);
    let (requests, counts, group) = ip_counter_names(input);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    wait_caught_up(
        bootstrap,
        &[
            (&format!("{group}-lines"), input),
            (&format!("{group}-counts"), &requests),
        ],
        || {},
    );
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(counter.pid());
    let metrics = scrape(&counter.http_address(Duration::from_secs(5)));
    let job = json!({
        "guarantee": "exactly_once",
        "replicas": 1,
        "lines": lines,
        "requests": metrics.get("ip_count_requests_consumed_total").copied().unwrap_or(0.0),
        "late_requests": metrics.get("ip_count_late_requests_total{reason=\"late\"}").copied().unwrap_or(0.0),
        "counts": read_topic(bootstrap, &counts).len(),
        "seconds": seconds,
        "lines_per_second": lines / seconds,
        "cpu_seconds_per_million_lines": cpu / lines * 1e6,
    });
    eprintln!("  {job}");
    job
}

/// The same job on Kafka Streams over `input`, measured the same way (start-up included).
fn kafka_streams(bootstrap: &str, input: &str) -> Value {
    let lines = total(&high_watermarks(bootstrap, input)) as f64;
    eprintln!(
        "Kafka Streams over the backlog: the same job, exactly_once_v2, over {lines} lines..."
    );
    let mut app = start_streams(bootstrap, input);
    let (output, application, repartition) = streams_names(input);
    wait_caught_up(
        bootstrap,
        &[(&application, input), (&application, &repartition)],
        || app.check_alive(),
    );
    let seconds = app.started.elapsed().as_secs_f64();
    let cpu = app.cpu_seconds();
    let streams = json!({
        "guarantee": "exactly_once_v2",
        "lines": lines,
        "seconds": seconds,
        "startup_seconds": (app.ready - app.started).as_secs_f64(),
        "lines_per_second": lines / seconds,
        "cpu_seconds_per_million_lines": cpu / lines * 1e6,
        "counts": read_topic(bootstrap, &output).len(),
    });
    eprintln!("  {streams}");
    app.stop();
    streams
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// The live run's rate (lines/s) and length (s).
const LIVE_RATE: u64 = 20_000;
const LIVE_SECONDS: u64 = 15;

fn main() {
    let lines: u64 = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let (logs, dlq) = ("access-logs", "dlq");
    create_topics(&bootstrap, &[(logs, 6), (dlq, 1)]);

    // The gateway, one per protocol, full speed.
    let http = [
        "--protocol",
        "http",
        "--batch-lines",
        "1000",
        "--linger-ms",
        "50",
    ];
    let http_gzip = [&http[..], &["--gzip"]].concat();
    let protocols: [(&str, &str, &[&str]); 4] = [
        ("tcp", "receiving log lines", &[]),
        ("syslog", "receiving syslog", &["--protocol", "syslog"]),
        (
            "http",
            "receiving log lines over HTTP (POST /v1/logs)",
            &http,
        ),
        (
            "http+gzip",
            "receiving log lines over HTTP (POST /v1/logs)",
            &http_gzip,
        ),
    ];
    let mut per_protocol = serde_json::Map::new();
    let mut light = json!(null);
    for (name, listening, flags) in protocols {
        // TCP lines feed the job (`logs`); the others a topic of their own.
        let topic = if name == "tcp" {
            logs.to_owned()
        } else {
            let topic = format!("{logs}-{}", name.replace('+', "-"));
            create_topics(&bootstrap, &[(&topic, 6)]);
            topic
        };
        let mut gateway = Service::gateway(
            &[
                "--brokers",
                &bootstrap,
                "--topic",
                &topic,
                "--dlq-topic",
                dlq,
                "--syslog-listen-address",
                "127.0.0.1:0",
                "--http-listen-address",
                "127.0.0.1:0",
            ]
            .map(String::from),
        );
        let listen = gateway.logged_address(listening, Duration::from_secs(60));
        let http = gateway.http_address(Duration::from_secs(30));
        wait_ready(&http);
        let cpu_before = cpu_seconds(gateway.pid());
        eprintln!("gateway, {name}: {lines} lines at full speed...");
        let (seconds, mut in_flight, bytes) = send(
            &bootstrap,
            &topic,
            &gateway,
            &listen,
            flags,
            lines,
            0,
            lines as i64,
        );
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
        if name == "tcp" {
            eprintln!("gateway, tcp: 20 000 lines at 1 000/s...");
            let light_lines = 20_000;
            let (_, mut samples, _) = send(
                &bootstrap,
                &topic,
                &gateway,
                &listen,
                flags,
                light_lines,
                1_000,
                (lines + light_lines) as i64,
            );
            light = json!({
                "rate": 1000,
                "in_flight_p50": percentile(&mut samples, 0.5),
                "in_flight_p99": percentile(&mut samples, 0.99),
                "in_flight_max": percentile(&mut samples, 1.0),
            });
            eprintln!("  {light}");
        }
        per_protocol.insert(name.to_owned(), full);
        drop(gateway);
    }

    // The jobs over a backlog (the TCP runs' lines, preloaded: capacity), then both at once
    // on live traffic (cost at a steady rate).
    let mut scenarios = serde_json::Map::new();
    let job = ip_counter(&bootstrap, logs, dlq);
    let streams = kafka_streams(&bootstrap, logs);
    scenarios.insert(
        "backlog".to_owned(),
        json!({ "ip_counter": job, "kafka_streams": streams }),
    );
    scenarios.insert("live".to_owned(), live(&bootstrap, dlq));

    let report = json!({
        "gateway": per_protocol,
        "gateway_light": light,
        "jobs": scenarios,
    });
    println!("\nnetwork-log pipeline (one broker, same machine):");
    for (name, full) in &per_protocol {
        println!(
            "  gateway {name:<10} {:>9.0} lines/s  {:>6.1} MiB/s  {:.2} CPU-s per million lines",
            full["lines_per_second"].as_f64().unwrap_or(0.0),
            full["mib_per_second"].as_f64().unwrap_or(0.0),
            full["cpu_seconds_per_million"].as_f64().unwrap_or(0.0),
        );
    }
    let tcp = &per_protocol["tcp"];
    println!(
        "  gateway tcp in flight at full speed p50 {} p99 {} max {}; at 1 000 lines/s p50 {} max {}",
        tcp["in_flight_p50"],
        tcp["in_flight_p99"],
        tcp["in_flight_max"],
        light["in_flight_p50"],
        light["in_flight_max"],
    );
    let per_million = |run: &Value| run["cpu_seconds_per_million_lines"].as_f64().unwrap_or(0.0);
    let backlog = &scenarios["backlog"];
    let (job, streams) = (&backlog["ip_counter"], &backlog["kafka_streams"]);
    println!(
        "  backlog ip-counter     {:>9.0} lines/s  {:.2} CPU-s per million lines ({} requests, {} late; both stages, exactly once, 1 replica)",
        job["lines_per_second"].as_f64().unwrap_or(0.0),
        per_million(job),
        job["requests"],
        job["late_requests"],
    );
    println!(
        "  backlog Kafka Streams  {:>9.0} lines/s  {:.2} CPU-s per million lines (exactly_once_v2, 1 JVM, start-up included); ip-counter {:.1}x less CPU per line",
        streams["lines_per_second"].as_f64().unwrap_or(0.0),
        per_million(streams),
        per_million(streams) / per_million(job).max(1e-9),
    );
    let live = &scenarios["live"];
    println!(
        "  live at {} lines/s: ip-counter {:.2} CPU-s per million lines ({} late), Kafka Streams {:.2}: ip-counter {:.1}x less CPU per line",
        live["rate"],
        per_million(&live["ip_counter"]),
        live["ip_counter"]["late_requests"],
        per_million(&live["kafka_streams"]),
        per_million(&live["kafka_streams"]) / per_million(&live["ip_counter"]).max(1e-9),
    );
    let path = repo_root().join("target/bench/log_pipeline.json");
    let _ = std::fs::create_dir_all(path.parent().expect("dir"));
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON")).expect("write");
    eprintln!("written {}", path.display());
}
