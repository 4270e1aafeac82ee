//! What the reference semantics says the output must be, and an exact comparison with a
//! readable report.

use std::collections::{BTreeMap, HashMap};

use sensor_contract::{DecodeOptions, Event, ProcessingRules, RawRecord, Reading, reference};

use crate::kafka_io::Record;

/// Events per sensor, in output order.
pub type EventsBySensor = BTreeMap<String, Vec<Event<'static>>>;

/// The usable readings of an input topic per partition, in offset order.
pub fn readings_by_partition(input: &[Record]) -> BTreeMap<i32, Vec<(i64, Reading<'_>)>> {
    let options = DecodeOptions::default();
    let mut by_partition: BTreeMap<i32, Vec<(i64, Reading<'_>)>> = BTreeMap::new();
    for r in input {
        let raw = RawRecord {
            key: r.key.as_deref(),
            payload: r.payload.as_deref(),
            timestamp_ms: r.timestamp_ms,
            offset: r.offset,
        };
        if let Ok(reading) = Reading::decode(&raw, &options) {
            by_partition
                .entry(r.partition)
                .or_default()
                .push((r.offset, reading));
        }
    }
    by_partition
}

/// The events the reference semantics computes from `input`. Windows start empty, and start
/// empty again at `restarts[p]` in partition `p` (where a processor resumed without state).
pub fn expected_events(
    input: &[Record],
    rules: ProcessingRules,
    restarts: &HashMap<i32, i64>,
) -> EventsBySensor {
    let mut by_sensor = EventsBySensor::new();
    for (partition, readings) in readings_by_partition(input) {
        let split = restarts.get(&partition).copied().unwrap_or(i64::MIN);
        let before: Vec<Reading> = readings
            .iter()
            .filter(|(o, _)| *o < split)
            .map(|(_, r)| r.clone())
            .collect();
        let after: Vec<Reading> = readings
            .iter()
            .filter(|(o, _)| *o >= split)
            .map(|(_, r)| r.clone())
            .collect();
        for part in [before, after] {
            for event in reference::expected_events(&part, rules) {
                by_sensor
                    .entry(event.sensor_id().to_owned())
                    .or_default()
                    .push(event.into_owned());
            }
        }
    }
    by_sensor
}

/// The events in an output topic per sensor, checking each record's key and type header.
pub fn actual_events(output: &[Record]) -> EventsBySensor {
    let mut by_sensor = EventsBySensor::new();
    for r in output {
        let payload = r.payload.as_deref().unwrap_or_default();
        let event: Event = serde_json::from_slice(payload).unwrap_or_else(|e| {
            panic!(
                "output record {}:{} is not an event ({e}): {}",
                r.partition,
                r.offset,
                String::from_utf8_lossy(payload)
            )
        });
        assert_eq!(
            r.key.as_deref(),
            Some(event.sensor_id().as_bytes()),
            "output key must be the sensor id"
        );
        assert_eq!(
            r.header("event-type").as_deref(),
            Some(event.kind()),
            "event-type header"
        );
        by_sensor
            .entry(event.sensor_id().to_owned())
            .or_default()
            .push(event);
    }
    by_sensor
}

/// Counts of a comparison.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Events expected.
    pub expected: usize,
    /// Events found.
    pub actual: usize,
    /// Sensors whose event sequences differ.
    pub differing_sensors: Vec<String>,
}

/// Compares per sensor; returns the counts, or panics with the first differences.
pub fn assert_same_events(expected: &EventsBySensor, actual: &EventsBySensor) -> Comparison {
    let mut comparison = Comparison {
        expected: expected.values().map(Vec::len).sum(),
        actual: actual.values().map(Vec::len).sum(),
        differing_sensors: Vec::new(),
    };
    let empty = Vec::new();
    let mut report = String::new();
    for sensor in expected
        .keys()
        .chain(actual.keys().filter(|k| !expected.contains_key(*k)))
    {
        let want = expected.get(sensor).unwrap_or(&empty);
        let got = actual.get(sensor).unwrap_or(&empty);
        if want != got {
            comparison.differing_sensors.push(sensor.clone());
            if comparison.differing_sensors.len() <= 3 {
                let first = want
                    .iter()
                    .zip(got)
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.len().min(got.len()));
                let around = |events: &[Event]| -> Vec<String> {
                    let from = first.saturating_sub(3);
                    events
                        .iter()
                        .skip(from)
                        .take(8)
                        .map(|e| format!("{}@{}", e.kind(), e.seq()))
                        .collect()
                };
                report.push_str(&format!(
                    "\n{sensor}: expected {} events, got {}; first difference at #{first}:\n  expected {:?}\n  got      {:?}\n  expected from #{}: {:?}\n  got from #{}:      {:?}",
                    want.len(),
                    got.len(),
                    want.get(first),
                    got.get(first),
                    first.saturating_sub(3),
                    around(want),
                    first.saturating_sub(3),
                    around(got)
                ));
            }
        }
    }
    assert!(
        comparison.differing_sensors.is_empty(),
        "{} of {} sensors differ (expected {} events, got {}):{report}",
        comparison.differing_sensors.len(),
        expected.len().max(actual.len()),
        comparison.expected,
        comparison.actual
    );
    comparison
}
