//! The simulator on a real broker: seeded reproducibility, profiles, pacing, and the contract.

use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::read_topic;
use e2e_tests::service::Service;
use e2e_tests::topics::PipelineTopics;
use sensor_contract::{DecodeOptions, RawRecord, Reading};

/// Readings with the record key they were published under.
type KeyedReadings = Vec<(Option<Vec<u8>>, Reading<'static>)>;

/// Publishes with `args` into a fresh one-partition topic and returns the readings in order.
fn publish(bootstrap: &str, args: &[&str]) -> (KeyedReadings, Duration) {
    let topics = PipelineTopics::unique("sim");
    topics.create(bootstrap, 1);
    let mut all = vec!["--brokers", bootstrap, "--topic", &topics.input];
    all.extend_from_slice(args);
    let started = Instant::now();
    let mut simulator = Service::simulator(&all.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let status = simulator.wait(Duration::from_secs(60));
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "simulator failed\n{}",
        simulator.log_tail()
    );
    assert!(
        simulator.log().contains("readings delivered"),
        "summary line\n{}",
        simulator.log_tail()
    );
    let readings = read_topic(bootstrap, &topics.input)
        .into_iter()
        .map(|r| {
            let raw = RawRecord {
                key: r.key.as_deref(),
                payload: r.payload.as_deref(),
                timestamp_ms: r.timestamp_ms,
                offset: r.offset,
            };
            let reading = Reading::decode(&raw, &DecodeOptions::default())
                .expect("the simulator publishes valid v1 readings")
                .into_owned();
            let value: serde_json::Value =
                serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).unwrap();
            for field in ["sensor_id", "seq", "temperature", "timestamp"] {
                assert!(
                    value.get(field).is_some(),
                    "contract field {field} missing: {value}"
                );
            }
            (r.key, reading)
        })
        .collect();
    (readings, took)
}

/// Everything but the wall-clock timestamp.
fn values(readings: &[(Option<Vec<u8>>, Reading<'_>)]) -> Vec<(Option<Vec<u8>>, String, u64, f64)> {
    readings
        .iter()
        .map(|(k, r)| (k.clone(), r.sensor_id.to_string(), r.seq, r.temperature))
        .collect()
}

#[test]
fn the_same_seed_publishes_the_same_readings_keyed_by_sensor() {
    let bootstrap = shared_bootstrap();
    let args = [
        "--count",
        "700",
        "--sensors",
        "7",
        "--seed",
        "99",
        "--rate",
        "0",
    ];
    let (a, _) = publish(&bootstrap, &args);
    let (b, _) = publish(&bootstrap, &args);
    assert_eq!(a.len(), 700);
    assert_eq!(values(&a), values(&b));
    let (c, _) = publish(
        &bootstrap,
        &[
            "--count",
            "700",
            "--sensors",
            "7",
            "--seed",
            "100",
            "--rate",
            "0",
        ],
    );
    assert_ne!(values(&a), values(&c));
    for (key, reading) in &a {
        assert_eq!(
            key.as_deref(),
            Some(reading.sensor_id.as_bytes()),
            "keyed by sensor id"
        );
    }
    let per_sensor = a
        .iter()
        .filter(|(_, r)| r.sensor_id == "sensor-0006")
        .map(|(_, r)| r.seq)
        .collect::<Vec<_>>();
    assert_eq!(
        per_sensor,
        (0..100).collect::<Vec<_>>(),
        "seq is +1 per reading of a sensor"
    );
}

#[test]
fn uniform_profile_and_rate_pacing() {
    let bootstrap = shared_bootstrap();
    let (readings, took) = publish(
        &bootstrap,
        &[
            "--count",
            "500",
            "--rate",
            "250",
            "--profile",
            "uniform",
            "--seed",
            "3",
        ],
    );
    assert_eq!(readings.len(), 500);
    assert!(
        readings
            .iter()
            .all(|(_, r)| (0.0..=50.0).contains(&r.temperature))
    );
    // Reading n is due n/250 s after the start: 500 readings cannot take less than ~2 s.
    assert!(
        took >= Duration::from_millis(1990),
        "500 readings at 250/s took only {took:?}"
    );
}
