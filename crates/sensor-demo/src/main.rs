//! `sensor-demo`: the pipeline on an in-process mock broker, until Ctrl-C.

use std::io::Write;

use clap::Parser;
use pipeline_runtime::settings::TelemetrySettings;
use pipeline_runtime::{shutdown, telemetry};
use sensor_demo::{DemoOptions, describe};

/// Runs the whole pipeline in one process on librdkafka's in-process mock Kafka cluster: the
/// simulator, three processor replicas in one consumer group, and a live view of the alerts
/// and averages they write. A demo: for real Kafka use docker compose or scripts/kafka.sh.
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
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Errors only: the screen is for events (RUST_LOG=info shows the services' logs). The
    // mock coordinator also rejects commits during the final rebalance, which the real
    // broker does not; those warnings would only confuse here.
    telemetry::init_with_default(&TelemetrySettings::default(), "error");
    let stop = shutdown::on_signals();
    if let Some(secs) = args.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            stop.cancel();
        });
    }
    println!(
        "sensor-demo: {} sensors at {}/s into an in-process MOCK Kafka cluster, {} processor replicas; Ctrl-C to stop",
        args.sensors, args.rate, args.replicas
    );
    let options = DemoOptions {
        sensors: args.sensors,
        rate: args.rate,
        replicas: args.replicas,
        seed: args.seed,
    };
    let on_closed_output = stop.clone();
    let mut out = std::io::stdout();
    sensor_demo::run(&options, stop, |event| {
        // Output closed (`sensor-demo | head`): stop like Ctrl-C instead of panicking.
        if writeln!(out, "{}", describe(event)).is_err() {
            on_closed_output.cancel();
        }
    })
    .await
}
