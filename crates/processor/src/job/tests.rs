//! The temperature job on the engine's task (state store, undo log, changelog encoding) held
//! to the naive reference model under random batches, aborts, revocations and restores.

// Partitions are numbers here, as in Kafka: indexing by them reads best.
#![allow(clippy::needless_range_loop)]

use proptest::prelude::*;
use sensor_contract::reference::expected_events;
use sensor_contract::{Event, Reading};
use stream_engine::task::{CompactedChangelog, SnapshotPolicy, StateWrites};
use stream_engine::{InputRecord, Processed, Task};

use super::*;

const PARTITIONS: usize = 3;

fn job(window_size: usize) -> TemperatureJob {
    TemperatureJob::new(
        ProcessingRules {
            window_size,
            threshold: 40.0,
        },
        DecodeOptions::default(),
    )
    .with_anomalies(MODEL, PREDICTION_EVERY)
}

/// The model in the property test: a short warm-up, so that judgements start early.
const MODEL: sensor_contract::model::ModelSettings = sensor_contract::model::ModelSettings {
    alpha: 0.3,
    beta: 0.05,
    scale_alpha: 0.05,
    sensitivity: 3.0,
    warmup: 3,
    stuck_after: 3,
    min_sigma: 0.05,
    // Daily: the larger state (145 bytes) through every abort and restore.
    seasonality: sensor_contract::model::Seasonality::Daily,
    gamma: 0.2,
};
const PREDICTION_EVERY: u32 = 2;

/// One partition's input: each record's value (valid readings and some that are not).
fn partition_logs(items: &[(u8, f64, bool)]) -> Vec<Vec<Vec<u8>>> {
    let mut logs = vec![Vec::new(); PARTITIONS];
    let mut seqs = [0u64; 8];
    for &(sensor, temperature, bad) in items {
        let partition = sensor as usize % PARTITIONS;
        if bad {
            logs[partition].push(b"not json".to_vec());
            continue;
        }
        seqs[sensor as usize] += 1;
        let reading = Reading {
            sensor_id: format!("sensor-{sensor}").into(),
            seq: seqs[sensor as usize],
            temperature,
            timestamp: "2026-11-22T00:00:00.000Z".into(),
        };
        logs[partition].push(reading.to_json());
    }
    logs
}

fn record(partition: usize, offset: usize, value: &[u8]) -> InputRecord<'_> {
    InputRecord {
        key: None,
        value: Some(value),
        timestamp_ms: Some(0),
        partition: partition as i32,
        offset: offset as i64,
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Process the next records of a partition into the current batch.
    Take(usize, usize),
    /// The batch's transaction commits.
    Commit,
    /// The batch's transaction aborts: state rolled back, partitions rewound.
    Abort,
    /// A partition is revoked and assigned again: restored from the changelog.
    Reassign(usize),
    /// The replica crashes and restarts: every partition restored from the changelog.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PARTITIONS, 1usize..25).prop_map(|(p, n)| Op::Take(p, n)),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => (0..PARTITIONS).prop_map(Op::Reassign),
        1 => Just(Op::Restart),
    ]
}

/// Restores a partition into `task`; returns the offset to resume from and the offset up to
/// which records are replayed without outputs.
fn restore(
    changelog: &CompactedChangelog,
    task: &mut Task<TemperatureJob>,
    partition: usize,
) -> (usize, usize) {
    let (checkpoint, unreadable) = changelog.restore(task, partition as i32);
    assert_eq!(unreadable, 0, "every value readable");
    checkpoint.map_or((0, 0), |c| {
        (c.resume_offset() as usize, c.next_offset as usize)
    })
}

/// Drives the task as the engine does; returns the committed outputs per partition.
fn simulate(
    window_size: usize,
    snapshots: SnapshotPolicy,
    logs: &[Vec<Vec<u8>>],
    ops: &[Op],
) -> (Vec<Vec<Vec<u8>>>, Vec<usize>) {
    let mut task = Task::with_snapshots(job(window_size), snapshots);
    let mut changelog = CompactedChangelog::default();
    let mut position = vec![0usize; PARTITIONS];
    let mut replay_until = [0usize; PARTITIONS];
    let mut batch_start: Vec<Option<usize>> = vec![None; PARTITIONS];
    let mut committed_out = vec![Vec::new(); PARTITIONS];
    let mut writes = StateWrites::default();
    for p in 0..PARTITIONS {
        (position[p], replay_until[p]) = restore(&changelog, &mut task, p);
    }
    let commit = |task: &mut Task<TemperatureJob>,
                  changelog: &mut CompactedChangelog,
                  position: &[usize],
                  batch_start: &mut Vec<Option<usize>>,
                  committed_out: &mut Vec<Vec<Vec<u8>>>,
                  writes: &mut StateWrites| {
        for output in task.outputs().records() {
            let sensor: u8 = std::str::from_utf8(output.key).unwrap()[7..]
                .parse()
                .unwrap();
            committed_out[sensor as usize % PARTITIONS].push(output.value.to_vec());
        }
        let next: Vec<(i32, std::ops::Range<i64>)> = (0..PARTITIONS)
            .filter_map(|p| Some((p as i32, batch_start[p]? as i64..position[p] as i64)))
            .collect();
        writes.clear();
        task.changelog(next, writes);
        changelog.write(writes);
        task.commit();
        batch_start.iter_mut().for_each(|s| *s = None);
    };
    for op in ops.iter().cloned().chain([Op::Commit]) {
        match op {
            Op::Take(p, n) => {
                let end = (position[p] + n).min(logs[p].len());
                for offset in position[p]..end {
                    batch_start[p].get_or_insert(offset);
                    let result = task.process(&record(p, offset, &logs[p][offset]));
                    match result {
                        Ok(Processed::Replayed) => assert!(offset < replay_until[p]),
                        Ok(processed) => {
                            assert!(offset >= replay_until[p]);
                            assert_eq!(processed, Processed::Applied);
                        }
                        Err(reason) => {
                            assert!(offset >= replay_until[p]);
                            assert_eq!(reason.kind(), "not_json");
                        }
                    }
                }
                position[p] = end;
            }
            Op::Commit => commit(
                &mut task,
                &mut changelog,
                &position,
                &mut batch_start,
                &mut committed_out,
                &mut writes,
            ),
            Op::Abort => {
                task.rollback();
                for p in 0..PARTITIONS {
                    if let Some(start) = batch_start[p].take() {
                        position[p] = start;
                    }
                }
            }
            Op::Reassign(p) => {
                // Between batches, as the engine sees rebalances: commit what is pending.
                commit(
                    &mut task,
                    &mut changelog,
                    &position,
                    &mut batch_start,
                    &mut committed_out,
                    &mut writes,
                );
                task.drop_partition(p as i32);
                (position[p], replay_until[p]) = restore(&changelog, &mut task, p);
            }
            Op::Restart => {
                task = Task::with_snapshots(job(window_size), snapshots);
                batch_start.iter_mut().for_each(|s| *s = None);
                for p in 0..PARTITIONS {
                    (position[p], replay_until[p]) = restore(&changelog, &mut task, p);
                }
            }
        }
    }
    // Outputs stand where processing had reached, even when a restore's replay has not.
    let reached = (0..PARTITIONS)
        .map(|p| position[p].max(replay_until[p]))
        .collect();
    (committed_out, reached)
}

/// What a partition's outputs must be: per reading, in order, the reference's alert and
/// average (the events of the prefix up to it, less those of the prefix before it), then the
/// model's anomaly and prediction from its sensor's model run straight through the readings.
fn expected(window_size: usize, log: &[Vec<u8>], upto: usize) -> Vec<Vec<u8>> {
    use sensor_contract::model::{SensorModel, judge};

    let readings: Vec<Reading<'_>> = log[..upto]
        .iter()
        .filter_map(|v| {
            let raw = RawRecord {
                key: None,
                payload: Some(v),
                timestamp_ms: Some(0),
                offset: 0,
            };
            Reading::decode(&raw, &DecodeOptions::default()).ok()
        })
        .collect();
    let rules = ProcessingRules {
        window_size,
        threshold: 40.0,
    };
    let mut models = std::collections::HashMap::<String, SensorModel>::new();
    let mut out = Vec::new();
    let mut before = 0;
    for (i, reading) in readings.iter().enumerate() {
        let events = expected_events(&readings[..=i], rules);
        out.extend(events[before..].iter().map(Event::to_json));
        before = events.len();
        let model = models.entry(reading.sensor_id.to_string()).or_default();
        judge(model, reading, &MODEL, PREDICTION_EVERY, |event| {
            let mut bytes = Vec::new();
            event.write_json(&mut bytes);
            out.push(bytes);
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_job_on_the_store_matches_the_reference_through_aborts_and_restores(
        items in prop::collection::vec((0u8..6, -50.0f64..80.0, prop::bool::weighted(0.05)), 0..300),
        ops in prop::collection::vec(op(), 0..60),
        window_size in 1usize..12,
        every_records in prop_oneof![Just(0u64), 1u64..40],
    ) {
        let logs = partition_logs(&items);
        let snapshots = SnapshotPolicy { every_records };
        let (outputs, position) = simulate(window_size, snapshots, &logs, &ops);
        for p in 0..PARTITIONS {
            prop_assert_eq!(&outputs[p], &expected(window_size, &logs[p], position[p]), "partition {}", p);
        }
    }
}

#[test]
fn sensor_state_round_trips_in_version_3_and_reads_versions_2_1_and_0() {
    use sensor_contract::model::{ModelSettings, SensorModel};

    let job = job(4);
    let mut window = Window::new(4);
    for v in [1.5, 2.5, 3.5, 4.5, 5.5] {
        window.push(v);
    }
    let mut model = SensorModel::default();
    for (seq, v) in [(0, 21.0), (1, 21.5), (2, 21.25)] {
        model.update(seq, v, Some(7), &ModelSettings::default());
    }
    let state = SensorState {
        window: window.clone(),
        model: Some(Box::new(model)),
    };
    let mut bytes = Vec::new();
    job.encode_state(&state, &mut bytes);
    assert_eq!(bytes.len(), 4 + 4 * 8 + SensorModel::ENCODED_LEN);
    assert_eq!(job.decode_state(3, &bytes).unwrap(), state);
    // Version 2 had the same bytes (always a 49-byte model).
    assert_eq!(job.decode_state(2, &bytes).unwrap(), state);
    // The seasonal model: 145 bytes.
    let mut seasonal = SensorModel::default();
    let daily = ModelSettings {
        seasonality: sensor_contract::model::Seasonality::Daily,
        ..ModelSettings::default()
    };
    for (seq, v) in [(0, 21.0), (1, 21.5), (2, 21.25)] {
        seasonal.update(seq, v, Some(7), &daily);
    }
    let seasonal_state = SensorState {
        window: window.clone(),
        model: Some(Box::new(seasonal)),
    };
    let mut seasonal_bytes = Vec::new();
    job.encode_state(&seasonal_state, &mut seasonal_bytes);
    assert_eq!(seasonal_bytes.len(), 4 + 4 * 8 + SensorModel::SEASONAL_LEN);
    assert_eq!(
        job.decode_state(3, &seasonal_bytes).unwrap(),
        seasonal_state
    );
    // Anomalies off: the window alone, and a new model when read back.
    let off = TemperatureJob::new(
        ProcessingRules {
            window_size: 4,
            threshold: 40.0,
        },
        DecodeOptions::default(),
    );
    let mut window_only = Vec::new();
    off.encode_state(&state, &mut window_only);
    assert_eq!(window_only.len(), 4 + 4 * 8);
    // Version 1 (the window alone), from before the model: a new model.
    let fresh = SensorState {
        window: window.clone(),
        model: None,
    };
    // Anomalies off: a model written before is checked, not kept (it is not written again).
    assert_eq!(off.decode_state(3, &bytes).unwrap(), fresh);
    assert_eq!(off.decode_state(2, &bytes).unwrap(), fresh);
    assert!(off.decode_state(3, &bytes[..bytes.len() - 1]).is_err());
    // A new model writes the bytes of a new model.
    let mut new_model = Vec::new();
    job.encode_state(&fresh, &mut new_model);
    assert_eq!(new_model.len(), 4 + 4 * 8 + SensorModel::ENCODED_LEN);
    assert_eq!(
        job.decode_state(3, &new_model).unwrap().model,
        Some(Box::default())
    );
    let v1 = &bytes[..4 + 4 * 8];
    assert_eq!(job.decode_state(1, v1).unwrap(), fresh);
    assert_eq!(job.decode_state(3, &window_only).unwrap(), fresh);
    // The processor's JSON from before the engine's envelope; a larger window keeps the newest.
    let v0 = job.decode_state(0, br#"{"offset":77,"values":[0.5,1.5,2.5,3.5,4.5,5.5]}"#);
    assert_eq!(v0.unwrap(), fresh);
    assert!(job.decode_state(1, &bytes[..10]).is_err());
    assert!(job.decode_state(2, &bytes[..10]).is_err());
    assert!(job.decode_state(2, v1).is_err());
    assert!(job.decode_state(3, &bytes[..bytes.len() - 1]).is_err());
    assert!(job.decode_state(4, &bytes).is_err());
}

#[test]
fn an_unusable_record_changes_nothing_and_says_why() {
    let mut task = Task::new(job(10));
    let err = task.process(&record(3, 5, b"nope")).unwrap_err();
    assert_eq!(err.kind(), "not_json");
    assert_eq!(
        err.to_string(),
        "record value is not valid JSON: expected ident at line 1 column 2"
    );
    assert_eq!(task.store().keys(), 0);
    assert!(task.outputs().is_empty());
}
