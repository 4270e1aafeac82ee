//! The processor's window state: every assigned partition's sensors, each with its window and
//! the offset of the last reading applied to it, plus an undo log of the current batch.
//!
//! Pure. The service loads a partition's state from the changelog before routing any of its
//! records, rolls a batch back when its transaction aborts, and writes the sensors a batch
//! touched to the changelog.

use std::collections::HashMap;

use sensor_contract::state::step;
use sensor_contract::{
    DecodeError, DecodeOptions, Event, ProcessingRules, RawRecord, Reading, Window,
};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// Header naming the event type on the output topic (`alert` or `average`).
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// One partition's sensors by id. Ids are `SmolStr`s: up to 23 bytes they live inside the
/// map's bucket, so finding a sensor touches no other memory (with 10 000 sensors read in
/// turn, the id's separate allocation was a cache miss per reading), and cloning one for the
/// undo log copies 24 bytes (longer ids are shared, reference-counted). hashbrown's map is
/// std's, with its default foldhash hasher: several times faster than std's SipHash on short
/// keys. HashDoS resistance buys little here: a producer able to choose sensor ids at will can
/// already fill the processor's memory.
pub type Sensors = hashbrown::HashMap<SmolStr, SensorState>;

/// One sensor's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorState {
    /// The last `window_size` temperatures.
    pub window: Window,
    /// Input offset of the last reading applied to the window.
    pub applied_offset: i64,
}

/// What routing did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// The reading was applied; its events were pushed.
    Applied,
    /// The reading was applied before (the state is ahead of the committed offset after an
    /// at-least-once crash): nothing to do, its outputs were acknowledged then.
    AlreadyApplied,
}

/// A sensor's state in the router, with the batch that last touched it.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    state: SensorState,
    /// The [`Router::batch`] in which the sensor was last put in the undo log.
    batch: u64,
}

/// A sensor the current batch touched, and its state before the batch.
#[derive(Debug)]
struct Undo {
    partition: i32,
    sensor: SmolStr,
    /// `None`: the batch created the sensor. Otherwise the applied offset, and where the
    /// window's values (oldest first) are in [`Router::undo_values`].
    before: Option<(i64, std::ops::Range<usize>)>,
}

/// The state of the assigned partitions and the rules that update it.
#[derive(Debug)]
pub struct Router {
    rules: ProcessingRules,
    options: DecodeOptions,
    partitions: HashMap<i32, hashbrown::HashMap<SmolStr, Slot>>,
    /// Each sensor the current batch touched, once, in the order it was first touched.
    undo: Vec<Undo>,
    /// The windows of `undo`, back to back: no allocation per touched sensor.
    undo_values: Vec<f64>,
    /// The current batch's number, starting at 1; a sensor whose slot has it is in `undo`.
    batch: u64,
}

impl Router {
    /// No partition yet.
    pub fn new(rules: ProcessingRules, options: DecodeOptions) -> Self {
        Self {
            rules,
            options,
            partitions: HashMap::new(),
            undo: Vec::new(),
            undo_values: Vec::new(),
            batch: 1,
        }
    }

    /// Makes a partition's restored state current; its records can be routed from now on.
    pub fn load_partition(&mut self, partition: i32, sensors: Sensors) {
        let slots = sensors
            .into_iter()
            .map(|(id, state)| (id, Slot { state, batch: 0 }))
            .collect();
        self.partitions.insert(partition, slots);
    }

    /// Forgets a partition that is no longer assigned here.
    pub fn drop_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        // Its sensors leave the undo log too: there is nothing to roll back or write for them.
        self.undo.retain(|u| u.partition != partition);
    }

    /// Whether the partition's state is loaded.
    pub fn has_partition(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Sensors in memory, over all partitions.
    pub fn sensors(&self) -> usize {
        self.partitions.values().map(hashbrown::HashMap::len).sum()
    }

    /// Decodes a record of a loaded partition and applies it, pushing its events onto `out`
    /// (they borrow from the record); an unusable record is returned as the error.
    pub fn route<'a>(
        &mut self,
        partition: i32,
        record: &RawRecord<'a>,
        out: &mut Vec<Event<'a>>,
    ) -> Result<Routed, DecodeError> {
        let reading = Reading::decode(record, &self.options)?;
        let sensors = self.partitions.entry(partition).or_default();
        let id: &str = &reading.sensor_id;
        let slot = match sensors.get_key_value_mut(id) {
            Some((_, slot)) if record.offset <= slot.state.applied_offset => {
                return Ok(Routed::AlreadyApplied);
            }
            Some((key, slot)) => {
                if slot.batch != self.batch {
                    slot.batch = self.batch;
                    let start = self.undo_values.len();
                    self.undo_values.extend(slot.state.window.iter());
                    self.undo.push(Undo {
                        partition,
                        sensor: key.clone(),
                        before: Some((slot.state.applied_offset, start..self.undo_values.len())),
                    });
                }
                slot
            }
            None => {
                let key = SmolStr::new(id);
                self.undo.push(Undo {
                    partition,
                    sensor: key.clone(),
                    before: None,
                });
                sensors.entry(key).or_insert_with(|| Slot {
                    state: SensorState {
                        window: Window::new(self.rules.window_size),
                        applied_offset: -1,
                    },
                    batch: self.batch,
                })
            }
        };
        let state = &mut slot.state;
        step(&mut state.window, &reading, self.rules, out);
        state.applied_offset = record.offset;
        Ok(Routed::Applied)
    }

    /// The sensors the current batch changed, with their state now, for the changelog.
    pub fn touched(&self) -> impl Iterator<Item = (i32, &str, &SensorState)> {
        self.undo.iter().filter_map(|undo| {
            let slot = self.partitions.get(&undo.partition)?.get(&undo.sensor)?;
            Some((undo.partition, &*undo.sensor, &slot.state))
        })
    }

    /// The batch is durable: forget how to undo it.
    pub fn commit_batch(&mut self) {
        self.undo.clear();
        self.undo_values.clear();
        self.batch += 1;
    }

    /// The batch was aborted: put every sensor it touched back as it was before.
    pub fn rollback_batch(&mut self) {
        let window_size = self.rules.window_size;
        for undo in self.undo.drain(..) {
            let Some(sensors) = self.partitions.get_mut(&undo.partition) else {
                continue;
            };
            match undo.before {
                Some((applied_offset, values)) => {
                    let mut window = Window::new(window_size);
                    for value in &self.undo_values[values] {
                        window.push(*value);
                    }
                    sensors.insert(
                        undo.sensor,
                        Slot {
                            state: SensorState {
                                window,
                                applied_offset,
                            },
                            batch: 0,
                        },
                    );
                }
                None => {
                    sensors.remove(&undo.sensor);
                }
            }
        }
        self.undo_values.clear();
        self.batch += 1;
    }
}

/// Key of a partition's checkpoint record in the changelog. Not UTF-8, so it can never be a
/// sensor id.
pub const CHECKPOINT_KEY: &[u8] = b"\xff\xfecheckpoint";

/// A checkpoint record's value: the input offset the partition's state corresponds to (the
/// next record to process). Written with every batch's state.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Checkpoint {
    next_offset: i64,
}

/// The changelog value of a partition checkpoint.
pub fn encode_checkpoint(next_offset: i64) -> Vec<u8> {
    serde_json::to_vec(&Checkpoint { next_offset }).unwrap_or_default()
}

/// The input offset a checkpoint value names.
pub fn decode_checkpoint(value: &[u8]) -> Result<i64, serde_json::Error> {
    serde_json::from_slice::<Checkpoint>(value).map(|c| c.next_offset)
}

/// A changelog record's value: the window, oldest first, and the last applied offset.
#[derive(Debug, Serialize, Deserialize)]
struct StateRecord {
    offset: i64,
    values: Vec<f64>,
}

/// The changelog value for a sensor's state.
pub fn encode_state(state: &SensorState) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_state_into(state, &mut out);
    out
}

/// Appends [`encode_state`]'s bytes to `out`, without collecting the window first.
pub fn encode_state_into(state: &SensorState, out: &mut Vec<u8>) {
    /// The window's values, oldest first, serialized as a JSON array straight from the ring.
    struct Values<'a>(&'a Window);
    impl Serialize for Values<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter())
        }
    }
    #[derive(Serialize)]
    struct StateRecordRef<'a> {
        offset: i64,
        values: Values<'a>,
    }
    // Writing into a Vec cannot fail, and the values are finite.
    let _ = serde_json::to_writer(
        out,
        &StateRecordRef {
            offset: state.applied_offset,
            values: Values(&state.window),
        },
    );
}

/// A sensor's state from its changelog value, in a window of `window_size` (the newest values
/// are kept if the window was larger when it was written).
pub fn decode_state(value: &[u8], window_size: usize) -> Result<SensorState, serde_json::Error> {
    let record: StateRecord = serde_json::from_slice(value)?;
    let mut window = Window::new(window_size);
    for v in record.values {
        window.push(v);
    }
    Ok(SensorState {
        window,
        applied_offset: record.offset,
    })
}

/// The headers of a dead letter: the reason and where the record came from.
pub fn dead_letter_headers(
    error: &DecodeError,
    topic: &str,
    partition: i32,
    offset: i64,
) -> [(&'static str, String); 5] {
    [
        ("error", error.to_string()),
        ("error.kind", error.kind().to_owned()),
        ("source.topic", topic.to_owned()),
        ("source.partition", partition.to_string()),
        ("source.offset", offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8], offset: i64) -> RawRecord<'_> {
        RawRecord {
            key: None,
            payload: Some(value),
            timestamp_ms: Some(0),
            offset,
        }
    }

    fn router(window_size: usize) -> Router {
        Router::new(
            ProcessingRules {
                window_size,
                threshold: 40.0,
            },
            DecodeOptions::default(),
        )
    }

    #[test]
    fn windows_are_kept_per_partition_and_dropped_with_it() {
        let mut router = router(2);
        let mut out = Vec::new();
        router
            .route(0, &record(br#"{"temperature":1}"#, 0), &mut out)
            .unwrap();
        router
            .route(1, &record(br#"{"temperature":2}"#, 0), &mut out)
            .unwrap();
        assert!(out.is_empty(), "one reading per partition fills no window");
        assert_eq!(router.sensors(), 2);
        router.drop_partition(0);
        assert_eq!(router.sensors(), 1);
        router
            .route(1, &record(br#"{"temperature":41}"#, 1), &mut out)
            .unwrap();
        assert_eq!(
            out.iter().map(Event::kind).collect::<Vec<_>>(),
            ["alert", "average"]
        );
    }

    #[test]
    fn readings_at_or_before_the_applied_offset_are_not_applied_again() {
        let mut router = router(2);
        let mut out = Vec::new();
        assert_eq!(
            router.route(0, &record(br#"{"temperature":1}"#, 5), &mut out),
            Ok(Routed::Applied)
        );
        assert_eq!(
            router.route(0, &record(br#"{"temperature":1}"#, 5), &mut out),
            Ok(Routed::AlreadyApplied)
        );
        assert_eq!(
            router.route(0, &record(br#"{"temperature":3}"#, 6), &mut out),
            Ok(Routed::Applied)
        );
        assert_eq!(
            out.len(),
            1,
            "one average of 1 and 3, nothing for the repeat"
        );
    }

    #[test]
    fn rollback_restores_the_state_before_the_batch() {
        let mut router = router(3);
        let mut out = Vec::new();
        router
            .route(
                0,
                &record(br#"{"sensor_id":"a","temperature":1}"#, 0),
                &mut out,
            )
            .unwrap();
        router.commit_batch();
        let states = |router: &Router| -> Vec<(String, SensorState)> {
            let mut states: Vec<_> = router.partitions[&0]
                .iter()
                .map(|(id, slot)| (id.to_string(), slot.state.clone()))
                .collect();
            states.sort_by(|a, b| a.0.cmp(&b.0));
            states
        };
        let before = states(&router);
        router
            .route(
                0,
                &record(br#"{"sensor_id":"a","temperature":2}"#, 1),
                &mut out,
            )
            .unwrap();
        router
            .route(
                0,
                &record(br#"{"sensor_id":"b","temperature":3}"#, 2),
                &mut out,
            )
            .unwrap();
        let mut touched: Vec<_> = router
            .touched()
            .map(|(p, s, st)| (p, s.to_owned(), st.applied_offset))
            .collect();
        touched.sort();
        assert_eq!(touched, vec![(0, "a".into(), 1), (0, "b".into(), 2)]);
        router.rollback_batch();
        assert_eq!(states(&router), before);
        assert_eq!(router.touched().count(), 0);
    }

    #[test]
    fn state_records_round_trip_and_shrink_to_the_window() {
        let mut window = Window::new(4);
        for v in [1.5, 2.5, 3.5] {
            window.push(v);
        }
        let state = SensorState {
            window,
            applied_offset: 77,
        };
        let bytes = encode_state(&state);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"offset":77,"values":[1.5,2.5,3.5]}"#
        );
        assert_eq!(decode_state(&bytes, 4).unwrap(), state);
        let smaller = decode_state(&bytes, 2).unwrap();
        assert_eq!(smaller.window.iter().collect::<Vec<_>>(), vec![2.5, 3.5]);
        assert!(decode_state(b"{}", 4).is_err());
    }

    #[test]
    fn checkpoints_round_trip_under_a_key_no_sensor_can_have() {
        assert_eq!(decode_checkpoint(&encode_checkpoint(1234)).unwrap(), 1234);
        // A reading keyed like a checkpoint is a dead letter, so no window ever has this key.
        let record = RawRecord {
            key: Some(CHECKPOINT_KEY),
            payload: Some(br#"{"temperature":1}"#),
            timestamp_ms: Some(0),
            offset: 0,
        };
        let err = router(10).route(0, &record, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), "key_not_utf8");
    }

    #[test]
    fn dead_letters_carry_reason_and_source() {
        let mut router = router(10);
        let err = router
            .route(3, &record(b"nope", 5), &mut Vec::new())
            .unwrap_err();
        let headers = dead_letter_headers(&err, "in", 3, 5);
        assert_eq!(
            headers.map(|(k, v)| format!("{k}={v}")),
            [
                "error=record value is not valid JSON: expected ident at line 1 column 2",
                "error.kind=not_json",
                "source.topic=in",
                "source.partition=3",
                "source.offset=5",
            ]
        );
    }
}
