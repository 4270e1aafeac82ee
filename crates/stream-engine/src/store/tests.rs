use super::*;

fn sorted(store: &StateStore<Vec<u32>>, partition: i32) -> Vec<(String, Vec<u32>, i64)> {
    let mut keys: Vec<_> = store
        .partition_state(partition)
        .into_iter()
        .map(|(k, r)| (k.to_string(), r.state, r.applied_offset))
        .collect();
    keys.sort();
    keys
}

/// Appends the offset to the key's state; false if it was applied before.
fn push(store: &mut StateStore<Vec<u32>>, partition: i32, key: &str, offset: i64) -> bool {
    store
        .entry(partition, key, offset, Vec::new)
        .map(|s| s.push(offset as u32))
        .is_some()
}

#[test]
fn offsets_at_or_before_the_applied_one_are_not_applied_again() {
    let mut store = StateStore::default();
    assert!(push(&mut store, 0, "a", 5));
    assert!(!push(&mut store, 0, "a", 5));
    assert!(!push(&mut store, 0, "a", 4));
    assert!(push(&mut store, 0, "a", 6));
    assert_eq!(sorted(&store, 0), [("a".into(), vec![5, 6], 6)]);
}

#[test]
fn rollback_restores_keys_removals_and_stream_time() {
    let mut store = StateStore::default();
    store.load_partition(
        0,
        [(
            SmolStr::new("a"),
            Restored {
                state: vec![1],
                applied_offset: 1,
            },
        )],
        Some(Checkpoint {
            next_offset: 2,
            stream_time_ms: Some(100),
            snapshot: None,
            input_offset: Some(2),
            from_offset: None,
        }),
    );
    push(&mut store, 0, "b", 2);
    store.commit();
    let before = sorted(&store, 0);

    push(&mut store, 0, "a", 3);
    push(&mut store, 0, "c", 4);
    assert_eq!(store.advance_stream_time(0, 150), Some(150));
    assert_eq!(store.advance_stream_time(0, 120), None);
    let mut view = store.view(0).unwrap();
    assert_eq!(view.remove("b"), Some(vec![2]));
    assert_eq!(view.remove("c"), Some(vec![4]));
    push(&mut store, 0, "b", 5);
    let mut touched: Vec<_> = store
        .touched()
        .map(|(p, k, s)| (p, k.to_owned(), s.map(|(s, o)| (s.clone(), o))))
        .collect();
    touched.sort();
    assert_eq!(
        touched,
        [
            (0, "a".into(), Some((vec![1, 3], 3))),
            (0, "b".into(), Some((vec![5], 5))),
            (0, "b".into(), Some((vec![5], 5))),
            (0, "c".into(), None),
        ]
    );

    store.rollback();
    assert_eq!(sorted(&store, 0), before);
    assert_eq!(store.stream_time(0), Some(100));
    assert_eq!(store.touched().count(), 0);
}

#[test]
fn a_dropped_partition_leaves_the_undo_log() {
    let mut store = StateStore::default();
    push(&mut store, 0, "a", 0);
    push(&mut store, 1, "b", 0);
    store.drop_partition(0);
    assert!(!store.has_partition(0));
    assert_eq!(store.keys(), 1);
    assert_eq!(
        store.touched().map(|(p, k, _)| (p, k)).collect::<Vec<_>>(),
        [(1, "b")]
    );
    store.rollback();
    assert_eq!(store.keys(), 0);
}

/// Each key of a snapshot with its state (`None`: removed), sorted.
type Keys = Vec<(String, Option<Vec<u32>>)>;

/// The snapshot's keys as owned values, sorted.
fn snapshot(
    store: &mut StateStore<Vec<u32>>,
    partition: i32,
    next_offset: i64,
    every_records: u64,
) -> Option<(Snapshot, Keys)> {
    let (snapshot, entries) = store.take_snapshot(partition, next_offset, every_records)?;
    let mut keys: Vec<_> = entries
        .map(|(k, now)| (k.to_owned(), now.map(|(s, _)| s.clone())))
        .collect();
    keys.sort();
    Some((snapshot, keys))
}

#[test]
fn a_snapshot_holds_what_changed_since_the_last_and_counts_only_once_committed() {
    let mut store = StateStore::default();
    push(&mut store, 0, "a", 0);
    store.count_record(0);
    // The first batch of a partition always writes one.
    let (first, keys) = snapshot(&mut store, 0, 1, 100).unwrap();
    assert_eq!(first.next_offset, 1);
    assert_eq!(keys, [("a".to_owned(), Some(vec![0]))]);
    store.commit();
    assert_eq!(store.snapshot(0), Some(first));

    // Not due: 2 records since, 3 asked for.
    for offset in 1..3 {
        push(&mut store, 0, "b", offset);
        store.count_record(0);
    }
    assert!(store.take_snapshot(0, 3, 3).is_none());
    store.commit();
    // Due; "b" changed twice comes once, "a" removed comes as a tombstone.
    push(&mut store, 0, "c", 3);
    store.count_record(0);
    store.view(0).unwrap().remove("a");
    let (second, keys) = snapshot(&mut store, 0, 4, 3).unwrap();
    assert_eq!(second.next_offset, 4);
    assert_eq!(
        keys,
        [
            ("a".to_owned(), None),
            ("b".to_owned(), Some(vec![1, 2])),
            ("c".to_owned(), Some(vec![3])),
        ]
    );
    // Aborted: the snapshot did not happen, the keys are still to be written ("c", created
    // by the aborted batch only, gets a tombstone: one record too many, never a wrong one).
    store.rollback();
    assert_eq!(store.snapshot(0), Some(first));
    let (_, keys) = snapshot(&mut store, 0, 3, 3).unwrap();
    assert_eq!(
        keys,
        [
            ("a".to_owned(), Some(vec![0])),
            ("b".to_owned(), Some(vec![1, 2])),
            ("c".to_owned(), None),
        ]
    );
    store.commit();
    // Committed: nothing changed since, and not due again until 3 more records.
    assert!(store.take_snapshot(0, 3, 3).is_none());
    store.request_snapshots();
    assert_eq!(snapshot(&mut store, 0, 3, 3).unwrap().1, []);
}

#[test]
fn records_before_the_checkpoint_are_replayed_after_a_restore_from_an_older_snapshot() {
    let mut store: StateStore<Vec<u32>> = StateStore::default();
    let checkpoint = Checkpoint {
        next_offset: 14,
        stream_time_ms: Some(9),
        snapshot: Some(Snapshot {
            next_offset: 10,
            stream_time_ms: Some(7),
        }),
        input_offset: Some(14),
        from_offset: None,
    };
    store.load_partition(0, [], Some(checkpoint));
    assert_eq!(store.stream_time(0), Some(7), "the snapshot's stream time");
    assert!(store.replaying(0, 10));
    assert!(store.replaying(0, 13));
    assert_eq!(store.replaying_beyond(0, 12), Some(checkpoint));
    assert_eq!(store.replaying_beyond(0, 14), None);
    assert!(!store.replaying(0, 14));
    assert!(
        store.replaying(0, 12),
        "an aborted batch can rewind into the replay"
    );
    // Values as current as the checkpoint: nothing to replay.
    let current = Checkpoint {
        snapshot: None,
        ..checkpoint
    };
    store.load_partition(1, [], Some(current));
    assert!(!store.replaying(1, 9));
    assert_eq!(store.stream_time(1), Some(9));
    store.load_partition(2, [], None);
    assert!(!store.replaying(2, 0));
}
