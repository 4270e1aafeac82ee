//! `processor`: parse flags, load settings, process until stopped.

use clap::Parser;
use pipeline_runtime::{EXIT_BAD_CONFIG, shutdown, telemetry};
use processor::Cli;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = match cli.load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("processor: {error}");
            std::process::exit(EXIT_BAD_CONFIG);
        }
    };
    telemetry::init(&config.telemetry);
    if let Err(error) = processor::run(&config, shutdown::on_signals()).await {
        tracing::error!("processor failed: {error:#}");
        std::process::exit(1);
    }
}
