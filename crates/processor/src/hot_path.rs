//! The processor's per-record work without Kafka, for benchmarks: the engine's [`Task`] with
//! the temperature job, exactly as the service runs it: decode a record, apply it to its
//! sensor's window in the state store (undo log and applied offsets included), encode each
//! event as the output record's JSON into the batch's outputs, and the batch's changelog
//! records.
//!
//! Used by `benches/hot_path.rs` (criterion) and by `scripts/bench.sh`'s table.

use std::collections::{HashMap, VecDeque};

use sensor_contract::reading::format_millis;
use sensor_contract::{DecodeOptions, ProcessingRules, Reading};
use stream_engine::task::{SnapshotPolicy, StateWrites};
use stream_engine::{InputRecord, Processed, Task};

use crate::ProcessorSettings;
use crate::job::TemperatureJob;

/// An input record as the consumer hands it over.
#[derive(Debug, Clone)]
pub struct SampleRecord {
    /// The sensor id, as the simulator keys its records.
    pub key: Vec<u8>,
    /// The version-1 JSON reading.
    pub payload: Vec<u8>,
    /// Kafka timestamp, ms.
    pub timestamp_ms: i64,
    /// Offset in its partition.
    pub offset: i64,
}

/// `count` readings from `sensors` sensors in turn, in the simulator's wire format
/// ([`Reading::to_json`], keyed by sensor id): temperatures around 22 °C with about one
/// reading in 50 above 40 °C, so both alerts and averages occur. Deterministic in `seed`.
pub fn sample_records(sensors: u32, count: u64, seed: u64) -> Vec<SampleRecord> {
    let start_ms = 1_795_000_000_000;
    let mut state = seed | 1;
    (0..count)
        .map(|i| {
            // xorshift64*: cheap, deterministic, good enough for benchmark data.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let sensor = (i % u64::from(sensors)) as u32;
            let spike = r.is_multiple_of(50);
            let centi = if spike {
                4050 + r % 1000
            } else {
                1700 + r % 1000
            };
            let timestamp_ms = start_ms + i as i64;
            let reading = Reading {
                sensor_id: format!("sensor-{sensor:04}").into(),
                seq: i / u64::from(sensors),
                temperature: centi as f64 / 100.0,
                timestamp: format_millis(timestamp_ms).unwrap_or_default().into(),
            };
            SampleRecord {
                key: reading.sensor_id.as_bytes().to_vec(),
                payload: reading.to_json(),
                timestamp_ms,
                offset: i as i64,
            }
        })
        .collect()
}

/// A task and the buffers of one partition's processing.
#[derive(Debug)]
pub struct HotPath {
    task: Task<TemperatureJob>,
    writes: StateWrites,
    batch_records: usize,
    /// Added to the records' offsets, so that a repeated run continues the stream.
    offset_base: i64,
}

/// What a run produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Events encoded.
    pub events: u64,
    /// Bytes of event JSON.
    pub bytes: u64,
    /// Changelog records encoded.
    pub state_records: u64,
}

impl Default for HotPath {
    fn default() -> Self {
        Self::new()
    }
}

impl HotPath {
    /// The default rules (window 10, threshold 40 °C), batches of 10 000 records, snapshots
    /// as the service's defaults say.
    pub fn new() -> Self {
        let policy = SnapshotPolicy {
            every_records: ProcessorSettings::default().snapshot_every_records,
        };
        Self {
            task: Task::with_snapshots(
                TemperatureJob::new(ProcessingRules::default(), DecodeOptions::default()),
                policy,
            ),
            writes: StateWrites::default(),
            batch_records: 10_000,
            offset_base: 0,
        }
    }

    /// Processes `records` as partition 0, batch by batch. Repeated calls continue the same
    /// stream (offsets keep growing, windows stay), as a long-running processor sees it.
    pub fn run(&mut self, records: &[SampleRecord]) -> Produced {
        let mut produced = Produced::default();
        for batch in records.chunks(self.batch_records) {
            for record in batch {
                let input = InputRecord {
                    key: Some(&record.key),
                    value: Some(&record.payload),
                    timestamp_ms: Some(record.timestamp_ms),
                    partition: 0,
                    offset: self.offset_base + record.offset,
                };
                let _: Result<Processed, _> = self.task.process(&input);
            }
            for output in self.task.outputs().records() {
                produced.events += 1;
                produced.bytes += output.value.len() as u64;
            }
            let first = self.offset_base + batch.first().map_or(0, |r| r.offset);
            let next = self.offset_base + batch.last().map_or(0, |r| r.offset + 1);
            self.writes.clear();
            self.task.changelog([(0, first..next)], &mut self.writes);
            produced.state_records += self.writes.iter().len() as u64;
            self.task.commit();
        }
        self.offset_base += records.len() as i64;
        produced
    }
}

/// The same job as a straightforward loop, the way the original Python example reads in
/// Rust: serde_json into owned strings, a `HashMap<String, VecDeque<f64>>` of windows, events
/// serialized by serde_json. No state store, undo log or changelog: a yardstick for the hot
/// path's own work, measured next to it on the same records.
#[derive(Debug, Default)]
pub struct NaiveLoop {
    windows: HashMap<String, VecDeque<f64>>,
}

#[derive(serde::Deserialize)]
struct NaiveReading {
    sensor_id: String,
    seq: u64,
    temperature: f64,
    timestamp: String,
}

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum NaiveEvent<'a> {
    Alert {
        sensor_id: &'a str,
        seq: u64,
        temperature: f64,
        threshold: f64,
        timestamp: &'a str,
    },
    Average {
        sensor_id: &'a str,
        seq: u64,
        average: f64,
        window_size: usize,
        timestamp: &'a str,
    },
}

impl NaiveLoop {
    /// Processes `records`; windows carry over between calls.
    pub fn run(&mut self, records: &[SampleRecord]) -> Produced {
        let rules = ProcessingRules::default();
        let mut produced = Produced::default();
        let mut emit = |event: &NaiveEvent<'_>| {
            if let Ok(json) = serde_json::to_vec(event) {
                produced.events += 1;
                produced.bytes += json.len() as u64;
            }
        };
        for record in records {
            let Ok(reading) = serde_json::from_slice::<NaiveReading>(&record.payload) else {
                continue;
            };
            let window = self.windows.entry(reading.sensor_id.clone()).or_default();
            window.push_back(reading.temperature);
            if window.len() > rules.window_size {
                window.pop_front();
            }
            if reading.temperature > rules.threshold {
                emit(&NaiveEvent::Alert {
                    sensor_id: &reading.sensor_id,
                    seq: reading.seq,
                    temperature: reading.temperature,
                    threshold: rules.threshold,
                    timestamp: &reading.timestamp,
                });
            }
            if window.len() == rules.window_size {
                emit(&NaiveEvent::Average {
                    sensor_id: &reading.sensor_id,
                    seq: reading.seq,
                    average: window.iter().sum::<f64>() / window.len() as f64,
                    window_size: rules.window_size,
                    timestamp: &reading.timestamp,
                });
            }
        }
        produced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_records_yield_alerts_and_averages_like_the_reference() {
        let records = sample_records(100, 5000, 3);
        let readings: Vec<Reading> = records
            .iter()
            .map(|r| {
                Reading::decode(
                    &sensor_contract::RawRecord {
                        key: Some(&r.key),
                        payload: Some(&r.payload),
                        timestamp_ms: Some(r.timestamp_ms),
                        offset: r.offset,
                    },
                    &DecodeOptions::default(),
                )
                .unwrap()
            })
            .collect();
        let expected =
            sensor_contract::reference::expected_events(&readings, ProcessingRules::default());
        let alerts = expected.iter().filter(|e| e.kind() == "alert").count() as u64;
        assert!(alerts > 0 && alerts < 500, "{alerts} alerts");
        let expected_bytes: u64 = expected.iter().map(|e| e.to_json().len() as u64).sum();
        let produced = HotPath::new().run(&records);
        assert_eq!(
            produced,
            Produced {
                events: expected.len() as u64,
                bytes: expected_bytes,
                // One batch: each sensor once, and the partition's checkpoint.
                state_records: 100 + 1,
            }
        );
        // The naive loop emits as many events (its JSON may format a float differently).
        assert_eq!(
            NaiveLoop::default().run(&records).events,
            expected.len() as u64
        );
        // Again from the start: the same, not skipped as already applied.
        assert_eq!(
            HotPath::new().run(&records),
            HotPath::default().run(&records)
        );
    }
}
