//! `dashboard`: parse flags, load settings, serve until SIGTERM.

use clap::Parser;
use dashboard::Cli;
use pipeline_runtime::{settings, shutdown, telemetry};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = settings::load_or_exit("dashboard", cli.load());
    telemetry::init(&config.telemetry);
    if let Err(error) = dashboard::run(&config, shutdown::on_signals()).await {
        tracing::error!("dashboard failed: {error:#}");
        std::process::exit(1);
    }
}
