//! The audit: reads the input and output topics (`read_committed`), recomputes with the
//! reference model what the output must be, and reports missing, duplicated, wrong and
//! unexpected events per sensor.
//!
//! Right on a live deployment: it reads the processors' committed input offsets first, then the
//! output's end, and judges only the input below the committed offsets, whose outputs are all
//! committed by then. Per sensor, outputs come in input order, so once every judged event of a
//! sensor has been seen, its later outputs belong to readings not judged yet (newer ones, or a
//! restarted producer's repeated sequence numbers) and are left for a later audit. A group that
//! has committed nothing (no processor ran) is judged against the whole input.
//!
//! Memory is bounded: sensors are split into buckets by a hash of their id, sized so that one
//! bucket's expected events fit in `max_events_in_memory`, and each bucket is checked in its own
//! pass over both topics.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use pipeline_runtime::settings::KafkaSettings;
use rdkafka::Message;
use sensor_contract::reference::Model;
use sensor_contract::{Event, RawRecord, Reading};
use serde::Serialize;

use crate::ProcessorSettings;

use pipeline_runtime::audit_read::{committed_offsets, end_offsets, scan};

/// The audit's Kafka client name.
const CLIENT: &str = "sensor-audit";

/// Problems of one sensor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SensorDiff {
    /// Expected events with no output.
    pub missing: u64,
    /// Outputs repeating an expected event.
    pub duplicated: u64,
    /// Outputs for an expected event (same sensor, seq and type) with other content.
    pub wrong: u64,
    /// Outputs no reading explains.
    pub unexpected: u64,
}

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Input records read.
    pub input_records: u64,
    /// Input records that are not usable readings (their place is the dead-letter topic).
    pub unusable_input: u64,
    /// Events the reference model expects.
    pub expected_events: u64,
    /// Output records read.
    pub output_records: u64,
    /// Output records that are exactly an expected event, first time.
    pub matched: u64,
    /// Totals over all sensors.
    pub missing: u64,
    /// See [`SensorDiff::duplicated`].
    pub duplicated: u64,
    /// See [`SensorDiff::wrong`].
    pub wrong: u64,
    /// See [`SensorDiff::unexpected`].
    pub unexpected: u64,
    /// Output records that are not events at all.
    pub undecodable_output: u64,
    /// Input records past the group's committed offsets: not processed yet, not judged.
    pub unjudged_input: u64,
    /// Per input partition, the offset the judged input ends at (the group's committed one).
    pub judged_until: BTreeMap<i32, i64>,
    /// Output records of readings past the judged input, left for a later audit.
    pub unjudged_output: u64,
    /// Passes over the topics (buckets of sensors).
    pub passes: u64,
    /// Sensors with a problem (at most 1000 listed), by id.
    pub sensors: BTreeMap<String, SensorDiff>,
    /// The first missing events (at most [`MISSING_LISTED`]), with the input record that
    /// should have caused each: where to look in the processors' logs.
    pub missing_events: Vec<MissingEvent>,
}

/// Missing events listed one by one in the report.
pub const MISSING_LISTED: usize = 20;

/// An expected event with no output, and the input record it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingEvent {
    /// The sensor.
    pub sensor_id: String,
    /// The reading's sequence number.
    pub seq: u64,
    /// The event's kind.
    pub kind: &'static str,
    /// The input partition of the reading.
    pub partition: i32,
    /// The input offset of the reading.
    pub offset: i64,
}

impl AuditReport {
    /// Whether the output is exactly what it must be; duplicates are tolerated if
    /// `allow_duplicates` (an `at_least_once` deployment).
    pub fn passed(&self, allow_duplicates: bool) -> bool {
        self.missing == 0
            && self.wrong == 0
            && self.unexpected == 0
            && self.undecodable_output == 0
            && (allow_duplicates || self.duplicated == 0)
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{} input records ({} unusable, {} not processed yet), {} expected events, {} output records: {} matched, {} missing, {} duplicated, {} wrong, {} unexpected, {} undecodable, {} of newer readings",
            self.input_records,
            self.unusable_input,
            self.unjudged_input,
            self.expected_events,
            self.output_records,
            self.matched,
            self.missing,
            self.duplicated,
            self.wrong,
            self.unexpected,
            self.undecodable_output,
            self.unjudged_output
        )
    }

    fn sensor(&mut self, id: &str) -> Option<&mut SensorDiff> {
        if !self.sensors.contains_key(id) && self.sensors.len() >= 1000 {
            return None;
        }
        Some(self.sensors.entry(id.to_owned()).or_default())
    }
}

/// An expected event and how often the output has it.
struct Slot {
    event: Event<'static>,
    seen: u32,
    wrong: bool,
    /// The input record's partition and offset.
    input: (i32, i64),
}

type EventKey = (String, u64, &'static str);

/// Audits `settings.output_topic` against `settings.input_topic` as they are now.
/// Blocking; logs progress every few seconds.
pub fn audit(
    kafka: &KafkaSettings,
    settings: &ProcessorSettings,
    max_events_in_memory: usize,
) -> anyhow::Result<AuditReport> {
    // In this order: everything committed below the group's offsets is in the output by the
    // time its end is read.
    let committed = committed_offsets(kafka, CLIENT, &settings.group_id, &settings.input_topic)?;
    let output_ends = end_offsets(kafka, CLIENT, &settings.output_topic)?;
    let input_ends = end_offsets(kafka, CLIENT, &settings.input_topic)?;
    let mut unjudged_input = 0;
    let input_ends: BTreeMap<i32, (i64, i64)> = input_ends
        .into_iter()
        .map(|(p, (low, high))| {
            let until = match &committed {
                None => high,
                Some(offsets) => offsets.get(&p).copied().unwrap_or(low).clamp(low, high),
            };
            unjudged_input += high - until;
            (p, (low, until))
        })
        .collect();
    let input_total: i64 = input_ends.values().map(|(low, high)| high - low).sum();
    let judged_until = input_ends
        .iter()
        .map(|(p, (_, until))| (*p, *until))
        .collect();
    // A reading causes at most two events.
    let buckets =
        ((input_total.max(1) as u64 * 2).div_ceil(max_events_in_memory.max(1) as u64)).max(1);
    let options = settings.decode_options();
    let mut report = AuditReport {
        passes: buckets,
        unjudged_input: unjudged_input as u64,
        judged_until,
        ..AuditReport::default()
    };
    for bucket in 0..buckets {
        let in_bucket = |sensor: &str| bucket_of(sensor, buckets) == bucket;
        let label = format!("pass {}/{buckets}", bucket + 1);

        let mut expected: HashMap<EventKey, Vec<Slot>> = HashMap::new();
        // Per sensor: judged events expected, and matched so far.
        let mut per_sensor: HashMap<String, (u64, u64)> = HashMap::new();
        let mut models: HashMap<i32, Model> = HashMap::new();
        scan(
            kafka,
            CLIENT,
            &settings.input_topic,
            &input_ends,
            &format!("{label}: input"),
            |m| {
                if bucket == 0 {
                    report.input_records += 1;
                }
                let record = RawRecord {
                    key: m.key(),
                    payload: m.payload(),
                    timestamp_ms: m.timestamp().to_millis(),
                    offset: m.offset(),
                };
                let Ok(reading) = Reading::decode(&record, &options) else {
                    if bucket == 0 {
                        report.unusable_input += 1;
                    }
                    return;
                };
                if !in_bucket(&reading.sensor_id) {
                    return;
                }
                let model = models
                    .entry(m.partition())
                    .or_insert_with(|| Model::new(settings.rules()));
                for event in model.apply(&reading) {
                    report.expected_events += 1;
                    per_sensor
                        .entry(event.sensor_id().to_owned())
                        .or_default()
                        .0 += 1;
                    let key = (event.sensor_id().to_owned(), event.seq(), event.kind());
                    expected.entry(key).or_default().push(Slot {
                        event: event.into_owned(),
                        seen: 0,
                        wrong: false,
                        input: (m.partition(), m.offset()),
                    });
                }
            },
        )?;
        drop(models);

        scan(
            kafka,
            CLIENT,
            &settings.output_topic,
            &output_ends,
            &format!("{label}: output"),
            |m| {
                let event = match m.payload().map(serde_json::from_slice::<Event>) {
                    Some(Ok(event)) => event,
                    _ => {
                        if bucket == 0 {
                            report.output_records += 1;
                            report.undecodable_output += 1;
                        }
                        return;
                    }
                };
                if !in_bucket(event.sensor_id()) {
                    return;
                }
                report.output_records += 1;
                let key = (event.sensor_id().to_owned(), event.seq(), event.kind());
                let (judged, matched) =
                    per_sensor.get(event.sensor_id()).copied().unwrap_or((0, 0));
                let repeats_a_judged_event = expected
                    .get(&key)
                    .is_some_and(|slots| slots.iter().any(|s| s.seen > 0 && s.event == event));
                if matched == judged && !repeats_a_judged_event {
                    // Every judged event of this sensor is out: this one is of a newer reading.
                    report.unjudged_output += 1;
                    return;
                }
                let Some(slots) = expected.get_mut(&key) else {
                    report.unexpected += 1;
                    if let Some(s) = report.sensor(event.sensor_id()) {
                        s.unexpected += 1;
                    }
                    return;
                };
                if let Some(slot) = slots.iter_mut().find(|s| s.seen == 0 && s.event == event) {
                    slot.seen = 1;
                    report.matched += 1;
                    if let Some(counts) = per_sensor.get_mut(event.sensor_id()) {
                        counts.1 += 1;
                    }
                } else if let Some(slot) = slots.iter_mut().find(|s| s.event == event) {
                    slot.seen += 1;
                    report.duplicated += 1;
                    if let Some(s) = report.sensor(event.sensor_id()) {
                        s.duplicated += 1;
                    }
                } else {
                    if let Some(slot) = slots.iter_mut().find(|s| s.seen == 0) {
                        slot.wrong = true;
                    }
                    report.wrong += 1;
                    if let Some(s) = report.sensor(event.sensor_id()) {
                        s.wrong += 1;
                    }
                }
            },
        )?;
        let mut missing: Vec<&Slot> = expected
            .values()
            .flatten()
            .filter(|slot| slot.seen == 0 && !slot.wrong)
            .collect();
        missing.sort_by_key(|slot| slot.input);
        for slot in missing {
            report.missing += 1;
            if let Some(s) = report.sensor(slot.event.sensor_id()) {
                s.missing += 1;
            }
            if report.missing_events.len() < MISSING_LISTED {
                report.missing_events.push(MissingEvent {
                    sensor_id: slot.event.sensor_id().to_owned(),
                    seq: slot.event.seq(),
                    kind: slot.event.kind(),
                    partition: slot.input.0,
                    offset: slot.input.1,
                });
            }
        }
    }
    Ok(report)
}

fn bucket_of(sensor: &str, buckets: u64) -> u64 {
    let mut hasher = DefaultHasher::new();
    sensor.hash(&mut hasher);
    hasher.finish() % buckets
}
