//! The log gateway on the real broker: lines from several TCP connections become records,
//! exactly; oversize lines are dead-lettered and the connection goes on; connections beyond the
//! limit are refused and counted; SIGTERM drains what was sent; a throttled broker blocks the
//! sender instead of losing lines; over TLS with client certificates, trusted clients are served
//! and untrusted or plaintext ones refused cleanly; syslog (RFC 6587 framings, RFC 5424 and
//! 3164, from a hand-written stream and from util-linux's `logger`) lands at each message's own
//! time.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::{Record, read_topic};
use e2e_tests::service::{Service, scrape, wait_ready};
use e2e_tests::topics::create_topics;
use e2e_tests::unique;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream};

pub(crate) struct Gateway {
    pub(crate) service: Service,
    pub(crate) listen: String,
    pub(crate) http: String,
    pub(crate) topic: String,
    pub(crate) dlq: String,
}

pub(crate) fn start_gateway(bootstrap: &str, test: &str, extra: &[&str]) -> Gateway {
    let id = unique(test);
    let topic = format!("{id}-access-logs");
    let dlq = format!("{id}-access-logs-dlq");
    create_topics(bootstrap, &[(&topic, 3), (&dlq, 1)]);
    let mut args: Vec<String> = [
        "--brokers",
        bootstrap,
        "--topic",
        &topic,
        "--dlq-topic",
        &dlq,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut service = Service::gateway(&args);
    let listen = service.listen_address(Duration::from_secs(60));
    let http = service.http_address(Duration::from_secs(30));
    wait_ready(&http);
    Gateway {
        service,
        listen,
        http,
        topic,
        dlq,
    }
}

/// Lines by sender (`ip:port`), from the `sender` header.
fn lines_by_sender(records: &[Record]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_sender: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for record in records {
        let sender = record.header("sender").expect("sender header");
        by_sender
            .entry(sender)
            .or_default()
            .push(record.payload.clone().unwrap_or_default());
    }
    for lines in by_sender.values_mut() {
        lines.sort();
    }
    by_sender
}

pub(crate) fn wait_for_records(bootstrap: &str, topic: &str, count: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = read_topic(bootstrap, topic);
        if records.len() >= count || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn lines_from_several_connections_become_records_empty_ones_are_skipped_and_oversize_ones_dead_lettered()
 {
    let bootstrap = shared_bootstrap();
    let mut gateway = start_gateway(&bootstrap, "gateway-lines", &["--max-line-bytes", "100"]);
    let oversize = "x".repeat(300);
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut oversize_sender = String::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|c| {
                let listen = gateway.listen.clone();
                let oversize = oversize.clone();
                scope.spawn(move || {
                    let mut stream = TcpStream::connect(&listen).expect("connect");
                    let sender = stream.local_addr().expect("local address").to_string();
                    let mut sent = Vec::new();
                    let mut text = String::new();
                    for i in 0..500 {
                        let line = format!(
                            "10.0.{c}.{} - - [22/Nov/2026:10:00:00 +0000] \"GET /{i}\" 200 5",
                            i % 250
                        );
                        // Connection 1 ends its lines with \r\n, the others with \n.
                        text.push_str(&line);
                        text.push_str(if c == 1 { "\r\n" } else { "\n" });
                        sent.push(line.into_bytes());
                        if c == 2 && i == 250 {
                            text.push_str(&oversize);
                            text.push('\n');
                        }
                        // Empty lines, skipped and counted: five on connection 3, one with
                        // its \r\n on connection 1.
                        if (c == 3 && i % 100 == 99) || (c == 1 && i == 10) {
                            text.push_str(if c == 1 { "\r\n" } else { "\n" });
                        }
                    }
                    // The last line has no line ending.
                    text.push_str("last line");
                    sent.push(b"last line".to_vec());
                    // Written in uneven pieces, as TCP may deliver them.
                    for piece in text.as_bytes().chunks(777) {
                        stream.write_all(piece).expect("write");
                    }
                    drop(stream);
                    sent.sort();
                    (sender, sent)
                })
            })
            .collect();
        for (c, handle) in handles.into_iter().enumerate() {
            let (sender, sent) = handle.join().expect("sender thread");
            if c == 2 {
                oversize_sender = sender.clone();
            }
            expected.insert(sender, sent);
        }
    });

    let records = wait_for_records(&bootstrap, &gateway.topic, 4 * 501);
    assert_eq!(records.len(), 4 * 501, "every line once");
    assert_eq!(lines_by_sender(&records), expected);
    for record in &records {
        let received: i64 = record
            .header("received-at-ms")
            .and_then(|v| v.parse().ok())
            .expect("received-at-ms");
        assert_eq!(
            record.timestamp_ms,
            Some(received),
            "the timestamp is the time received"
        );
    }

    let dead = wait_for_records(&bootstrap, &gateway.dlq, 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].payload.as_deref(),
        Some(&oversize.as_bytes()[..100])
    );
    assert_eq!(
        dead[0].header("error.kind").as_deref(),
        Some("oversize_line")
    );
    assert_eq!(dead[0].header("line-bytes").as_deref(), Some("300"));
    assert_eq!(dead[0].header("sender"), Some(oversize_sender));
    assert!(
        dead[0]
            .header("error.reason")
            .expect("reason")
            .contains("gateway.max_line_bytes (100)")
    );

    let metrics = scrape(&gateway.http);
    assert_eq!(metrics["log_gateway_lines_received_total"], 2011.0);
    assert_eq!(metrics["log_gateway_empty_lines_total"], 6.0);
    assert_eq!(metrics["log_gateway_lines_produced_total"], 2004.0);
    assert_eq!(metrics["log_gateway_oversize_lines_total"], 1.0);
    assert_eq!(metrics["log_gateway_dead_letters_produced_total"], 1.0);
    assert_eq!(metrics["log_gateway_connections_accepted_total"], 4.0);
    assert_eq!(metrics["log_gateway_produce_failures_total"], 0.0);
    let stopped = gateway.service.stop(Duration::from_secs(30));
    assert!(stopped < Duration::from_secs(5), "stopped in {stopped:?}");
}

#[test]
fn connections_beyond_the_limit_are_refused_logged_and_counted() {
    let bootstrap = shared_bootstrap();
    let mut gateway = start_gateway(&bootstrap, "gateway-limit", &["--max-connections", "2"]);
    let mut open: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut stream = TcpStream::connect(&gateway.listen).expect("connect");
            writeln!(stream, "held {i}").expect("write");
            stream
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(&gateway.http)["log_gateway_connections_open"] < 2.0 {
        assert!(Instant::now() < deadline, "two connections open");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The third is closed at once: reading it gives end of stream.
    let mut third = TcpStream::connect(&gateway.listen).expect("the kernel accepts it");
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert_eq!(third.read(&mut byte).expect("closed, not timed out"), 0);
    assert!(
        gateway
            .service
            .wait_for_log("connection refused", Duration::from_secs(5))
    );
    assert_eq!(
        scrape(&gateway.http)["log_gateway_connections_refused_total"],
        1.0
    );

    // A slot freed is a slot usable.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(&gateway.http)["log_gateway_connections_open"] > 1.0 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is released"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut again = TcpStream::connect(&gateway.listen).expect("connect");
    writeln!(again, "after").expect("write");
    drop(again);
    drop(open);
    let records = wait_for_records(&bootstrap, &gateway.topic, 3);
    let mut lines: Vec<_> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect();
    lines.sort();
    assert_eq!(lines, ["after", "held 0", "held 1"]);
    assert_eq!(
        scrape(&gateway.http)["log_gateway_connections_refused_total"],
        1.0
    );
    gateway.service.stop(Duration::from_secs(30));
}

#[test]
fn sigterm_drains_what_an_open_connection_already_sent() {
    let bootstrap = shared_bootstrap();
    let mut gateway = start_gateway(&bootstrap, "gateway-drain", &[]);
    let mut stream = TcpStream::connect(&gateway.listen).expect("connect");
    let lines = 20_000;
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&format!("192.0.2.{} line {i:06}\n", i % 200));
    }
    stream.write_all(text.as_bytes()).expect("write");
    // The connection stays open; the gateway is told to stop right away.
    let (status, took) = gateway.service.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 after draining ({status:?}):\n{}",
        gateway.service.log_tail()
    );
    let records = read_topic(&bootstrap, &gateway.topic);
    assert_eq!(records.len(), lines, "every line already sent is in Kafka");
    let mut seen: Vec<_> = records
        .iter()
        .map(|r| r.payload.clone().unwrap_or_default())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), lines, "no duplicates");
    println!("gateway drain: {lines} lines sent, SIGTERM, all in Kafka, exit 0 after {took:?}");
    drop(stream);
}

fn producer_quota(bootstrap: &str, client_id: &str, bytes_per_second: Option<u32>) {
    e2e_tests::kafka_io::client_quota(bootstrap, client_id, "producer_byte_rate", bytes_per_second);
}

#[test]
fn a_throttled_broker_blocks_the_sender_and_nothing_is_lost() {
    let bootstrap = shared_bootstrap();
    let client_id = unique("gateway-throttled");
    producer_quota(&bootstrap, &client_id, Some(2000));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("[kafka.properties]\n\"client.id\" = \"{client_id}\"\n[telemetry]\nlog_format = \"json\"\n"),
    )
    .expect("settings");
    let config = config.to_string_lossy().into_owned();
    let mut gateway = start_gateway(
        &bootstrap,
        "gateway-backpressure",
        &["--config", &config, "--max-in-flight", "200"],
    );

    // 40 MB of lines: far more than the socket buffers on both sides hold.
    let lines: u64 = 400_000;
    let written = Arc::new(AtomicU64::new(0));
    let listen = gateway.listen.clone();
    let progress = written.clone();
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&listen).expect("connect");
        let mut batch = String::new();
        for i in 0..lines {
            batch.push_str(&format!(
                "198.51.100.{} - - backpressure line {i:08} {}\n",
                i % 250,
                "p".repeat(60)
            ));
            if batch.len() > 64 * 1024 {
                stream.write_all(batch.as_bytes()).expect("write");
                progress.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
        }
        stream.write_all(batch.as_bytes()).expect("write");
        progress.fetch_add(batch.len() as u64, Ordering::Relaxed);
    });

    // Under the quota the gateway holds max_in_flight records, stops reading, and the sender's
    // writes stop making progress.
    std::thread::sleep(Duration::from_secs(4));
    let before = written.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    let after = written.load(Ordering::Relaxed);
    let metrics = scrape(&gateway.http);
    let total_bytes = lines * 87;
    assert!(!sender.is_finished(), "the sender is blocked");
    assert_eq!(
        before, after,
        "no progress for 3 s while the broker throttles"
    );
    assert!(
        after < total_bytes / 2,
        "blocked after {after} of {total_bytes} bytes"
    );
    assert_eq!(
        metrics["log_gateway_producer_in_flight"], 200.0,
        "the in-flight bound is full"
    );
    println!(
        "gateway backpressure: sender blocked after {:.1} MB, {} lines in Kafka so far",
        after as f64 / 1e6,
        metrics["log_gateway_lines_produced_total"]
    );

    producer_quota(&bootstrap, &client_id, None);
    sender
        .join()
        .expect("the sender finishes once the quota is lifted");
    gateway.service.terminate(Duration::from_secs(60));
    let records = read_topic(&bootstrap, &gateway.topic);
    let mut seen: Vec<_> = records
        .iter()
        .map(|r| r.payload.clone().unwrap_or_default())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(records.len() as u64, lines, "every line once");
    assert_eq!(seen.len() as u64, lines);
}

/// The log simulator over four connections into the gateway: the topic holds exactly the lines
/// the seed generates, malformed ones included (judging them is the job's work).
#[test]
fn the_log_simulator_through_the_gateway_lands_every_line_once() {
    let bootstrap = shared_bootstrap();
    let mut gateway = start_gateway(&bootstrap, "gateway-simulator", &[]);
    let (count, seed, start_ms, step_ms) = (6000u64, 42u64, 1_795_341_600_000i64, 5.0);
    let output = std::process::Command::new(e2e_tests::service::binary("log-simulator"))
        .args([
            "--gateway",
            &gateway.listen,
            "--rate",
            "0",
            "--connections",
            "4",
        ])
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .args([
            "--start-time-ms",
            &start_ms.to_string(),
            "--step-ms",
            &step_ms.to_string(),
        ])
        .output()
        .expect("log-simulator runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The binary's defaults: 1 000 clients, 1 % malformed.
    let shape = log_simulator::Shape::new(1000, 0.01, start_ms, step_ms);
    let mut generator = log_simulator::Generator::new(seed, shape).expect("generator");
    let mut expected: Vec<Vec<u8>> = (0..count).map(|_| generator.next_line()).collect();
    expected.sort();
    let records = wait_for_records(&bootstrap, &gateway.topic, count as usize);
    let mut actual: Vec<Vec<u8>> = records
        .iter()
        .map(|r| r.payload.clone().unwrap_or_default())
        .collect();
    actual.sort();
    assert_eq!(actual.len(), expected.len());
    assert!(
        actual == expected,
        "the topic holds other lines than the seed generates"
    );
    let senders: std::collections::BTreeSet<_> =
        records.iter().filter_map(|r| r.header("sender")).collect();
    assert_eq!(senders.len(), 4, "four connections");
    gateway.service.stop(Duration::from_secs(30));
}

/// A throwaway CA made with `openssl`, as `scripts/kafka.sh --secure` makes the broker's: a
/// certificate for the gateway (127.0.0.1), a client certificate the CA signed, and a "rogue"
/// client certificate another CA signed.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a directory");
        let script = r#"
            set -euo pipefail
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gateway test CA" \
              -keyout ca.key -out ca.pem
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=some other CA" \
              -keyout other-ca.key -out other-ca.pem
            printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
            for name in gateway client rogue; do
              ca=ca; [ "$name" = rogue ] && ca=other-ca
              openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$name.key" \
                -out "$name.csr"
              openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
                -CAcreateserial -days 2 -extfile san.ext -out "$name.crt"
            done
        "#;
        let output = std::process::Command::new("bash")
            .args(["-c", script])
            .current_dir(dir.path())
            .output()
            .expect("running openssl");
        assert!(
            output.status.success(),
            "making the certificates: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// A TLS client that trusts the test CA, presenting `client`'s certificate if given.
    fn connect(&self, listen: &str, client: Option<&str>) -> std::io::Result<SslStream<TcpStream>> {
        let mut builder = SslConnector::builder(SslMethod::tls_client()).expect("TLS");
        builder.set_ca_file(self.path("ca.pem")).expect("the CA");
        if let Some(name) = client {
            builder
                .set_certificate_file(self.path(&format!("{name}.crt")), SslFiletype::PEM)
                .expect("the client certificate");
            builder
                .set_private_key_file(self.path(&format!("{name}.key")), SslFiletype::PEM)
                .expect("the client key");
        }
        let tcp = TcpStream::connect(listen)?;
        tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
        builder
            .build()
            .connect("127.0.0.1", tcp)
            .map_err(std::io::Error::other)
    }
}

/// Writes `lines` to a TLS connection and closes it cleanly: close_notify, then read until the
/// gateway has closed its side. A client that closes its socket at once, with bytes of the
/// gateway's TLS session unread, makes its kernel answer with a reset, which discards what the
/// gateway had not read yet: in this test, all but the first line in three runs of six.
fn send_over_tls(mut stream: SslStream<TcpStream>, lines: &[String]) {
    for line in lines {
        writeln!(stream, "{line}").expect("write over TLS");
    }
    stream.flush().expect("flush");
    let _ = stream.shutdown();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the gateway sent data: {rest:?}");
}

/// Whether the gateway closed `stream` (end of stream or a reset) rather than leaving it open
/// until the read timeout.
fn closed_by_the_gateway(stream: &mut impl Read) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Ok(0) | Err(_) => return true,
            // A TLS alert, or the alert's bytes on a plaintext connection: read on to the end.
            Ok(_) => continue,
        }
    }
}

#[test]
fn over_tls_trusted_clients_are_served_and_untrusted_or_plaintext_ones_are_refused_cleanly() {
    let bootstrap = shared_bootstrap();
    let certificates = Certificates::new();
    let mut gateway = start_gateway(
        &bootstrap,
        "gateway-tls",
        &[
            "--tls-certificate-file",
            &certificates.path("gateway.crt"),
            "--tls-key-file",
            &certificates.path("gateway.key"),
            "--tls-ca-file",
            &certificates.path("ca.pem"),
            "--http-listen-address",
            "127.0.0.1:0",
        ],
    );
    let batch = |name: &str| -> Vec<String> {
        (0..50)
            .map(|i| {
                format!("10.1.0.{i} - - [06/Dec/2026:10:00:00 +0000] \"GET /{name}/{i}\" 200 5")
            })
            .collect()
    };
    let (first, second) = (batch("first"), batch("second"));
    send_over_tls(
        certificates
            .connect(&gateway.listen, Some("client"))
            .expect("a trusted client connects"),
        &first,
    );

    // A certificate another CA signed: with TLS 1.3 the client may finish its side of the
    // handshake before the gateway has checked the certificate, so the line may be written;
    // the gateway then closes the connection and keeps nothing of it.
    if let Ok(mut rogue) = certificates.connect(&gateway.listen, Some("rogue")) {
        let _ = writeln!(rogue, "10.6.6.6 rogue line");
        let _ = rogue.flush();
        assert!(closed_by_the_gateway(&mut rogue));
    }
    // No certificate at all, when client certificates are required.
    if let Ok(mut anonymous) = certificates.connect(&gateway.listen, None) {
        let _ = writeln!(anonymous, "10.7.7.7 anonymous line");
        let _ = anonymous.flush();
        assert!(closed_by_the_gateway(&mut anonymous));
    }
    // Plaintext to the TLS port: closed, not read as lines.
    let mut plain = TcpStream::connect(&gateway.listen).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    writeln!(plain, "10.8.8.8 plaintext line").expect("write");
    assert!(closed_by_the_gateway(&mut plain), "plaintext was served");

    // The gateway serves trusted clients still.
    send_over_tls(
        certificates
            .connect(&gateway.listen, Some("client"))
            .expect("a trusted client connects again"),
        &second,
    );
    // The HTTP endpoint over TLS: a trusted client's request is acknowledged, a rogue one's
    // connection closed.
    let http = gateway.service.logged_address(
        "receiving log lines over HTTP (POST /v1/logs)",
        Duration::from_secs(10),
    );
    let posted = ["10.1.1.1 over https", "10.1.1.2 over https"];
    let answer = e2e_tests::service::http_post(
        certificates
            .connect(&http, Some("client"))
            .expect("a trusted client connects to the HTTP listener"),
        "/v1/logs",
        &[],
        posted.join("\n").as_bytes(),
    )
    .expect("an answer");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "{\"accepted\":2}")
    );
    if let Ok(rogue) = certificates.connect(&http, Some("rogue")) {
        let answer = e2e_tests::service::http_post(rogue, "/v1/logs", &[], b"10.6.6.6 rogue");
        assert!(answer.is_err(), "a rogue client was answered: {answer:?}");
    }

    let records = wait_for_records(&bootstrap, &gateway.topic, 102);
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone().expect("a value")).expect("UTF-8"))
        .collect();
    lines.sort();
    let mut expected: Vec<String> = first
        .iter()
        .chain(&second)
        .cloned()
        .chain(posted.map(str::to_owned))
        .collect();
    expected.sort();
    assert_eq!(
        lines,
        expected,
        "exactly the trusted clients' lines\n{}",
        gateway.service.log_tail()
    );
    let metrics = scrape(&gateway.http);
    assert_eq!(metrics["log_gateway_tls_handshake_failures_total"], 4.0);
    assert_eq!(metrics["log_gateway_connections_accepted_total"], 7.0);
    assert_eq!(metrics["log_gateway_lines_produced_total"], 102.0);
}

/// The gateway's record whose value is `body`.
fn record_with_value<'r>(records: &'r [Record], body: &str) -> &'r Record {
    records
        .iter()
        .find(|r| r.payload.as_deref() == Some(body.as_bytes()))
        .unwrap_or_else(|| panic!("no record {body:?} among {records:?}"))
}

#[test]
fn syslog_in_both_framings_and_formats_becomes_records_at_each_messages_own_time() {
    let bootstrap = shared_bootstrap();
    let address = format!("127.0.0.1:{}", e2e_tests::broker::free_port());
    let gateway = start_gateway(
        &bootstrap,
        "gateway-syslog",
        &["--syslog-listen-address", &address],
    );
    // RFC 5424 octet-counted, RFC 3164 newline-framed, and a frame that is not syslog.
    let rfc5424 = r#"<34>1 2026-12-06T10:00:00.250Z web-1 nginx 4242 - [meta@1 x="]"] 203.0.113.5 - - "GET / HTTP/1.1" 200 5"#;
    let rfc3164 = "<13>Dec  6 10:00:01 router-7 kernel: DROP SRC=198.51.100.9 DST=192.0.2.1";
    let mut stream = TcpStream::connect(&address).expect("connect to the syslog listener");
    write!(
        stream,
        "{} {rfc5424}{rfc3164}\nno priority 192.0.2.44\n",
        rfc5424.len()
    )
    .expect("write");
    drop(stream);
    // util-linux's logger, as daemons send it: octet-counted RFC 5424, newline-framed RFC 3164
    // (its BSD timestamp is local time: UTC here, which the gateway assumes).
    let port = address.rsplit(':').next().expect("a port");
    for (format, framing, tag, message) in [
        (
            "--rfc5424",
            "--octet-count",
            "myapp",
            "client 192.0.2.77 logged in",
        ),
        (
            "--rfc3164",
            "--tcp",
            "oldapp",
            "client 192.0.2.78 logged out",
        ),
    ] {
        let status = std::process::Command::new("logger")
            .args(["--tcp", "--server", "127.0.0.1", "--port", port])
            .args([format, framing, "-t", tag, message])
            .env("TZ", "UTC")
            .status()
            .expect("logger runs (Debian's bsdutils)");
        assert!(status.success(), "logger {format}");
    }

    let records = wait_for_records(&bootstrap, &gateway.topic, 4);
    assert_eq!(records.len(), 4, "{records:?}");
    let nginx = record_with_value(&records, r#"203.0.113.5 - - "GET / HTTP/1.1" 200 5"#);
    assert_eq!(
        nginx.timestamp_ms,
        Some(1_796_551_200_250),
        "the message's own time"
    );
    assert_eq!(nginx.header("syslog-host").as_deref(), Some("web-1"));
    assert_eq!(nginx.header("syslog-app").as_deref(), Some("nginx"));
    let kernel = record_with_value(&records, "kernel: DROP SRC=198.51.100.9 DST=192.0.2.1");
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(kernel.timestamp_ms.expect("a timestamp")) * 1_000_000,
    )
    .expect("a time");
    assert_eq!(
        (at.month(), at.day(), at.hour(), at.minute(), at.second()),
        (time::Month::December, 6, 10, 0, 1),
        "RFC 3164's time, in the year nearest to its receipt"
    );
    assert_eq!(kernel.header("syslog-host").as_deref(), Some("router-7"));
    assert_eq!(kernel.header("syslog-app").as_deref(), Some("kernel"));
    for (body, app) in [
        ("client 192.0.2.77 logged in", "myapp"),
        ("oldapp: client 192.0.2.78 logged out", "oldapp"),
    ] {
        let record = record_with_value(&records, body);
        assert_eq!(record.header("syslog-app").as_deref(), Some(app), "{body}");
        let received: i64 = record
            .header("received-at-ms")
            .and_then(|v| v.parse().ok())
            .expect("received-at-ms");
        let sent = record.timestamp_ms.expect("a timestamp");
        assert!(
            (received - sent).abs() < 5_000,
            "logger's own time ({sent}) is when it sent, near {received}: {body}"
        );
    }
    let dead = wait_for_records(&bootstrap, &gateway.dlq, 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].payload.as_deref(),
        Some(&b"no priority 192.0.2.44"[..])
    );
    assert_eq!(dead[0].header("error.kind").as_deref(), Some("not_syslog"));
    let metrics = scrape(&gateway.http);
    assert_eq!(metrics["log_gateway_not_syslog_total"], 1.0);
    assert_eq!(metrics["log_gateway_lines_produced_total"], 4.0);
}
