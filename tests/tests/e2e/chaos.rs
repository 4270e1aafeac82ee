//! Chaos on the real broker: replicas killed with SIGKILL and restarted, scaled 3 → 1 → 3, the
//! broker restarted, while the simulator keeps publishing. Then the audit compares the output
//! with what one processor running alone, never interrupted, would have produced.
//!
//! Both guarantees go through the same chaos side by side, on one broker of the test's own:
//! each pipeline has its topics, group, three replicas and simulator, and each kill or stop
//! hits a replica of each. One run instead of two halves the broker starts and the time the run
//! holds three of the suite's slots.

use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::pipelines::{REPLICAS, TemperaturePipeline as Pipeline};

/// Stops the simulator, waits until the replicas have committed all of it, audits the output,
/// and stops the replicas.
fn finish(pipeline: &mut Pipeline, bootstrap: &str, started: Instant) {
    let guarantee = pipeline.guarantee;
    pipeline.stop_simulator();
    pipeline.wait_caught_up(bootstrap, Duration::from_secs(120));
    let audit = pipeline.audit(bootstrap);
    let (report, readings) = (&audit.report, audit.readings);
    let chaos = &pipeline.replicas;
    let rebalances = chaos.count_in_logs("partitions assigned");
    let aborts = chaos.count_in_logs("transaction aborted, the batch will be processed again");
    println!(
        "chaos {guarantee}: {readings} readings, {} kills, {} crashes restarted, {rebalances} assignments, 1 broker restart, \
         {} aborted transactions logged, {} events checked: {} missing, {} duplicated, {} wrong, {} unexpected ({:.0} s)",
        chaos.kills,
        chaos.crashes,
        aborts,
        report["expected_events"],
        report["missing"],
        report["duplicated"],
        report["wrong"],
        report["unexpected"],
        started.elapsed().as_secs_f64()
    );
    let clean = report["missing"] == 0 && report["wrong"] == 0 && report["unexpected"] == 0;
    if !clean || (guarantee == "exactly_once" && report["duplicated"] != 0) {
        let dir = keep_logs(pipeline);
        let sensors: Vec<_> = report["sensors"]
            .as_object()
            .map(|m| m.iter().take(5).collect())
            .unwrap_or_default();
        eprintln!(
            "chaos: logs kept in {}; first sensors with differences: {sensors:?}",
            dir.display()
        );
        pipeline.print_checkpoints_near_missing(bootstrap, report);
    }
    assert!(
        readings > 5_000,
        "{guarantee}: the simulator kept publishing: {readings}"
    );
    for key in [
        "unusable_input",
        "missing",
        "wrong",
        "unexpected",
        "undecodable_output",
    ] {
        assert_eq!(report[key], 0, "{guarantee}: {key}: {report}");
    }
    if guarantee == "exactly_once" {
        assert_eq!(report["duplicated"], 0, "{report}");
    }
    assert_eq!(audit.status.code(), Some(0), "{report}");
    for i in 0..REPLICAS {
        pipeline.replicas.stop(i);
    }
}

/// Keeps every replica's log and the simulator's under `target/chaos-logs/<group>`; returns
/// the directory.
fn keep_logs(pipeline: &Pipeline) -> std::path::PathBuf {
    let dir = e2e_tests::repo_root()
        .join("target/chaos-logs")
        .join(&pipeline.topics.group);
    pipeline.replicas.save_logs(&dir);
    pipeline.simulator.save_log(&dir.join("simulator.log"));
    dir
}

/// Waits `duration`, restarting (and counting) every replica of `pipelines` that exits.
fn pause(pipelines: &mut [Pipeline], duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        for pipeline in pipelines.iter_mut() {
            pipeline.replicas.supervise();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILLs a random replica of each pipeline and starts it again under the same name.
fn kill_one_of_each(pipelines: &mut [Pipeline]) {
    for pipeline in pipelines.iter_mut() {
        let victim = rand::random_range(0..REPLICAS);
        pipeline.replicas.kill(victim);
        pipeline.replicas.start(victim);
    }
}

#[test]
fn chaos_loses_nothing_under_either_guarantee_and_repeats_nothing_exactly_once() {
    let started = Instant::now();
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    let mut pipelines = [
        Pipeline::start(&bootstrap, "chaos", "exactly_once", "21", "400"),
        Pipeline::start(&bootstrap, "chaos", "at_least_once", "22", "400"),
    ];

    // Kill a random replica of each every couple of seconds and start it again.
    for _ in 0..6 {
        pause(
            &mut pipelines,
            Duration::from_millis(1500 + rand::random_range(0..1500)),
        );
        for pipeline in pipelines.iter_mut() {
            let victim = rand::random_range(0..REPLICAS);
            pipeline.replicas.kill(victim);
            pipeline
                .replicas
                .pause(Duration::from_millis(rand::random_range(0..500)));
            pipeline.replicas.start(victim);
        }
    }
    // Scale 3 → 1 → 3.
    pause(&mut pipelines, Duration::from_secs(2));
    for pipeline in pipelines.iter_mut() {
        pipeline.replicas.stop(1);
        pipeline.replicas.stop(2);
    }
    pause(&mut pipelines, Duration::from_secs(4));
    for pipeline in pipelines.iter_mut() {
        pipeline.replicas.start(1);
        pipeline.replicas.start(2);
    }
    pause(&mut pipelines, Duration::from_secs(4));
    // Restart the broker under everyone's feet.
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.start();
    pause(&mut pipelines, Duration::from_secs(6));
    // Two more kills after the broker is back.
    for _ in 0..2 {
        kill_one_of_each(&mut pipelines);
        pause(&mut pipelines, Duration::from_secs(2));
    }

    for i in 0..pipelines.len() {
        // Whatever fails (an audit, or a wait before it), the logs are kept.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            finish(&mut pipelines[i], &bootstrap, started)
        }));
        if let Err(panic) = outcome {
            for pipeline in &pipelines {
                eprintln!("chaos: logs kept in {}", keep_logs(pipeline).display());
            }
            std::panic::resume_unwind(panic);
        }
    }
}
