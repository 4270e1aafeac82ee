//! The processor's per-record work without Kafka, for benchmarks: decode a record, apply it to
//! its sensor's window through the [`Router`] (undo log and applied offsets included), encode
//! each event as the output record's JSON with
//! [`Event::write_json`](sensor_contract::Event::write_json), as the service does.
//!
//! Used by `benches/hot_path.rs` (criterion) and by `scripts/bench.sh`'s table.

use sensor_contract::reading::format_millis;
use sensor_contract::{DecodeOptions, ProcessingRules, RawRecord, Reading};

use crate::windows::{Routed, Router};

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

/// A router and the buffers of one partition's processing.
#[derive(Debug)]
pub struct HotPath {
    router: Router,
    encoded: Vec<u8>,
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
}

impl Default for HotPath {
    fn default() -> Self {
        Self::new()
    }
}

impl HotPath {
    /// The default rules (window 10, threshold 40 °C), batches of 10 000 records.
    pub fn new() -> Self {
        Self {
            router: Router::new(ProcessingRules::default(), DecodeOptions::default()),
            encoded: Vec::with_capacity(256),
            batch_records: 10_000,
            offset_base: 0,
        }
    }

    /// Processes `records` as partition 0, batch by batch. Repeated calls continue the same
    /// stream (offsets keep growing, windows stay), as a long-running processor sees it.
    pub fn run(&mut self, records: &[SampleRecord]) -> Produced {
        let mut produced = Produced::default();
        let mut events = Vec::new();
        for batch in records.chunks(self.batch_records) {
            for record in batch {
                let raw = RawRecord {
                    key: Some(&record.key),
                    payload: Some(&record.payload),
                    timestamp_ms: Some(record.timestamp_ms),
                    offset: self.offset_base + record.offset,
                };
                if let Ok(Routed::Applied) = self.router.route(0, &raw, &mut events) {
                    for event in events.drain(..) {
                        self.encoded.clear();
                        event.write_json(&mut self.encoded);
                        produced.events += 1;
                        produced.bytes += self.encoded.len() as u64;
                    }
                }
            }
            self.router.commit_batch();
        }
        self.offset_base += records.len() as i64;
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
                    &RawRecord {
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
                bytes: expected_bytes
            }
        );
        // Again from the start: the same, not skipped as already applied.
        assert_eq!(
            HotPath::new().run(&records),
            HotPath::default().run(&records)
        );
    }
}
