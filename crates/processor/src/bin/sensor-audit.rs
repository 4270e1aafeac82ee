//! `sensor-audit`: checks a deployment's output topic against its input topic.

use clap::Parser;
use pipeline_runtime::settings::{self, TelemetrySettings};
use pipeline_runtime::telemetry;

/// Reads the input and output topics (read_committed), recomputes with the reference semantics
/// what the output must be (every sensor's windows from the beginning of the input, as one
/// processor running alone and never interrupted would have done), and reports missing,
/// duplicated, wrong and unexpected events per sensor. Exit code 0 when the output is exactly
/// right, 1 when anything differs, 2 for bad configuration.
///
/// It takes the processor's configuration (same file, PIPELINE__ variables and flags), so it
/// audits what the processors were configured to do. It can run at any time, on a live
/// deployment: it judges the input below the processors' committed offsets, and leaves newer
/// input and its outputs for a later run (counted as "not processed yet" and "of newer
/// readings").
#[derive(Debug, Parser)]
#[command(name = "sensor-audit", version)]
struct Args {
    #[command(flatten)]
    processor: processor::Cli,
    /// Do not fail on duplicated events (an at_least_once deployment); still report them.
    #[arg(long)]
    allow_duplicates: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Most expected events held in memory; more input is checked in several passes.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    max_events_in_memory: usize,
}

fn main() {
    let args = Args::parse();
    let config = settings::load_or_exit("sensor-audit", args.processor.load());
    telemetry::init(&TelemetrySettings::default());
    let report = match processor::audit::audit(
        &config.kafka,
        &config.processor,
        args.max_events_in_memory,
    ) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("sensor-audit: {error:#}");
            std::process::exit(1);
        }
    };
    let passed = report.passed(args.allow_duplicates);
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        for (sensor, diff) in report.sensors.iter().take(20) {
            println!(
                "{sensor}: {} missing, {} duplicated, {} wrong, {} unexpected",
                diff.missing, diff.duplicated, diff.wrong, diff.unexpected
            );
        }
        for m in &report.missing_events {
            println!(
                "missing: {} seq {} {} (input partition {} offset {})",
                m.sensor_id, m.seq, m.kind, m.partition, m.offset
            );
        }
        if report.sensors.len() > 20 {
            println!(
                "... and {} more sensors with differences",
                report.sensors.len() - 20
            );
        }
        println!(
            "audit {}: {}",
            if passed { "OK" } else { "FAILED" },
            report.summary()
        );
    }
    std::process::exit(if passed { 0 } else { 1 });
}
