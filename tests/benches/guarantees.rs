//! Throughput of `at_least_once` and `exactly_once` on a real broker: pre-loads the input topic,
//! then times a processor from start until it has committed the whole topic. Run with
//! `scripts/bench.sh` (it builds the release binaries first). Prints a table; asserts nothing.

use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::lag;
use e2e_tests::service::{Service, simulator_args};
use e2e_tests::topics::PipelineTopics;

fn main() {
    let readings: u64 = std::env::var("BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let sensors = std::env::var("BENCH_SENSORS").unwrap_or_else(|_| "10000".into());
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let topics = PipelineTopics::unique("bench");
    topics.create(&bootstrap, 6);

    let started = Instant::now();
    let count = readings.to_string();
    let args = simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            &count,
            "--rate",
            "0",
            "--sensors",
            &sensors,
            "--seed",
            "1",
        ],
    );
    let mut simulator = Service::simulator(&args);
    simulator.wait_success(Duration::from_secs(600));
    let load = started.elapsed().as_secs_f64();
    println!(
        "pre-loaded {readings} readings from {sensors} sensors in {load:.1} s ({:.0}/s)",
        readings as f64 / load
    );

    println!(
        "{:<15} {:>10} {:>12} {:>14}",
        "guarantee", "seconds", "readings/s", "vs at_least_once"
    );
    let mut baseline = None;
    for guarantee in ["at_least_once", "exactly_once"] {
        let mut run = topics.clone();
        run.group = e2e_tests::unique(&format!("bench-{}", guarantee.replace('_', "-")));
        let mut args = run.processor_args(&bootstrap);
        args.extend([
            "--processing-guarantee".into(),
            guarantee.into(),
            "--instance-id".into(),
            "bench".into(),
        ]);
        let started = Instant::now();
        let mut processor = Service::processor(&args);
        while lag(&bootstrap, &run.group, &run.input) > 0 {
            assert!(processor.is_running(), "{}", processor.log_tail());
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "did not finish in 15 minutes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let seconds = started.elapsed().as_secs_f64();
        let rate = readings as f64 / seconds;
        let ratio = baseline.map_or("1.00".to_string(), |b: f64| format!("{:.2}", rate / b));
        baseline.get_or_insert(rate);
        println!("{guarantee:<15} {seconds:>10.2} {rate:>12.0} {ratio:>14}");
        processor.terminate(Duration::from_secs(20));
    }
}
