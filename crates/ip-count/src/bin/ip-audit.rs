//! `ip-audit`: checks both stages of a running or stopped IP-count deployment; exit 0 when
//! exactly right, 1 when anything differs, 2 for bad configuration.

use clap::Parser;
use pipeline_runtime::{settings, telemetry};

/// Reads access-logs, the repartition topic and ip-counts (read_committed), recomputes what
/// each stage must have written, and reports missing, duplicated, wrong and unexpected requests
/// and counts. It takes ip-counter's configuration (same file, PIPELINE__ variables and
/// flags) and can run on a live deployment: it judges what the stages have committed.
#[derive(Debug, Parser)]
#[command(name = "ip-audit", version)]
struct AuditCli {
    #[command(flatten)]
    counter: ip_count::service::Cli,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = AuditCli::parse();
    let config = settings::load_or_exit("ip-audit", cli.counter.load());
    telemetry::init_with_default(&config.telemetry, "warn");
    let report = match ip_count::audit::audit(&config.kafka, &config) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("ip-audit: {error:#}");
            std::process::exit(1);
        }
    };
    let passed = report.passed();
    if cli.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!(
            "audit {}: {}",
            if passed { "OK" } else { "FAILED" },
            report.summary()
        );
    }
    std::process::exit(if passed { 0 } else { 1 });
}
