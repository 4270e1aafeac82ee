//! `log-simulator`: generate lines and send them to the gateway over several connections.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use log_simulator::{Generator, Shape};
use pipeline_runtime::settings::TelemetrySettings;
use pipeline_runtime::{shutdown, telemetry};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Sends seeded, realistic access-log lines (combined format) to the log gateway over several
/// TCP connections.
#[derive(Debug, Parser)]
#[command(name = "log-simulator", version)]
struct Cli {
    /// The gateway's address.
    #[arg(long, default_value = "127.0.0.1:5140", value_name = "HOST:PORT")]
    gateway: String,
    /// Lines per second in total; 0 = as fast as the gateway takes them.
    #[arg(long, default_value_t = 100.0, value_name = "R")]
    rate: f64,
    /// Stop after C lines; 0 = run until stopped.
    #[arg(long, default_value_t = 0, value_name = "C")]
    count: u64,
    /// Seed: with --start-time, the same seed sends the same lines. [default: random]
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Concurrent connections; line i goes to connection i % N.
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
    let shape = Shape {
        clients: cli.clients,
        ipv6_share: 0.1,
        forwarded_share: 0.1,
        malformed_share: cli.malformed_share,
        start_ms: cli.start_time_ms.unwrap_or(now_ms),
        step_ms: cli.step_ms.unwrap_or(if cli.rate > 0.0 {
            1000.0 / cli.rate
        } else {
            1.0
        }),
    };
    let mut generator = Generator::new(seed, shape)?;
    tracing::info!(gateway = %cli.gateway, seed, connections = cli.connections, rate = cli.rate, count = cli.count, "log simulator starting");

    let mut senders = Vec::new();
    let mut writers = Vec::new();
    for c in 0..cli.connections {
        let stream = TcpStream::connect(&cli.gateway)
            .await
            .with_context(|| format!("connecting to the gateway at {}", cli.gateway))?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        senders.push(tx);
        writers.push(tokio::spawn(async move {
            let mut writer = tokio::io::BufWriter::with_capacity(64 * 1024, stream);
            let mut lines = 0u64;
            while let Some(mut line) = rx.recv().await {
                line.push(b'\n');
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

    let stop = shutdown::on_signals();
    let started = Instant::now();
    let mut sent = 0u64;
    while cli.count == 0 || sent < cli.count {
        if stop.is_cancelled() {
            break;
        }
        if cli.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / cli.rate);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        let line = generator.next_line();
        let connection = (sent % cli.connections as u64) as usize;
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
    tracing::info!(
        lines = sent,
        seed,
        "done: {sent} lines sent over {} connections in {:.1}s",
        cli.connections,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
