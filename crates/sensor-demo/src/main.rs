//! `sensor-demo`: the whole system in one process on an in-process mock broker, until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pipeline_runtime::settings::TelemetrySettings;
use pipeline_runtime::{shutdown, telemetry};
use sensor_demo::{DemoOptions, check_free, database_file, describe};

/// Runs the whole system in one process on librdkafka's in-process mock Kafka cluster: the
/// temperature pipeline (simulator, processor replicas), the network-log pipeline (a log
/// simulator sending to the log gateway, the IP counter), each sensor's online model (a few
/// faults are injected for it to find), the results in an SQLite file and the dashboard. Prints
/// the dashboard's address, then the alerts, averages and anomalies as they are written.
/// A demo: for real Kafka use docker compose or scripts/kafka.sh.
#[derive(Debug, Parser)]
#[command(name = "sensor-demo", version)]
struct Args {
    /// Sensors to simulate.
    #[arg(long, default_value_t = 12)]
    sensors: u32,
    /// Readings per second, all sensors together.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Processor replicas.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Seed of the simulators.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The dashboard's address.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    dashboard: SocketAddr,
    /// The log gateway's address (send your own lines: nc -N 127.0.0.1 5140).
    #[arg(long, default_value = "127.0.0.1:5140", value_name = "HOST:PORT")]
    gateway: SocketAddr,
    /// Access-log lines per second from the log simulator; 0: only yours.
    #[arg(long, default_value_t = 50.0, value_name = "R")]
    log_rate: f64,
    /// The IP counter's window, seconds (short, so counts show soon).
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    window_secs: f64,
    /// Keep the results file when the demo stops (its path is printed).
    #[arg(long)]
    keep: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // Errors only: the screen is for events (RUST_LOG=info shows the services' logs). The
    // mock coordinator also rejects commits during the final rebalance, which the real
    // broker does not; those warnings would only confuse here.
    telemetry::init_with_default(&TelemetrySettings::default(), "error");
    if let Err(error) = run(args).await {
        eprintln!("sensor-demo: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be > 0"
    );
    anyhow::ensure!(
        args.log_rate.is_finite() && args.log_rate >= 0.0,
        "--log-rate must be ≥ 0"
    );
    anyhow::ensure!(
        args.window_secs.is_finite() && args.window_secs >= 1.0,
        "--window-secs must be ≥ 1"
    );
    // Before anything starts, so that a taken port is the first and only thing said.
    check_free(args.dashboard, "--dashboard")?;
    check_free(args.gateway, "--gateway")?;
    let dir = tempfile::Builder::new()
        .prefix("sensor-demo-")
        .tempdir()
        .context("creating a directory for the results")?;
    let options = DemoOptions {
        sensors: args.sensors,
        rate: args.rate,
        replicas: args.replicas,
        seed: args.seed,
        log_rate: args.log_rate,
        window: Duration::from_secs_f64(args.window_secs),
        dashboard: args.dashboard,
        gateway: args.gateway,
        data_dir: dir.path().to_owned(),
    };
    println!("Dashboard: http://{}/", args.dashboard);
    println!(
        "sensor-demo: an in-process MOCK Kafka cluster; {} sensors at {}/s, {} processor replicas; \
         access logs at {}/s into the gateway on {} (try: echo 'GET / from 203.0.113.9' | nc -N {} {}), \
         counted per {} s window; results in {}; Ctrl-C to stop",
        args.sensors,
        args.rate,
        args.replicas,
        args.log_rate,
        args.gateway,
        args.gateway.ip(),
        args.gateway.port(),
        args.window_secs,
        database_file(&options).display()
    );

    let stop = shutdown::on_signals();
    if let Some(secs) = args.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.cancel();
        });
    }
    let on_closed_output = stop.clone();
    let mut out = std::io::stdout();
    let result = sensor_demo::run(&options, stop, |seen| {
        // Output closed (`sensor-demo | head`): stop like Ctrl-C instead of panicking.
        if writeln!(out, "{}", describe(seen)).is_err() {
            on_closed_output.cancel();
        }
    })
    .await;
    if args.keep {
        let kept = dir.keep();
        println!("results kept in {}", kept.join("results.db").display());
    }
    result
}
