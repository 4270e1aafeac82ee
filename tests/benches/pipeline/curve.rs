//! `scripts/bench.sh latency`: the latency–throughput curve of the temperature job.
//!
//! Each configuration (the processor under both guarantees with one and two replicas, and the
//! Kafka Streams job under both) is first run over a pre-loaded topic for its capacity
//! (readings/s to zero lag); then the simulator offers it 10, 25, 50, 75 and 90 % of that, live,
//! for BENCH_LATENCY_SECS (10) each, and a `read_committed` reader takes each output event's
//! end-to-end latency (reading taken → event readable); the processors' own histogram (Kafka
//! timestamp → outputs committed) gives their share apart from the reader's, as the bucket bound
//! their p99 falls under. Loads are the outer loop, so a slow
//! spell of the shared machine spreads over every configuration. Prints one row per point,
//! writes `target/bench/latency.json` and the plot `target/bench/latency.svg` (p50 and p99
//! against offered load).

use plotters::prelude::*;
use serde_json::{Value, json};

use super::{
    Runner, env_or, kafka_streams, latency, preload, repo_root, stage_bounds, start_broker,
    throughput,
};
use e2e_tests::topics::PipelineTopics;

/// Offered load, as a share of the configuration's capacity.
const LOADS: [f64; 5] = [0.10, 0.25, 0.50, 0.75, 0.90];

/// One configuration on the curve.
struct Config {
    name: String,
    runner: Runner,
    guarantee: &'static str,
}

fn configs() -> Vec<Config> {
    let mut configs = Vec::new();
    for guarantee in ["at_least_once", "exactly_once"] {
        for replicas in [1, 2] {
            configs.push(Config {
                name: format!(
                    "processor {guarantee}, {replicas} replica{}",
                    if replicas > 1 { "s" } else { "" }
                ),
                runner: Runner::Processor(replicas),
                guarantee,
            });
        }
        configs.push(Config {
            name: format!("Kafka Streams {guarantee}"),
            runner: Runner::Streams,
            guarantee,
        });
    }
    configs
}

/// Runs the curve; `seconds` per point.
pub(crate) fn run(seconds: u64) {
    let readings: u64 = env_or("BENCH_READINGS", 1_000_000);
    let sensors: u64 = env_or("BENCH_SENSORS", 10_000);
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topics = PipelineTopics::unique("bench-curve");
    topics.create(&bootstrap, 6);
    eprintln!("pre-loading {readings} readings from {sensors} sensors...");
    preload(&bootstrap, &topics, readings, sensors);

    let configs = configs();
    let capacities: Vec<f64> = configs
        .iter()
        .map(|config| {
            eprintln!("capacity: {}...", config.name);
            let run = match config.runner {
                Runner::Processor(replicas) => throughput(
                    &bootstrap,
                    &topics,
                    readings,
                    config.guarantee,
                    replicas,
                    &[],
                ),
                Runner::Streams => kafka_streams(&bootstrap, &topics, readings, config.guarantee),
            };
            eprintln!("  {:.0} readings/s", run.rate());
            run.rate()
        })
        .collect();

    let mut points: Vec<Value> = Vec::new();
    for load in LOADS {
        for (config, capacity) in configs.iter().zip(&capacities) {
            let rate = (capacity * load).round() as u64;
            eprintln!(
                "latency: {} at {:.0} % ({rate} readings/s) for {seconds} s...",
                config.name,
                load * 100.0
            );
            let mut point = latency(
                &bootstrap,
                config.runner,
                config.guarantee,
                rate,
                seconds,
                &[],
            );
            point["config"] = json!(config.name);
            point["load"] = json!(load);
            point["capacity"] = json!(capacity.round());
            eprintln!("  {point}");
            points.push(point);
        }
    }
    broker.stop();

    println!();
    println!(
        "{:<36} {:>5} {:>10} {:>10} {:>8} {:>8} {:>9} {:>8} {:>14} {:>26} {:>6} {:>10}",
        "latency curve",
        "load",
        "offered/s",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "processor p99",
        "p99 wait/process/commit",
        "busy %",
        "job CPU-s/M"
    );
    for config in &configs {
        for point in points.iter().filter(|p| p["config"] == config.name) {
            println!(
                "{:<36} {:>4.0}% {:>10} {:>10} {:>8} {:>8} {:>9} {:>8} {:>14} {:>26} {:>6} {:>10}",
                config.name,
                point["load"].as_f64().unwrap_or(0.0) * 100.0,
                point["rate"],
                point["achieved_per_second"],
                point["p50_ms"],
                point["p99_ms"],
                point["p999_ms"],
                point["max_ms"],
                point["processor_p99_at_most_ms"]
                    .as_f64()
                    .map_or("-".to_owned(), |ms| format!("<= {ms}")),
                stage_bounds(&point["processor_stages_p99_at_most_ms"]),
                point["machine_busy_percent"],
                point["job_cpu_seconds_per_million"],
            );
        }
    }
    let dir = repo_root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let report = json!({
        "seconds_per_point": seconds,
        "capacities": configs.iter().zip(&capacities)
            .map(|(c, r)| json!({ "config": c.name, "readings_per_second": r.round() }))
            .collect::<Vec<_>>(),
        "points": points,
    });
    let json_path = dir.join("latency.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).expect("JSON"),
    )
    .expect("write the figures");
    let svg_path = dir.join("latency.svg");
    match plot(&svg_path, &configs, &points) {
        Ok(()) => eprintln!("written {} and {}", json_path.display(), svg_path.display()),
        Err(error) => panic!("plotting {}: {error}", svg_path.display()),
    }
}

/// p50 and p99 against offered load, one line per configuration, log scale.
fn plot(
    path: &std::path::Path,
    configs: &[Config],
    points: &[Value],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let highest = points
        .iter()
        .filter_map(|p| p["max_ms"].as_f64())
        .fold(10.0, f64::max);
    for (panel, (title, field)) in panels.iter().zip([("p50", "p50_ms"), ("p99", "p99_ms")]) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("end-to-end latency, {title} (reading taken -> event readable)"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..100f64, (1f64..highest * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("offered load, % of the configuration's capacity")
            .y_desc("ms")
            .draw()?;
        for (i, config) in configs.iter().enumerate() {
            let color = Palette99::pick(i).mix(0.9);
            let series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p["config"] == config.name)
                .filter_map(|p| Some((p["load"].as_f64()? * 100.0, p[field].as_f64()?.max(1.0))))
                .collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
                .label(config.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(series.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
