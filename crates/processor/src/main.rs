//! `processor`: parse flags, load settings, process until stopped.

use clap::Parser;
use pipeline_runtime::{settings, shutdown, telemetry};
use processor::Cli;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = settings::load_or_exit("processor", cli.load());
    telemetry::init(&config.telemetry);
    if let Err(error) = processor::run(&config, shutdown::on_signals()).await {
        tracing::error!("processor failed: {error:#}");
        std::process::exit(1);
    }
}
