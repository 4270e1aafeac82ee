//! `ip-counter`: parse flags, load settings, run both stages until stopped.

use clap::Parser;
use ip_count::service::Cli;
use pipeline_runtime::{settings, shutdown, telemetry};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = settings::load_or_exit("ip-counter", cli.load());
    telemetry::init(&config.telemetry);
    if let Err(error) = ip_count::service::run(&config, shutdown::on_signals()).await {
        tracing::error!("ip-counter failed: {error:#}");
        std::process::exit(1);
    }
}
