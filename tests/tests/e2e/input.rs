//! Input the processor must handle on a real broker: the original producer's bare records, and
//! a corpus of broken records mixed into valid traffic.

use std::collections::HashMap;
use std::time::Duration;

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::expect::{actual_events, assert_same_events, expected_events};
use e2e_tests::kafka_io::{produce, producer, read_topic, wait_for_group, wait_until_consumed};
use e2e_tests::service::Service;
use e2e_tests::topics::PipelineTopics;
use sensor_contract::reading::format_millis;
use sensor_contract::{ProcessingRules, Reading, reference};

#[test]
fn the_original_python_producers_bare_records_are_processed() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("legacy");
    // One partition, like the original example's topic, so the keyless records share a window.
    topics.create(&bootstrap, 1);
    let mut processor = Service::processor(&topics.processor_args(&bootstrap));
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));

    // What kafka-python's producer sent: {"temperature": t}, JSON, no key.
    let temperatures = [
        12.5, 40.0, 40.01, 33.0, 47.5, 21.0, 18.25, 39.99, 44.0, 25.0, 30.0, 41.0, 9.5, 22.0, 50.0,
    ];
    let producer = producer(&bootstrap);
    for t in temperatures {
        produce(
            &producer,
            &topics.input,
            None,
            None,
            format!("{{\"temperature\": {t}}}").as_bytes(),
            None,
        );
    }
    // The same shape with a key names its own sensor.
    produce(
        &producer,
        &topics.input,
        None,
        Some(b"boiler"),
        b"{\"temperature\": 45}",
        None,
    );
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(60),
    );

    // Expected, built from the values sent and the broker's offsets and timestamps, without
    // the processor's decoder: sensor "default" (the configured id), seq = offset.
    let input = read_topic(&bootstrap, &topics.input);
    let readings: Vec<Reading> = input
        .iter()
        .map(|r| Reading {
            sensor_id: r.key.as_ref().map_or("default".into(), |k| {
                String::from_utf8_lossy(k).into_owned().into()
            }),
            seq: r.offset as u64,
            temperature: serde_json::from_slice::<serde_json::Value>(
                r.payload.as_deref().unwrap_or_default(),
            )
            .unwrap()["temperature"]
                .as_f64()
                .unwrap(),
            timestamp: format_millis(r.timestamp_ms.unwrap()).unwrap().into(),
        })
        .collect();
    let mut expected = e2e_tests::expect::EventsBySensor::new();
    for event in reference::expected_events(&readings, ProcessingRules::default()) {
        expected
            .entry(event.sensor_id().to_owned())
            .or_default()
            .push(event);
    }
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    // 5 readings over 40 (40.0 itself is not), 6 full windows of "default", boiler's alert.
    assert_eq!(comparison.expected, 5 + 6 + 1);
    assert!(read_topic(&bootstrap, &topics.dlq).is_empty());
    processor.stop(Duration::from_secs(15));
}

/// A broken record: key, value, and the `error.kind` it must get.
type Broken = (Option<Vec<u8>>, Vec<u8>, &'static str);

/// Every kind of broken record the design lists, and more.
fn corpus() -> Vec<Broken> {
    let key = |k: &str| Some(k.as_bytes().to_vec());
    let long_id = "x".repeat(200);
    vec![
        (key("bad-00"), b"".to_vec(), "empty"),
        (
            key("bad-01"),
            b"\xff\xfe{\"temperature\":1}".to_vec(),
            "not_utf8",
        ),
        (key("bad-02"), b"hello, kafka".to_vec(), "not_json"),
        (key("bad-03"), b"{\"temperature\":".to_vec(), "not_json"),
        (key("bad-04"), b"[1,2,3]".to_vec(), "not_object"),
        (key("bad-05"), b"null".to_vec(), "not_object"),
        (
            key("bad-06"),
            b"{\"sensor_id\":\"bad-06\"}".to_vec(),
            "missing_temperature",
        ),
        (
            key("bad-07"),
            b"{\"temperature\":\"warm\"}".to_vec(),
            "wrong_type",
        ),
        (
            key("bad-08"),
            b"{\"temperature\":{\"value\":3}}".to_vec(),
            "wrong_type",
        ),
        (
            key("bad-09"),
            b"{\"temperature\":1e999}".to_vec(),
            "not_finite",
        ),
        (
            key("bad-10"),
            b"{\"temperature\":-500}".to_vec(),
            "below_absolute_zero",
        ),
        (
            None,
            b"{\"sensor_id\":\"\",\"temperature\":1}".to_vec(),
            "empty_sensor_id",
        ),
        (
            None,
            format!("{{\"sensor_id\":\"{long_id}\",\"temperature\":1}}").into_bytes(),
            "sensor_id_too_long",
        ),
        (
            key("bad-13"),
            b"{\"temperature\":1,\"seq\":\"x\"}".to_vec(),
            "wrong_type",
        ),
        (
            key("bad-14"),
            b"{\"temperature\":1,\"timestamp\":\"noon\"}".to_vec(),
            "bad_timestamp",
        ),
        (
            key("bad-15"),
            format!("{{\"temperature\":1,\"pad\":\"{}\"}}", "p".repeat(70_000)).into_bytes(),
            "too_large",
        ),
        (
            key("bad-16"),
            b"{\"sensor_id\":\"other\",\"temperature\":1}".to_vec(),
            "key_mismatch",
        ),
        (
            key("bad-17"),
            b"{\"temperature\":1,\"temperature\":2}".to_vec(),
            "malformed",
        ),
        (
            Some(b"\xc3\x28".to_vec()),
            b"{\"temperature\":1}".to_vec(),
            "key_not_utf8",
        ),
    ]
}

#[test]
fn broken_records_go_to_the_dead_letter_topic_and_valid_ones_are_processed() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("bad-input");
    topics.create(&bootstrap, 6);
    let mut processor = Service::processor(&topics.processor_args(&bootstrap));
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));

    let producer = producer(&bootstrap);
    let corpus = corpus();
    let mut sent_bad = HashMap::new();
    for i in 0..60u32 {
        let sensor = format!("valid-{}", i % 5);
        let value = format!(
            "{{\"sensor_id\":\"{sensor}\",\"seq\":{},\"temperature\":{},\"timestamp\":\"2026-11-22T01:02:{:02}.000Z\"}}",
            i / 5,
            20.0 + f64::from(i % 27),
            i % 60
        );
        produce(
            &producer,
            &topics.input,
            None,
            Some(sensor.as_bytes()),
            value.as_bytes(),
            None,
        );
        if let Some((key, value, kind)) = corpus.get(i as usize) {
            let at = produce(&producer, &topics.input, None, key.as_deref(), value, None);
            sent_bad.insert(at, (key.clone(), value.clone(), *kind));
        }
    }
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(60),
    );
    assert!(
        processor.is_running(),
        "bad input stopped the processor\n{}",
        processor.log_tail()
    );

    let dead = read_topic(&bootstrap, &topics.dlq);
    assert_eq!(
        dead.len(),
        corpus.len(),
        "one dead letter per broken record"
    );
    for letter in &dead {
        let source = (
            letter
                .header("source.partition")
                .and_then(|p| p.parse::<i32>().ok())
                .expect("source.partition"),
            letter
                .header("source.offset")
                .and_then(|o| o.parse::<i64>().ok())
                .expect("source.offset"),
        );
        let (key, value, kind) = sent_bad
            .get(&source)
            .unwrap_or_else(|| panic!("dead letter for {source:?} is not a broken record"));
        assert_eq!(
            letter.header("source.topic").as_deref(),
            Some(topics.input.as_str())
        );
        assert_eq!(
            letter.header("error.kind").as_deref(),
            Some(*kind),
            "for {}",
            String::from_utf8_lossy(value)
        );
        assert!(
            letter.header("error").is_some_and(|e| e.len() > 10),
            "error header says what was wrong"
        );
        assert_eq!(&letter.key, key, "original key kept");
        assert_eq!(
            letter.payload.clone().unwrap_or_default(),
            *value,
            "original bytes kept"
        );
    }

    let input = read_topic(&bootstrap, &topics.input);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&bootstrap, &topics.output));
    let comparison = assert_same_events(&expected, &actual);
    assert_eq!(
        actual.keys().cloned().collect::<Vec<_>>(),
        (0..5).map(|i| format!("valid-{i}")).collect::<Vec<_>>()
    );
    assert!(comparison.actual > 0);

    // A flood of bad input is logged rate-limited: at most 10 lines per 10 s.
    let logged = processor
        .log_events("unusable record sent to the dead-letter topic")
        .len();
    assert!(
        (1..=10).contains(&logged),
        "{logged} bad-record lines logged for {} bad records",
        corpus.len()
    );
    processor.stop(Duration::from_secs(15));
}
