//! The gateway's acknowledged HTTP endpoint on the real broker: a 200 means every line of the
//! request is in Kafka already; bad requests are refused with the reason and write nothing;
//! with a broker slow to acknowledge, a request without room is answered 429 and one whose lines Kafka
//! does not acknowledge in time 503, both with `Retry-After`; and a client that retries what it
//! did not see acknowledged loses no line while the gateway is SIGKILLed three times.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e_tests::broker::{free_port, shared_bootstrap};
use e2e_tests::kafka_io::read_topic;
use e2e_tests::service::{HttpAnswer, Service, http_post, scrape};

use crate::gateway::{Gateway, start_gateway, wait_for_records};

/// The message the gateway logs, with the address, when its HTTP listener is up.
const HTTP_LISTENING: &str = "receiving log lines over HTTP (POST /v1/logs)";

fn post(address: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
    let stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    http_post(stream, "/v1/logs", headers, body).expect("an answer")
}

fn json(answer: &HttpAnswer) -> serde_json::Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("compress");
    encoder.finish().expect("compress")
}

fn values(bootstrap: &str, topic: &str) -> Vec<String> {
    let mut values: Vec<String> = read_topic(bootstrap, topic)
        .into_iter()
        .map(|r| String::from_utf8(r.payload.unwrap_or_default()).expect("UTF-8"))
        .collect();
    values.sort();
    values
}

fn start(bootstrap: &str, test: &str, extra: &[&str]) -> (Gateway, String) {
    let mut args = vec!["--http-listen-address", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut gateway = start_gateway(bootstrap, test, &args);
    let http = gateway
        .service
        .logged_address(HTTP_LISTENING, Duration::from_secs(30));
    (gateway, http)
}

/// A request the gateway must refuse: its headers and body, the status, and what the error
/// must say.
type Refused = (
    &'static [(&'static str, &'static str)],
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn a_200_means_every_line_is_in_kafka_and_bad_requests_write_nothing_and_say_why() {
    let bootstrap = shared_bootstrap();
    let (gateway, http) = start(
        &bootstrap,
        "gateway-http",
        &["--max-request-bytes", "4000", "--max-line-bytes", "100"],
    );

    // Text lines, CRLF and an empty line among them: acknowledged, and readable at once.
    let answer = post(
        &http,
        &[],
        b"10.0.0.1 first\r\n\n10.0.0.2 second\n10.0.0.3 third",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(json(&answer), serde_json::json!({ "accepted": 3 }));
    assert_eq!(
        values(&bootstrap, &gateway.topic),
        ["10.0.0.1 first", "10.0.0.2 second", "10.0.0.3 third"],
        "a 200 comes after Kafka has the lines"
    );

    // JSON lines, gzip-compressed: the `line` field, unescaped.
    let body = gzip(
        b"{\"line\":\"10.0.0.4 \\\"json\\\"\",\"host\":\"web-1\"}\n{\"line\":\"10.0.0.5 json\"}\n",
    );
    let answer = post(
        &http,
        &[
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(json(&answer)["accepted"], 2);

    // Refused, each naming its fault, and nothing of them written.
    let refused: [Refused; 6] = [
        (
            &[("Content-Type", "application/x-ndjson")],
            b"{\"line\":\"10.9.0.1 fine\"}\n{\"text\":\"no line field\"}\n".to_vec(),
            400,
            "line 2: not a JSON object with a string field \"line\"",
        ),
        (
            &[],
            format!("10.9.0.2 fine\n10.9.0.3 {}\n", "x".repeat(120)).into_bytes(),
            400,
            "line 2: 129 bytes, longer than gateway.max_line_bytes (100)",
        ),
        (
            &[],
            "10.9.0.4 big\n".repeat(400).into_bytes(),
            413,
            "larger than gateway.max_request_bytes (4000 bytes)",
        ),
        // Small compressed, too large inflated.
        (
            &[("Content-Encoding", "gzip")],
            gzip("10.9.0.5 bomb\n".repeat(400).as_bytes()),
            413,
            "larger than gateway.max_request_bytes (4000 bytes)",
        ),
        (
            &[("Content-Encoding", "gzip")],
            b"10.9.0.6 not gzip".to_vec(),
            400,
            "the body is not valid gzip",
        ),
        (
            &[("Content-Encoding", "br")],
            b"10.9.0.7 brotli".to_vec(),
            415,
            "content encoding \"br\" is not supported",
        ),
    ];
    for (headers, body, status, reason) in &refused {
        let answer = post(&http, headers, body);
        assert_eq!(answer.status, *status, "{answer:?}");
        let error = json(&answer)["error"]
            .as_str()
            .expect("an error")
            .to_owned();
        assert!(error.contains(reason), "{error:?} should say {reason:?}");
    }
    assert_eq!(
        values(&bootstrap, &gateway.topic),
        [
            "10.0.0.1 first",
            "10.0.0.2 second",
            "10.0.0.3 third",
            "10.0.0.4 \"json\"",
            "10.0.0.5 json"
        ],
        "the refused requests wrote nothing"
    );
    let metrics = scrape(&gateway.http);
    for (status, count) in [("200", 2.0), ("400", 3.0), ("413", 2.0), ("415", 1.0)] {
        assert_eq!(
            metrics[&format!("log_gateway_http_requests_total{{status=\"{status}\"}}")],
            count,
            "status {status}"
        );
    }
    assert_eq!(metrics["log_gateway_lines_produced_total"], 5.0);
    assert_eq!(metrics["log_gateway_empty_lines_total"], 1.0);
}

#[test]
fn a_slow_broker_gets_503_when_unacknowledged_and_429_without_room_and_nothing_is_lost() {
    let bootstrap = shared_bootstrap();
    // Kafka acknowledges nothing for 5 s (the producer lingers), a request waits 1 s for its
    // acknowledgements, and ten lines fit in flight.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[kafka.properties]\n\"linger.ms\" = \"5000\"\n[telemetry]\nlog_format = \"json\"\n",
    )
    .expect("settings");
    let config = config.to_string_lossy().into_owned();
    let (gateway, http) = start(
        &bootstrap,
        "gateway-http-slow",
        &[
            "--config",
            &config,
            "--max-in-flight",
            "10",
            "--request-timeout",
            "1",
        ],
    );
    let request = |name: &str| -> (Vec<String>, Vec<u8>) {
        let lines: Vec<String> = (0..10).map(|i| format!("10.2.0.{i} {name}")).collect();
        let body = lines.join("\n").into_bytes();
        (lines, body)
    };
    let error = |answer: &HttpAnswer| json(answer)["error"].as_str().unwrap_or("").to_owned();

    // Produced, not acknowledged within 1 s: 503, retry in 5 s; the lines stay in flight.
    let (slow, body) = request("slow");
    let started = Instant::now();
    let answer = post(&http, &[], &body);
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert!(
        error(&answer).contains("gateway.request_timeout_secs (1 s); they may still be written"),
        "{answer:?}"
    );
    // They hold all the room: the next request waits a second for some and is refused, 429,
    // retry in 1 s, nothing of it produced.
    let (refused, body) = request("refused");
    let answer = post(&http, &[], &body);
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(
        error(&answer).contains("gateway.max_in_flight (10)"),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "both answered before the linger ended"
    );

    // The unacknowledged lines are written once the producer sends them; the refused never.
    let records = wait_for_records(&bootstrap, &gateway.topic, slow.len());
    std::thread::sleep(Duration::from_secs(1));
    let values = values(&bootstrap, &gateway.topic);
    let mut expected = slow.clone();
    expected.sort();
    assert_eq!(values, expected, "{records:?}");
    assert!(refused.iter().all(|line| !values.contains(line)));
    let metrics = scrape(&gateway.http);
    assert_eq!(
        metrics["log_gateway_http_requests_total{status=\"429\"}"],
        1.0
    );
    assert_eq!(
        metrics["log_gateway_http_requests_total{status=\"503\"}"],
        1.0
    );
    assert_eq!(metrics["log_gateway_producer_in_flight"], 0.0);
}

/// Starts the gateway on fixed ports (it restarts on the same ones) for `topic`.
fn gateway_on(bootstrap: &str, topic: &str, dlq: &str, port: u16) -> Service {
    let args: Vec<String> = [
        "--brokers",
        bootstrap,
        "--topic",
        topic,
        "--dlq-topic",
        dlq,
        "--http-listen-address",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut service = Service::gateway(&args);
    service.logged_address(HTTP_LISTENING, Duration::from_secs(60));
    service
}

#[test]
fn acknowledged_lines_survive_three_sigkills_of_the_gateway() {
    let bootstrap = shared_bootstrap();
    let first = start(&bootstrap, "gateway-http-kill", &[]).0;
    let (topic, dlq) = (first.topic.clone(), first.dlq.clone());
    drop(first);
    let port = free_port();
    let mut gateway = gateway_on(&bootstrap, &topic, &dlq, port);

    // 50 000 lines at 2 500 a second, 250 per request, four requests in flight: about 20 s, over
    // which the gateway is SIGKILLed three times.
    let (count, seed, start_ms, step_ms) = (50_000u64, 7u64, 1_795_341_600_000i64, 2.0);
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut simulator = std::process::Command::new(e2e_tests::service::binary("log-simulator"))
        .args([
            "--protocol",
            "http",
            "--gateway",
            &format!("127.0.0.1:{port}"),
            "--rate",
            "2500",
            "--batch-lines",
            "250",
            "--connections",
            "4",
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
            "--start-time-ms",
            &start_ms.to_string(),
            "--step-ms",
            &step_ms.to_string(),
        ])
        .stdout(log.reopen().expect("the log file"))
        .stderr(log.reopen().expect("the log file"))
        .spawn()
        .expect("log-simulator starts");
    let simulator_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let mut downtime = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(4));
        assert!(
            simulator.try_wait().expect("the simulator").is_none(),
            "{}",
            simulator_log()
        );
        gateway.signal(nix::sys::signal::Signal::SIGKILL);
        gateway.wait(Duration::from_secs(10));
        let killed = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        gateway = gateway_on(&bootstrap, &topic, &dlq, port);
        downtime.push(killed.elapsed());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = simulator.try_wait().expect("the simulator") {
            break status;
        }
        assert!(Instant::now() < deadline, "the simulator did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{}", simulator_log());
    // "done: N lines sent and acknowledged in R requests (T attempts retried, A lines
    // abandoned unacknowledged) in S s"
    let log = simulator_log();
    let done = log
        .split("done: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no summary in the simulator's log:\n{log}"));
    let numbers: Vec<u64> = done
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [acknowledged, _requests, retries, abandoned, ..] = numbers[..] else {
        panic!("an unexpected summary: {done}");
    };
    assert_eq!((acknowledged, abandoned), (count, 0), "{done}");
    assert!(retries > 0, "the kills made requests go unanswered: {done}");

    // The binary's defaults: 1 000 clients, 1 % malformed.
    let shape = log_simulator::Shape::new(1000, 0.01, start_ms, step_ms);
    let mut generator = log_simulator::Generator::new(seed, shape).expect("generator");
    let mut expected: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for _ in 0..count {
        *expected.entry(generator.next_line()).or_default() += 1;
    }
    let records = wait_for_records(&bootstrap, &topic, count as usize);
    let mut found: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for record in &records {
        *found
            .entry(record.payload.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let missing: i64 = expected
        .iter()
        .map(|(line, n)| (n - found.get(line).copied().unwrap_or(0)).max(0))
        .sum();
    let foreign = found.keys().filter(|l| !expected.contains_key(*l)).count();
    let duplicated = records.len() as i64 - count as i64;
    println!(
        "gateway http kills: {count} lines acknowledged, {} records, {duplicated} duplicated, {missing} missing; {retries} attempts retried; down {:?}",
        records.len(),
        downtime
    );
    assert_eq!(missing, 0, "a line the client saw acknowledged is missing");
    assert_eq!(foreign, 0, "lines the client never sent");
    assert!(duplicated >= 0);
    gateway.stop(Duration::from_secs(30));
}
