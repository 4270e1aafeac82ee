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

/// With faults on, what reaches the topic is exactly the seeded clean stream with the
/// injector's faults applied: every reading, its temperature, and its ground-truth headers;
/// dropouts are gaps in a sensor's `seq`.
#[test]
fn injected_faults_reach_the_topic_with_their_ground_truth() {
    use sensor_simulator::faults::{FaultKind, Outcome};
    use sensor_simulator::{FaultSettings, Generator, Injector, Profile};

    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("sim-faults");
    topics.create(&bootstrap, 1);
    let args: Vec<String> = [
        "--brokers",
        &bootstrap,
        "--topic",
        &topics.input,
        "--count",
        "6000",
        "--sensors",
        "6",
        "--seed",
        "5",
        "--rate",
        "0",
        "--fault-rate",
        "25",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut simulator = Service::simulator(&args);
    let status = simulator.wait(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        simulator.log_tail()
    );
    assert!(simulator.log().contains("injecting labelled faults"));

    // The same run, in process: the reference.
    let mut generator = Generator::new(6, 5, Profile::Realistic);
    let mut injector = Injector::new(
        5,
        6,
        FaultSettings {
            rate: 25.0,
            kinds: FaultKind::ALL.to_vec(),
        },
    );
    let mut expected = Vec::new();
    while expected.len() < 6000 {
        let sensor = generator.next_index();
        let (reading, spiked) = generator.next_reading_spiked(String::new());
        if let Outcome::Send { temperature, label } =
            injector.apply(sensor, reading.temperature, spiked)
        {
            expected.push((
                reading.sensor_id.to_string(),
                reading.seq,
                temperature,
                label.map(|l| (l.kind.name().to_owned(), l.id.to_string())),
            ));
        }
    }

    let actual: Vec<_> = read_topic(&bootstrap, &topics.input)
        .into_iter()
        .map(|r| {
            let value: serde_json::Value =
                serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
            let label = r
                .header("fault")
                .map(|kind| (kind.to_owned(), r.header("fault-id").unwrap().to_owned()));
            (
                value["sensor_id"].as_str().unwrap().to_owned(),
                value["seq"].as_u64().unwrap(),
                value["temperature"].as_f64().unwrap(),
                label,
            )
        })
        .collect();
    assert_eq!(actual.len(), 6000);
    assert!(
        actual == expected,
        "the topic differs from the seeded reference"
    );
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for (_, _, _, label) in &actual {
        if let Some((kind, _)) = label {
            *kinds.entry(kind.clone()).or_default() += 1;
        }
    }
    assert_eq!(kinds.len(), 6, "every kind injected: {kinds:?}");
    // A dropout is a gap in its sensor's seq, labelled on the reading after it; no other gap.
    let mut last_seq = std::collections::BTreeMap::<&str, u64>::new();
    for (sensor, seq, _, label) in &actual {
        if let Some(previous) = last_seq.insert(sensor, *seq) {
            let dropout = label.as_ref().is_some_and(|(kind, _)| kind == "dropout");
            assert_eq!(
                *seq > previous + 1,
                dropout,
                "{sensor}: seq {previous} then {seq}"
            );
        }
    }
    println!("simulator faults: 6000 readings, labelled per kind {kinds:?}");
}
