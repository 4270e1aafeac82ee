//! The operator's endpoints on a real broker: `/metrics` counters equal what was sent and
//! processed, and `/healthz` and `/readyz` say what they should.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::{produce, producer, read_topic, wait_for_group, wait_until_consumed};
use e2e_tests::service::scrape;
use e2e_tests::service::{Service, http_get, simulator_args, wait_ready};
use e2e_tests::topics::PipelineTopics;

#[test]
fn metrics_and_health_match_what_was_sent_and_processed() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("metrics");
    topics.create(&bootstrap, 6);
    let mut processor = Service::processor(&topics.processor_args(&bootstrap));
    let address = processor.http_address(Duration::from_secs(30));
    assert_eq!(http_get(&address, "/healthz").0, 200);
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));
    wait_ready(&address);

    let args = simulator_args(
        &bootstrap,
        &topics.input,
        &["--sensors", "30", "--rate", "600", "--seed", "9"],
    );
    let mut simulator = Service::simulator(&args);
    let sim_address = simulator.http_address(Duration::from_secs(30));
    wait_ready(&sim_address);
    std::thread::sleep(Duration::from_secs(3));
    let sent_then = scrape(&sim_address)["sensor_readings_sent_total"];
    std::thread::sleep(Duration::from_secs(1));
    let sim = scrape(&sim_address);
    assert!(
        sim["sensor_readings_sent_total"] > sent_then && sent_then > 0.0,
        "the sent counter grows"
    );
    assert_eq!(sim["sensor_send_errors_total"], 0.0);
    simulator.stop(Duration::from_secs(30));

    // Some unusable records too.
    let producer = producer(&bootstrap);
    for bad in [&b"not json"[..], b"[1]", b"{\"temperature\":\"x\"}"] {
        produce(
            &producer,
            &topics.input,
            None,
            Some(b"sensor-0001"),
            bad,
            None,
        );
    }
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(60),
    );

    let input = read_topic(&bootstrap, &topics.input);
    let output = read_topic(&bootstrap, &topics.output);
    let readings = input.len() as f64 - 3.0;
    assert!(
        sim["sensor_readings_sent_total"] <= readings,
        "every counted reading is in the topic"
    );
    let of_type = |kind: &str| {
        output
            .iter()
            .filter(|r| r.header("event-type").as_deref() == Some(kind))
            .count() as f64
    };

    // Counters move at commit, and statistics (lag) every 5 s: wait for both to settle.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let m = scrape(&address);
        let lags = lags(&m);
        if m.get("sensor_readings_consumed_total") == Some(&(input.len() as f64))
            && lags.len() == 6
            && lags.iter().all(|l| *l == 0.0)
        {
            break m;
        }
        assert!(Instant::now() < deadline, "metrics did not settle: {m:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        metrics[r#"sensor_events_produced_total{type="alert"}"#],
        of_type("alert")
    );
    assert_eq!(
        metrics[r#"sensor_events_produced_total{type="average"}"#],
        of_type("average")
    );
    assert_eq!(
        metrics[r#"sensor_dead_letters_total{reason="not_json"}"#],
        1.0
    );
    assert_eq!(
        metrics[r#"sensor_dead_letters_total{reason="not_object"}"#],
        1.0
    );
    assert_eq!(
        metrics[r#"sensor_dead_letters_total{reason="wrong_type"}"#],
        1.0
    );
    assert_eq!(metrics["sensor_assigned_partitions"], 6.0);
    assert_eq!(metrics["sensor_sensors_in_memory"], 30.0);
    assert!(metrics["sensor_rebalances_total"] >= 1.0);
    assert!(metrics[r#"sensor_batches_total{outcome="committed"}"#] >= 1.0);
    assert_eq!(
        metrics["sensor_end_to_end_latency_seconds_count"],
        input.len() as f64
    );
    assert_eq!(metrics["sensor_restore_duration_seconds_count"], 6.0);
    // One wait per batch processed, committed or aborted.
    assert_eq!(
        metrics["sensor_input_wait_seconds_count"],
        metrics[r#"sensor_batches_total{outcome="committed"}"#]
            + metrics
                .get(r#"sensor_batches_total{outcome="aborted"}"#)
                .copied()
                .unwrap_or(0.0)
    );
    for histogram in [
        "sensor_commit_duration_seconds",
        "sensor_batch_processing_duration_seconds",
        "sensor_input_wait_seconds",
    ] {
        assert!(metrics[&format!("{histogram}_count")] >= 1.0, "{histogram}");
        assert!(
            metrics.contains_key(&format!(r#"{histogram}_bucket{{le="0.1"}}"#)),
            "{histogram} is a histogram"
        );
    }
    println!(
        "metrics: {readings} readings, {} alerts, {} averages, 3 dead letters, all counted",
        of_type("alert"),
        of_type("average")
    );
    assert_eq!(http_get(&address, "/healthz").0, 200);
    assert_eq!(http_get(&address, "/readyz").0, 200);
    processor.stop(Duration::from_secs(15));
}

fn consumer_quota(bootstrap: &str, client_id: &str, bytes_per_second: Option<u32>) {
    e2e_tests::kafka_io::client_quota(bootstrap, client_id, "consumer_byte_rate", bytes_per_second);
}

fn lags(metrics: &HashMap<String, f64>) -> Vec<f64> {
    (0..6)
        .filter_map(|p| {
            metrics
                .get(&format!("sensor_consumer_lag{{partition=\"{p}\"}}"))
                .copied()
        })
        .collect()
}

/// A processor that cannot keep up reports the lag: the broker throttles its fetches with a
/// client quota while the simulator produces, so the records pile up. The reported lag is
/// above zero and no more than what is not yet consumed; with the quota lifted it drains to 0.
#[test]
fn lag_shows_a_processor_falling_behind_and_catching_up() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("lag");
    topics.create(&bootstrap, 6);
    let client_id = e2e_tests::unique("lagging-processor");
    consumer_quota(&bootstrap, &client_id, Some(1000));

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("lag.toml");
    let docker = std::fs::read_to_string(e2e_tests::repo_root().join("config/docker.toml"))
        .expect("config/docker.toml");
    std::fs::write(
        &config,
        format!(
            "{docker}\n[kafka.properties]\n\"client.id\" = \"{client_id}\"\n\"statistics.interval.ms\" = \"500\"\n"
        ),
    )
    .expect("write config");
    let mut args = topics.processor_args(&bootstrap);
    args.extend(["--config".to_owned(), config.display().to_string()]);
    let mut processor = Service::processor(&args);
    let address = processor.http_address(Duration::from_secs(30));
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));
    wait_ready(&address);

    let total = 3000.0;
    let args = simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--sensors",
            "30",
            "--rate",
            "1000",
            "--count",
            "3000",
            "--seed",
            "4",
        ],
    );
    Service::simulator(&args).wait_success(Duration::from_secs(60));

    let deadline = Instant::now() + Duration::from_secs(30);
    let (lag, consumed) = loop {
        let m = scrape(&address);
        let lag: f64 = lags(&m).iter().sum();
        let consumed = m
            .get("sensor_readings_consumed_total")
            .copied()
            .unwrap_or(0.0);
        if lag > 0.0 {
            break (lag, consumed);
        }
        assert!(
            Instant::now() < deadline,
            "no lag reported while throttled (consumed {consumed} of {total}): {m:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("throttled: lag {lag}, consumed {consumed} of {total}");
    assert!(
        lag <= total - consumed,
        "lag {lag} counts only unconsumed records ({consumed} of {total} consumed)"
    );
    assert!(
        e2e_tests::kafka_io::lag(&bootstrap, &topics.group, &topics.input) > 0,
        "the group's committed offsets are behind too"
    );

    consumer_quota(&bootstrap, &client_id, None);
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(&address);
        let lags = lags(&m);
        if m.get("sensor_readings_consumed_total") == Some(&total)
            && lags.len() == 6
            && lags.iter().all(|l| *l == 0.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the lag did not drain: {m:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    processor.stop(Duration::from_secs(30));
}
