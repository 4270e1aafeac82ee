//! `log-gateway`: parse flags, load settings, receive lines until SIGTERM, drain and flush.

use clap::Parser;
use log_gateway::Cli;
use pipeline_runtime::{settings, shutdown, telemetry};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = settings::load_or_exit("log-gateway", cli.load());
    telemetry::init(&config.telemetry);
    match log_gateway::run(&config, shutdown::on_signals()).await {
        Ok(summary) => {
            tracing::info!(
                lines = summary.lines,
                dead_letters = summary.dead_letters,
                failed = summary.failed,
                unflushed = summary.unflushed,
                "stopped: {} lines and {} dead letters delivered, {} failed, {} not flushed",
                summary.lines,
                summary.dead_letters,
                summary.failed,
                summary.unflushed
            );
            if summary.failed > 0 || summary.unflushed > 0 {
                std::process::exit(1);
            }
        }
        Err(error) => {
            tracing::error!("log-gateway failed: {error:#}");
            std::process::exit(1);
        }
    }
}
