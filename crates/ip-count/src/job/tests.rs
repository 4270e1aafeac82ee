//! The counting job on the engine's task (store, undo log, stream time, changelog encoding)
//! held to the naive model under random out-of-order times, batches, aborts and restores.

// Partitions are numbers here, as in Kafka: indexing by them reads best.
#![allow(clippy::needless_range_loop)]

use proptest::prelude::*;
use stream_engine::task::{CompactedChangelog, SnapshotPolicy, StateWrites};
use stream_engine::{InputRecord, Processed, Task};

use super::*;
use crate::reference::expected;

const PARTITIONS: usize = 2;

/// Each partition's records: (IP, event time) or an unusable value.
fn logs(items: &[(u8, i64, bool)]) -> Vec<Vec<(String, Vec<u8>)>> {
    let mut logs = vec![Vec::new(); PARTITIONS];
    for &(ip, time, bad) in items {
        let key = format!("10.0.0.{ip}");
        let value = if bad {
            b"yesterday".to_vec()
        } else {
            time.to_string().into_bytes()
        };
        logs[ip as usize % PARTITIONS].push((key, value));
    }
    logs
}

fn model_input(log: &[(String, Vec<u8>)]) -> Vec<Option<(String, i64)>> {
    log.iter()
        .map(|(k, v)| {
            let time = std::str::from_utf8(v).ok()?.parse().ok()?;
            Some((k.clone(), time))
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Take(usize, usize),
    Commit,
    Abort,
    Reassign(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PARTITIONS, 1usize..20).prop_map(|(p, n)| Op::Take(p, n)),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => (0..PARTITIONS).prop_map(Op::Reassign),
    ]
}

/// Restores a partition into `task`; returns the offset to resume from and the offset up to
/// which records are replayed without outputs.
fn restore(
    changelog: &CompactedChangelog,
    task: &mut Task<CountJob>,
    partition: usize,
) -> (usize, usize) {
    let (checkpoint, unreadable) = changelog.restore(task, partition as i32);
    assert_eq!(unreadable, 0, "every value readable");
    checkpoint.map_or((0, 0), |c| {
        (c.resume_offset() as usize, c.next_offset as usize)
    })
}

struct Committed {
    counts: Vec<Vec<Count>>,
    late: Vec<usize>,
}

fn simulate(
    rules: WindowRules,
    snapshots: SnapshotPolicy,
    logs: &[Vec<(String, Vec<u8>)>],
    ops: &[Op],
) -> (Committed, Vec<usize>) {
    let mut task = Task::with_snapshots(CountJob::new(rules), snapshots);
    let mut changelog = CompactedChangelog::default();
    let mut position = vec![0usize; PARTITIONS];
    let mut replay_until = [0usize; PARTITIONS];
    let mut batch_start: Vec<Option<usize>> = vec![None; PARTITIONS];
    let mut pending_late = vec![0usize; PARTITIONS];
    let mut committed = Committed {
        counts: vec![Vec::new(); PARTITIONS],
        late: vec![0; PARTITIONS],
    };
    let mut writes = StateWrites::default();
    let mut commit = |task: &mut Task<CountJob>,
                      changelog: &mut CompactedChangelog,
                      position: &[usize],
                      batch_start: &mut Vec<Option<usize>>,
                      pending_late: &mut Vec<usize>,
                      committed: &mut Committed| {
        for output in task.outputs().records() {
            let count: Count = serde_json::from_slice(output.value).unwrap();
            assert_eq!(output.key, count.ip.as_bytes());
            let ip: u8 = count.ip.rsplit('.').next().unwrap().parse().unwrap();
            committed.counts[ip as usize % PARTITIONS].push(count);
        }
        for p in 0..PARTITIONS {
            committed.late[p] += std::mem::take(&mut pending_late[p]);
        }
        let next: Vec<(i32, std::ops::Range<i64>)> = (0..PARTITIONS)
            .filter_map(|p| Some((p as i32, batch_start[p]? as i64..position[p] as i64)))
            .collect();
        writes.clear();
        task.changelog(next, &mut writes);
        changelog.write(&writes);
        task.commit();
        batch_start.iter_mut().for_each(|s| *s = None);
    };
    for op in ops.iter().cloned().chain([Op::Commit]) {
        match op {
            Op::Take(p, n) => {
                let end = (position[p] + n).min(logs[p].len());
                for offset in position[p]..end {
                    batch_start[p].get_or_insert(offset);
                    let (key, value) = &logs[p][offset];
                    let record = InputRecord {
                        key: Some(key.as_bytes()),
                        value: Some(value),
                        timestamp_ms: Some(0),
                        partition: p as i32,
                        offset: offset as i64,
                    };
                    match task.process(&record) {
                        Ok(Processed::Replayed) => assert!(offset < replay_until[p]),
                        Err(Unusable::Late { .. }) => {
                            assert!(offset >= replay_until[p]);
                            pending_late[p] += 1;
                        }
                        _ => assert!(offset >= replay_until[p]),
                    }
                }
                position[p] = end;
            }
            Op::Commit => commit(
                &mut task,
                &mut changelog,
                &position,
                &mut batch_start,
                &mut pending_late,
                &mut committed,
            ),
            Op::Abort => {
                task.rollback();
                pending_late.iter_mut().for_each(|l| *l = 0);
                for p in 0..PARTITIONS {
                    if let Some(start) = batch_start[p].take() {
                        position[p] = start;
                    }
                }
            }
            Op::Reassign(p) => {
                commit(
                    &mut task,
                    &mut changelog,
                    &position,
                    &mut batch_start,
                    &mut pending_late,
                    &mut committed,
                );
                task.drop_partition(p as i32);
                (position[p], replay_until[p]) = restore(&changelog, &mut task, p);
            }
        }
    }
    // Outputs stand where processing had reached, even when a restore's replay has not.
    let reached = (0..PARTITIONS)
        .map(|p| position[p].max(replay_until[p]))
        .collect();
    (committed, reached)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn counts_match_the_naive_model_through_aborts_and_restores(
        // Times mostly moving forward with jitter: some within the lateness, some beyond it.
        items in prop::collection::vec((0u8..8, 0i64..40, prop::bool::weighted(0.05)), 0..300)
            .prop_map(|v| v.into_iter().enumerate()
                .map(|(i, (ip, jitter, bad))| (ip, i as i64 * 3 - jitter, bad))
                .collect::<Vec<_>>()),
        ops in prop::collection::vec(op(), 0..60),
        size_ms in 5i64..40,
        lateness_ms in 0i64..20,
        every_records in prop_oneof![Just(0u64), 1u64..40],
    ) {
        let rules = WindowRules { size_ms, lateness_ms };
        let logs = logs(&items);
        let snapshots = SnapshotPolicy { every_records };
        let (mut committed, position) = simulate(rules, snapshots, &logs, &ops);
        for p in 0..PARTITIONS {
            let model = expected(rules, &model_input(&logs[p][..position[p]]));
            committed.counts[p].sort();
            prop_assert_eq!(&committed.counts[p], &model.closed, "partition {}", p);
            prop_assert_eq!(committed.late[p], model.late, "late records, partition {}", p);
        }
    }
}

fn request(offset: i64, time: &'static str) -> InputRecord<'static> {
    InputRecord {
        key: Some(b"192.0.2.7"),
        value: Some(time.as_bytes()),
        timestamp_ms: None,
        partition: 0,
        offset,
    }
}

fn counts(task: &Task<CountJob>) -> Vec<Count> {
    task.outputs()
        .records()
        .map(|o| serde_json::from_slice(o.value).unwrap())
        .collect()
}

#[test]
fn windows_close_on_stream_time_and_a_late_record_says_why() {
    let mut task = Task::new(CountJob::new(WindowRules {
        size_ms: 60_000,
        lateness_ms: 10_000,
    }));
    let count = |start: i64, count: u64| Count {
        window_start_ms: start,
        window_end_ms: start + 60_000,
        ip: "192.0.2.7".into(),
        count,
    };
    task.process(&request(0, "65000")).unwrap();
    // Window [0, 60 s) closes at stream time 70 s: at 65 s it still counts.
    task.process(&request(1, "1000")).unwrap();
    task.process(&request(2, "1500")).unwrap();
    assert!(task.outputs().is_empty());
    task.process(&request(3, "125000")).unwrap();
    assert_eq!(counts(&task), [count(0, 2)]);
    task.process(&request(4, "135000")).unwrap();
    assert_eq!(counts(&task), [count(0, 2), count(60_000, 1)]);
    let err = task.process(&request(5, "59999")).unwrap_err();
    assert_eq!(err.kind(), "late");
    assert_eq!(
        err.to_string(),
        "event time 59999 is in the window starting 0, which closed at stream time 70000 (stream time now 135000)"
    );
    assert_eq!(task.outputs().len(), 2, "a late record emits nothing");
}
