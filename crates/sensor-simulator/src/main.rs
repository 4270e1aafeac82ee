//! `sensor-simulator`: parse flags, load settings, publish until done or stopped.

use clap::Parser;
use pipeline_runtime::{settings, shutdown, telemetry};
use sensor_simulator::Cli;
use sensor_simulator::publisher::now_rfc3339;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = settings::load_or_exit("sensor-simulator", cli.load());
    if cli.print {
        // stdout carries the readings: no logging set up, errors to stderr.
        let seed = config.simulator.seed.unwrap_or_else(rand::random);
        let stdout = std::io::stdout().lock();
        if let Err(error) = sensor_simulator::print(&config.simulator, seed, now_rfc3339, stdout) {
            eprintln!("sensor-simulator: writing to stdout failed: {error}");
            std::process::exit(1);
        }
        return;
    }
    telemetry::init(&config.telemetry);
    match sensor_simulator::run(&config, shutdown::on_signals()).await {
        Ok(summary) => {
            let rate = summary.delivered as f64 / summary.elapsed_secs.max(1e-9);
            tracing::info!(
                delivered = summary.delivered,
                failed = summary.failed,
                seed = summary.seed,
                "done: {} readings delivered to {} in {:.1}s ({rate:.0}/s), {} failed",
                summary.delivered,
                config.simulator.topic,
                summary.elapsed_secs,
                summary.failed
            );
            if summary.failed > 0 {
                std::process::exit(1);
            }
        }
        Err(error) => {
            tracing::error!("sensor-simulator failed: {error:#}");
            std::process::exit(1);
        }
    }
}
