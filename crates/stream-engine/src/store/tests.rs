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
        Some(100),
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
