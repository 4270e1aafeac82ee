//! `pg-sink`: parse flags, load settings, write results until SIGTERM, then the batch in hand.

use clap::Parser;
use pg_sink::Cli;
use pipeline_runtime::{settings, shutdown, telemetry};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = settings::load_or_exit("pg-sink", cli.load());
    telemetry::init(&config.telemetry);
    match pg_sink::run(&config, shutdown::on_signals()).await {
        Ok(summary) => {
            tracing::info!(
                transactions = summary.transactions,
                rows = summary.rows,
                dead_letters = summary.dead_letters,
                unwritten = summary.unwritten,
                "stopped: {} rows in {} transactions, {} dead letters, {} records not written",
                summary.rows,
                summary.transactions,
                summary.dead_letters,
                summary.unwritten
            );
            if summary.unwritten > 0 {
                std::process::exit(1);
            }
        }
        Err(error) => {
            tracing::error!("pg-sink failed: {error:#}");
            std::process::exit(1);
        }
    }
}
