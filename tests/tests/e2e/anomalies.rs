//! Each sensor's online model in the processor, on the real broker. The simulator injects
//! labelled faults; the processor judges every reading; the anomalies topic must hold exactly
//! what one model per sensor, run straight through the input, gives. That holds through a
//! SIGKILL of the processor mid-stream and a rescale to two replicas: the models come back from
//! the changelog (not retrained from cold), and no anomaly or prediction is lost or doubled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::{read_topic, wait_for_group, wait_until_consumed};
use e2e_tests::service::{Service, simulator_args};
use e2e_tests::topics::{PipelineTopics, create_topics};
use nix::sys::signal::Signal;
use sensor_contract::model::{ModelEvent, ModelSettings, SensorModel};
use sensor_contract::{DecodeOptions, RawRecord, Reading};

#[test]
fn anomalies_are_exact_through_a_sigkill_and_a_rescale() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("anomalies");
    topics.create(&bootstrap, 6);
    let anomalies = format!("{}-anomalies", topics.group);
    create_topics(&bootstrap, &[(&anomalies, 6)]);
    let mut args = topics.processor_args(&bootstrap);
    args.extend(
        ["--anomalies", "--anomalies-topic", &anomalies]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut first = Service::processor(&args);
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "12000",
            "--sensors",
            "20",
            "--seed",
            "21",
            "--rate",
            "3000",
            "--fault-rate",
            "8",
        ],
    ));
    assert!(simulator.wait_for_log("Kafka is reachable", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(1500));
    first.signal(Signal::SIGKILL);
    first.wait(Duration::from_secs(10)).expect("killed");
    // Back, and scaled out: two replicas share the partitions and restore their models.
    let second = Service::processor(&args);
    let third = Service::processor(&args);
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(120),
    );

    // The reference: one model per sensor through the input, in partition order.
    let input = read_topic(&bootstrap, &topics.input);
    assert_eq!(input.len(), 12000);
    let settings = ModelSettings::default();
    let mut models: BTreeMap<String, SensorModel> = BTreeMap::new();
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut labelled: BTreeMap<(String, u64), (String, String)> = BTreeMap::new();
    let mut faults = BTreeSet::new();
    for record in &input {
        let raw = RawRecord {
            key: record.key.as_deref(),
            payload: record.payload.as_deref(),
            timestamp_ms: record.timestamp_ms,
            offset: record.offset,
        };
        let reading = Reading::decode(&raw, &DecodeOptions::default()).expect("a reading");
        if let Some(kind) = record.header("fault") {
            let id = record.header("fault-id").unwrap();
            faults.insert((kind.clone(), id.clone()));
            labelled.insert((reading.sensor_id.to_string(), reading.seq), (kind, id));
        }
        let model = models.entry(reading.sensor_id.to_string()).or_default();
        let judged = model.update(reading.seq, reading.temperature, &settings);
        let events = expected.entry(reading.sensor_id.to_string()).or_default();
        let mut write = |event: ModelEvent<'_>| {
            let mut bytes = Vec::new();
            event.write_json(&mut bytes);
            events.push(bytes);
        };
        if let Some(a) = judged.anomaly {
            write(ModelEvent::Anomaly {
                sensor_id: reading.sensor_id.clone(),
                seq: reading.seq,
                kind: a.kind.name().into(),
                score: a.score,
                temperature: reading.temperature,
                expected: a.forecast.expected,
                low: a.forecast.low,
                high: a.forecast.high,
                timestamp: reading.timestamp.clone(),
            });
        }
        if let Some(next) = judged.next
            && model.seen().is_multiple_of(10)
        {
            write(ModelEvent::Prediction {
                sensor_id: reading.sensor_id.clone(),
                seq: reading.seq,
                expected: next.expected,
                low: next.low,
                high: next.high,
                timestamp: reading.timestamp.clone(),
            });
        }
    }

    let mut actual: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut detected = BTreeSet::new();
    let mut anomaly_count = 0;
    for record in read_topic(&bootstrap, &anomalies) {
        let kind_header = record.header("event-type");
        let payload = record.payload.expect("a value");
        let event: ModelEvent<'_> = serde_json::from_slice(&payload).expect("a model event");
        assert_eq!(kind_header.as_deref(), Some(event.kind()));
        if let ModelEvent::Anomaly { sensor_id, seq, .. } = &event {
            anomaly_count += 1;
            if let Some(fault) = labelled.get(&(sensor_id.to_string(), *seq)) {
                detected.insert(fault.clone());
            }
        }
        let key = String::from_utf8(record.key.expect("keyed by sensor")).unwrap();
        actual.entry(key).or_default().push(payload);
    }
    assert_eq!(actual.len(), 20, "every sensor has events");
    for (sensor, events) in &expected {
        let got = actual.get(sensor).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            got.len(),
            events.len(),
            "{sensor}: {} events, {} expected",
            got.len(),
            events.len()
        );
        assert!(got == events.as_slice(), "{sensor}: events differ");
    }
    let without_drift: Vec<_> = faults.iter().filter(|(k, _)| k != "drift").collect();
    let caught = without_drift
        .iter()
        .filter(|f| detected.contains(**f))
        .count();
    assert!(
        caught * 10 >= without_drift.len() * 8,
        "{caught} of {} faults (drift aside) flagged",
        without_drift.len()
    );
    println!(
        "anomalies: 12000 readings, {} labelled faults ({caught} of {} without drift flagged), {anomaly_count} anomaly events, equal to the reference per sensor through a SIGKILL and a rescale",
        faults.len(),
        without_drift.len()
    );
    for mut replica in [second, third] {
        replica.stop(Duration::from_secs(15));
    }
}
