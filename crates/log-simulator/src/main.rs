//! `log-simulator`: generate lines and send them to the gateway over several connections.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::time::Duration;

use clap::{Parser, ValueEnum};
use log_simulator::{Generator, HttpSending, Sending, Shape};
use pipeline_runtime::settings::TelemetrySettings;
use pipeline_runtime::{shutdown, telemetry};

/// How the lines reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// Newline-framed lines over TCP connections (the gateway's listen_address).
    Tcp,
    /// Each line in an RFC 5424 syslog message, octet-counted (RFC 6587), over TCP
    /// connections (the gateway's syslog_listen_address).
    Syslog,
    /// Batches to POST /v1/logs (the gateway's http_listen_address), each retried until the
    /// gateway answers 200: acknowledged, nothing lost.
    Http,
}

/// Sends seeded, realistic access-log lines (combined format) to the log gateway over several
/// TCP connections, or in acknowledged HTTP requests.
#[derive(Debug, Parser)]
#[command(name = "log-simulator", version)]
struct Cli {
    /// The gateway's address: its line listener, or the syslog or HTTP listener for those
    /// protocols.
    #[arg(long, default_value = "127.0.0.1:5140", value_name = "HOST:PORT")]
    gateway: String,
    /// How to send.
    #[arg(long, value_enum, default_value_t = Protocol::Tcp)]
    protocol: Protocol,
    /// --protocol http: lines per request at most.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    batch_lines: usize,
    /// --protocol http: a request waits at most this long for more lines.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    linger_ms: u64,
    /// --protocol http: gzip the request bodies.
    #[arg(long)]
    gzip: bool,
    /// Lines per second in total; 0 = as fast as the gateway takes them.
    #[arg(long, default_value_t = 100.0, value_name = "R")]
    rate: f64,
    /// Stop after C lines; 0 = run until stopped.
    #[arg(long, default_value_t = 0, value_name = "C")]
    count: u64,
    /// Seed: with --start-time, the same seed sends the same lines. [default: random]
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Concurrent connections (with --protocol http: requests in flight); line (or batch) i
    /// goes to connection i % N.
    #[arg(long, default_value_t = 4, value_name = "N")]
    connections: usize,
    /// Distinct client addresses.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    clients: u32,
    /// Event time of the first line, ms since the epoch. [default: now]
    #[arg(long, value_name = "MS")]
    start_time_ms: Option<i64>,
    /// Event time between lines, ms. [default: 1000 / rate, or 1 with --rate 0]
    #[arg(long, value_name = "MS")]
    step_ms: Option<f64>,
    /// Share of malformed lines.
    #[arg(long, default_value_t = 0.01, value_name = "P")]
    malformed_share: f64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    telemetry::init(&TelemetrySettings::default());
    if let Err(error) = run(cli).await {
        tracing::error!("log-simulator failed: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(cli.connections > 0, "--connections must be > 0");
    anyhow::ensure!(
        cli.rate.is_finite() && cli.rate >= 0.0,
        "--rate must be ≥ 0"
    );
    let seed = cli.seed.unwrap_or_else(rand::random);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let shape = Shape::new(
        cli.clients,
        cli.malformed_share,
        cli.start_time_ms.unwrap_or(now_ms),
        cli.step_ms.unwrap_or(if cli.rate > 0.0 {
            1000.0 / cli.rate
        } else {
            1.0
        }),
    );
    let mut generator = Generator::new(seed, shape)?;
    tracing::info!(gateway = %cli.gateway, seed, connections = cli.connections, rate = cli.rate, count = cli.count, "log simulator starting");

    let stop = shutdown::on_signals();
    let started = Instant::now();
    if cli.protocol == Protocol::Http {
        let report = log_simulator::send_http(
            &mut generator,
            &HttpSending {
                gateway: cli.gateway.clone(),
                rate: cli.rate,
                count: cli.count,
                requests: cli.connections,
                batch_lines: cli.batch_lines,
                linger: Duration::from_millis(cli.linger_ms),
                gzip: cli.gzip,
            },
            &stop,
        )
        .await?;
        tracing::info!(
            lines = report.acknowledged,
            requests = report.requests,
            retries = report.retries,
            abandoned = report.abandoned,
            seed,
            "done: {} lines sent and acknowledged in {} requests ({} attempts retried, {} lines abandoned unacknowledged) in {:.1}s",
            report.acknowledged,
            report.requests,
            report.retries,
            report.abandoned,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let sent = log_simulator::send(
        &mut generator,
        &Sending {
            gateway: cli.gateway.clone(),
            rate: cli.rate,
            count: cli.count,
            connections: cli.connections,
            syslog: cli.protocol == Protocol::Syslog,
        },
        &stop,
    )
    .await?;
    tracing::info!(
        lines = sent,
        seed,
        "done: {sent} lines sent over {} connections in {:.1}s",
        cli.connections,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
