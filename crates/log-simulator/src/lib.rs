//! `log-simulator`: seeded access-log lines in the nginx/Apache combined format, sent to the log
//! gateway over several TCP connections as log shippers do.
//!
//! - Clients: a population of `clients` addresses (IPv4, and a share of IPv6), drawn with a
//!   Zipf law (exponent 1.1), so a few addresses are clear top talkers.
//! - A share of lines carries an `X-Forwarded-For` chain of two or three addresses, in a last
//!   quoted field (nginx's `"$http_x_forwarded_for"`; `"-"` when there is none).
//! - A small share is malformed: no client address, an unparsable timestamp, bytes that are not
//!   UTF-8.
//! - Sent over TCP ([`send`]: newline-framed, several connections), or over HTTP to the
//!   gateway's acknowledged endpoint ([`send_http`]: batches, retried until answered 200).
//! - Event times advance by `1 / rate` seconds per line from `start_ms` (now, unless given):
//!   with a fixed start the same seed gives the same lines. Line `i` goes to connection
//!   `i % connections`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Distinct client addresses.
    pub clients: u32,
    /// Share of IPv6 clients.
    pub ipv6_share: f64,
    /// Share of lines with an X-Forwarded-For chain.
    pub forwarded_share: f64,
    /// Share of malformed lines.
    pub malformed_share: f64,
    /// Event time of the first line, ms since the epoch.
    pub start_ms: i64,
    /// Event time between lines, ms (may be fractional).
    pub step_ms: f64,
}

impl Shape {
    /// The shape the `log-simulator` binary sends: a tenth of the clients IPv6, a tenth of the
    /// lines with an X-Forwarded-For chain; the rest as given.
    pub fn new(clients: u32, malformed_share: f64, start_ms: i64, step_ms: f64) -> Self {
        Self {
            clients,
            ipv6_share: 0.1,
            forwarded_share: 0.1,
            malformed_share,
            start_ms,
            step_ms,
        }
    }
}

/// The seeded stream of lines.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: ChaCha8Rng,
    shape: Shape,
    clients: Vec<IpAddr>,
    popularity: Zipf<f64>,
    produced: u64,
}

const PATHS: [&str; 8] = [
    "/",
    "/index.html",
    "/api/v1/items",
    "/api/v1/items/42",
    "/login",
    "/static/app.js",
    "/static/style.css",
    "/search?q=kafka",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "curl/8.5.0",
    "Prometheus/2.53.0",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Generator {
    /// A generator for `shape` seeded with `seed`.
    pub fn new(seed: u64, shape: Shape) -> anyhow::Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let clients = (0..shape.clients.max(1))
            .map(|_| random_address(&mut rng, shape.ipv6_share))
            .collect();
        let popularity = Zipf::new(f64::from(shape.clients.max(1)), 1.1)
            .map_err(|e| anyhow::anyhow!("client popularity: {e}"))?;
        Ok(Self {
            rng,
            shape,
            clients,
            popularity,
            produced: 0,
        })
    }

    /// The next line, without its line ending.
    pub fn next_line(&mut self) -> Vec<u8> {
        let time_ms = self.shape.start_ms + (self.produced as f64 * self.shape.step_ms) as i64;
        self.produced += 1;
        let rank = self.popularity.sample(&mut self.rng) as usize;
        let client = self.clients[rank.saturating_sub(1).min(self.clients.len() - 1)];
        let path = PATHS[self.rng.random_range(0..PATHS.len())];
        let agent = AGENTS[self.rng.random_range(0..AGENTS.len())];
        let status = [200, 200, 200, 200, 304, 404, 500][self.rng.random_range(0..7)];
        let bytes = self.rng.random_range(0..50_000);
        let forwarded = if self.rng.random_bool(self.shape.forwarded_share) {
            let hops = self.rng.random_range(2..4);
            (0..hops)
                .map(|_| random_address(&mut self.rng, self.shape.ipv6_share).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "-".to_owned()
        };
        let stamp = combined_timestamp(time_ms);
        let line = format!(
            "{client} - - [{stamp}] \"GET {path} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\" \"{forwarded}\""
        );
        if self.rng.random_bool(self.shape.malformed_share) {
            return match self.rng.random_range(0..3) {
                0 => format!("- - [{stamp}] \"GET {path} HTTP/1.1\" {status} {bytes}").into_bytes(),
                1 => format!("{client} - - [99/Foo/2026:25:61:61 +0000] \"GET {path} HTTP/1.1\" {status} {bytes}")
                    .into_bytes(),
                _ => {
                    let mut bad = line.into_bytes();
                    bad.extend_from_slice(&[0xff, 0xfe]);
                    bad
                }
            };
        }
        line.into_bytes()
    }
}

fn random_address(rng: &mut ChaCha8Rng, ipv6_share: f64) -> IpAddr {
    if rng.random_bool(ipv6_share) {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            rng.random(),
            rng.random(),
            0,
            0,
            0,
            rng.random_range(1..=u16::MAX),
        ))
    } else {
        // Public-looking: first octet 1-223, not 10, 127.
        let first = loop {
            let f: u8 = rng.random_range(1..=223);
            if f != 10 && f != 127 {
                break f;
            }
        };
        IpAddr::V4(Ipv4Addr::new(
            first,
            rng.random(),
            rng.random(),
            rng.random_range(1..255),
        ))
    }
}

/// `22/Nov/2026:10:00:00 +0000`, the combined format's time.
pub fn combined_timestamp(ms: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        time.day(),
        MONTHS[usize::from(u8::from(time.month())) - 1],
        time.year(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            clients: 1000,
            ipv6_share: 0.1,
            forwarded_share: 0.1,
            malformed_share: 0.01,
            start_ms: 1_795_341_600_000,
            step_ms: 10.0,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_lines_and_another_seed_others() {
        let lines = |seed| {
            let mut g = Generator::new(seed, shape()).expect("generator");
            (0..500).map(|_| g.next_line()).collect::<Vec<_>>()
        };
        assert_eq!(lines(7), lines(7));
        assert_ne!(lines(7), lines(8));
    }

    #[test]
    fn popularity_is_heavy_tailed_and_shares_hold() {
        let mut g = Generator::new(1, shape()).expect("generator");
        let mut counts = std::collections::HashMap::<String, u32>::new();
        let (mut forwarded, mut malformed, mut v6) = (0, 0, 0);
        let n = 20_000;
        for _ in 0..n {
            let line = g.next_line();
            let Ok(text) = String::from_utf8(line) else {
                malformed += 1;
                continue;
            };
            if text.starts_with("- ") || text.contains("99/Foo") {
                malformed += 1;
                continue;
            }
            let client = text.split(' ').next().expect("client").to_owned();
            v6 += u32::from(client.contains(':'));
            forwarded += u32::from(!text.ends_with("\"-\""));
            *counts.entry(client).or_default() += 1;
        }
        let mut by_count: Vec<u32> = counts.values().copied().collect();
        by_count.sort_unstable_by(|a, b| b.cmp(a));
        // The top address alone has more than a tenth of the lines.
        assert!(by_count[0] > n / 10, "top talker {}", by_count[0]);
        assert!(by_count[0] > 10 * by_count[20], "{:?}", &by_count[..25]);
        assert!((100..=300).contains(&malformed), "malformed {malformed}");
        assert!((1500..=2500).contains(&forwarded), "forwarded {forwarded}");
        assert!(v6 > 0);
    }

    #[test]
    fn a_syslog_frame_counts_its_octets_and_carries_the_line_as_its_body() {
        let frame = syslog_frame(b"10.0.0.1 - - [x] \"GET /\" 200 5");
        let text = String::from_utf8(frame).expect("UTF-8");
        let (length, message) = text.split_once(' ').expect("LEN SP MSG");
        assert_eq!(length.parse::<usize>().expect("a length"), message.len());
        assert!(message.starts_with("<134>1 20"), "{message}");
        assert!(
            message.ends_with(" simulator access - - - 10.0.0.1 - - [x] \"GET /\" 200 5"),
            "{message}"
        );
    }

    #[test]
    fn the_timestamp_is_the_combined_format() {
        assert_eq!(
            combined_timestamp(1_795_341_600_000),
            "22/Nov/2026:10:00:00 +0000"
        );
        assert_eq!(combined_timestamp(0), "01/Jan/1970:00:00:00 +0000");
    }
}

/// Where and how fast [`send`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Sending {
    /// The gateway's address.
    pub gateway: String,
    /// Lines per second in total; 0: as fast as the gateway takes them.
    pub rate: f64,
    /// Lines to send; 0: until `stop`.
    pub count: u64,
    /// Concurrent connections; line `i` goes to connection `i % connections`.
    pub connections: usize,
    /// Lines as they are, or each wrapped in a syslog message.
    pub syslog: bool,
}

/// `line` as an RFC 5424 message (facility local0, severity info; host `simulator`, app
/// `access`, the time now), octet-counted as RFC 6587 frames it and rsyslog's `omfwd` sends it.
pub fn syslog_frame(line: &[u8]) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let header = format!("<134>1 {now} simulator access - - - ");
    let mut frame = format!("{} ", header.len() + line.len()).into_bytes();
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(line);
    frame
}

/// Sends `generator`'s lines to the gateway until `count` or `stop`, then closes the
/// connections cleanly; returns the lines sent (each written to its connection).
pub async fn send(
    generator: &mut Generator,
    sending: &Sending,
    stop: &CancellationToken,
) -> anyhow::Result<u64> {
    anyhow::ensure!(sending.connections > 0, "--connections must be > 0");
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    let syslog = sending.syslog;
    for c in 0..sending.connections {
        let stream = TcpStream::connect(&sending.gateway)
            .await
            .with_context(|| format!("connecting to the gateway at {}", sending.gateway))?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        senders.push(tx);
        writers.push(tokio::spawn(async move {
            let mut writer = tokio::io::BufWriter::with_capacity(64 * 1024, stream);
            let mut lines = 0u64;
            while let Some(mut line) = rx.recv().await {
                if syslog {
                    line = syslog_frame(&line);
                } else {
                    line.push(b'\n');
                }
                writer
                    .write_all(&line)
                    .await
                    .with_context(|| format!("writing to connection {c}"))?;
                lines += 1;
                if rx.is_empty() {
                    writer.flush().await?;
                }
            }
            writer.flush().await?;
            writer.into_inner().shutdown().await?;
            anyhow::Ok(lines)
        }));
    }

    let started = Instant::now();
    let mut sent = 0u64;
    while sending.count == 0 || sent < sending.count {
        if stop.is_cancelled() {
            break;
        }
        if sending.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / sending.rate);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        let line = generator.next_line();
        let connection = (sent % sending.connections as u64) as usize;
        if senders[connection].send(line).await.is_err() {
            break;
        }
        sent += 1;
    }
    drop(senders);
    let mut written = 0;
    for writer in writers {
        written += writer.await.context("connection task")??;
    }
    anyhow::ensure!(
        written == sent,
        "{sent} lines generated but {written} written"
    );
    Ok(sent)
}

/// Where and how fast [`send_http`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSending {
    /// The gateway's HTTP listener, `HOST:PORT`.
    pub gateway: String,
    /// Lines per second in total; 0: as fast as the gateway takes them.
    pub rate: f64,
    /// Lines to send; 0: until `stop`.
    pub count: u64,
    /// Requests in flight at once; batch `i` goes to sender `i % requests`.
    pub requests: usize,
    /// Lines per request at most.
    pub batch_lines: usize,
    /// A batch waits at most this long for more lines before it is sent.
    pub linger: Duration,
    /// Compress the bodies with gzip.
    pub gzip: bool,
}

/// What [`send_http`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpReport {
    /// Lines the gateway acknowledged (answered 200 for).
    pub acknowledged: u64,
    /// Requests answered 200.
    pub requests: u64,
    /// Attempts that were retried: no answer (the gateway away or killed), 429 or 503.
    pub retries: u64,
    /// Lines of requests still unacknowledged when `stop` came.
    pub abandoned: u64,
}

impl std::ops::AddAssign for HttpReport {
    fn add_assign(&mut self, other: Self) {
        self.acknowledged += other.acknowledged;
        self.requests += other.requests;
        self.retries += other.retries;
        self.abandoned += other.abandoned;
    }
}

/// Longest wait between two attempts of a request that got no answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Sends `generator`'s lines to the gateway's `POST /v1/logs` in batches, as an acknowledging
/// shipper does: each request is retried (after its `Retry-After`, or with a growing backoff
/// when there was no answer) until the gateway answers 200, so no line is lost, and a line
/// may be duplicated when an answer was lost. A 4xx other than 429 is an error: retrying would
/// not help. Until `count` lines are acknowledged, or `stop` (the requests then unanswered are
/// reported as abandoned).
pub async fn send_http(
    generator: &mut Generator,
    sending: &HttpSending,
    stop: &CancellationToken,
) -> anyhow::Result<HttpReport> {
    anyhow::ensure!(sending.requests > 0, "--connections must be > 0");
    anyhow::ensure!(sending.batch_lines > 0, "--batch-lines must be > 0");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;
    let url = format!("http://{}/v1/logs", sending.gateway);
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..sending.requests {
        let (tx, mut rx) = mpsc::channel::<(bytes::Bytes, u64)>(1);
        senders.push(tx);
        let (client, url, gzip, stop) = (client.clone(), url.clone(), sending.gzip, stop.clone());
        workers.push(tokio::spawn(async move {
            let mut report = HttpReport::default();
            while let Some((body, lines)) = rx.recv().await {
                let acknowledged =
                    post_until_acknowledged(&client, &url, body, gzip, &stop, &mut report).await?;
                if acknowledged {
                    report.acknowledged += lines;
                    report.requests += 1;
                } else {
                    report.abandoned += lines;
                }
            }
            anyhow::Ok(report)
        }));
    }

    let started = Instant::now();
    let (mut generated, mut batches) = (0u64, 0usize);
    let mut batch: Vec<u8> = Vec::new();
    let (mut in_batch, mut batch_started) = (0u64, Instant::now());
    loop {
        let done = (sending.count > 0 && generated >= sending.count) || stop.is_cancelled();
        let full = in_batch as usize >= sending.batch_lines;
        let stale = in_batch > 0 && batch_started.elapsed() >= sending.linger;
        if in_batch > 0 && (done || full || stale) {
            let mut body = std::mem::take(&mut batch);
            if sending.gzip {
                body = gzip(&body)?;
            }
            if senders[batches % senders.len()]
                .send((body.into(), in_batch))
                .await
                .is_err()
            {
                break;
            }
            batches += 1;
            in_batch = 0;
        }
        if done {
            break;
        }
        if sending.rate > 0.0 {
            let due = started + Duration::from_secs_f64(generated as f64 / sending.rate);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = stop.cancelled() => continue,
                }
            }
        }
        if in_batch == 0 {
            batch_started = Instant::now();
        }
        batch.extend_from_slice(&generator.next_line());
        batch.push(b'\n');
        in_batch += 1;
        generated += 1;
    }
    drop(senders);
    let mut report = HttpReport::default();
    for worker in workers {
        report += worker.await.context("request task")??;
    }
    Ok(report)
}

/// Posts `body` until the gateway answers 200 (true), or `stop` (false).
async fn post_until_acknowledged(
    client: &reqwest::Client,
    url: &str,
    body: bytes::Bytes,
    gzip: bool,
    stop: &CancellationToken,
    report: &mut HttpReport,
) -> anyhow::Result<bool> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut request = client
            .post(url)
            .header("content-type", "text/plain")
            .body(body.clone());
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        let answer = tokio::select! {
            answer = request.send() => answer,
            _ = stop.cancelled() => return Ok(false),
        };
        let wait = match answer {
            Ok(response) if response.status().is_success() => return Ok(true),
            Ok(response) if matches!(response.status().as_u16(), 429 | 503) => {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tracing::debug!(status = %response.status(), after, "request to be retried");
                Duration::from_secs(after)
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!("the gateway refused a request ({status}): {text}");
            }
            Err(error) => {
                tracing::debug!(%error, "no answer: the request is retried");
                backoff = (backoff * 2).min(MAX_BACKOFF);
                backoff
            }
        };
        report.retries += 1;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Ok(false),
        }
    }
}

fn gzip(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    Ok(encoder.finish()?)
}
