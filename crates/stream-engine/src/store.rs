//! Keyed state per assigned partition, with an undo log of the current batch and each
//! partition's stream time.
//!
//! Pure. The engine loads a partition's state from the changelog before applying any of its
//! records, commits a batch when it is durable, rolls it back when its transaction aborts,
//! and writes the keys changed since the partition's last snapshot to the changelog when the
//! next snapshot is due. After a restore from an older snapshot, the records up to where
//! processing had reached are replayed into the state without emitting anything.

use std::collections::HashMap;

use hashbrown::hash_map::EntryRef;
use smol_str::SmolStr;

use crate::codec::{Checkpoint, Snapshot};

/// One partition's keys. Keys are `SmolStr`s: up to 23 bytes they live inside the map's
/// bucket, so finding one touches no other memory, and saving one in the undo log copies 24
/// bytes. hashbrown's map with its default foldhash hasher is several times faster than
/// std's SipHash on short keys; HashDoS resistance buys little here, since a producer able to
/// choose keys at will can already fill the processor's memory.
type Slots<S> = hashbrown::HashMap<SmolStr, Slot<S>>;

/// A key's state, with the input offset last applied to it, the batch that last saved it in
/// the undo log, and whether it changed since the partition's snapshot (a snapshot writes the
/// slots so flagged).
#[derive(Debug, Clone)]
struct Slot<S> {
    state: S,
    applied_offset: i64,
    batch: u64,
    dirty: bool,
}

#[derive(Debug)]
struct Partition<S> {
    slots: Slots<S>,
    stream_time: Option<i64>,
    /// The stream time when the current batch began.
    committed_stream_time: Option<i64>,
    /// Keys removed since the snapshot, or created by a batch that was rolled back: a
    /// snapshot writes a tombstone for each that does not exist again. Changed keys are not
    /// listed but flagged in their slots: a list of every key changed since the snapshot was
    /// 24 bytes per key (2.4 MiB with 100 000 sensors), a scan of the flags at a snapshot costs
    /// microseconds per thousand keys.
    removed: Vec<SmolStr>,
    /// Where the changelog's values for this partition stand; `None`: nothing written yet.
    snapshot: Option<Snapshot>,
    /// The snapshot the current batch writes, once it commits.
    pending_snapshot: Option<Snapshot>,
    /// Records applied since the snapshot.
    records_since_snapshot: u64,
    /// The checkpoint restored from, while records before it (processed before a restore
    /// from an older snapshot) are applied to the state again without their outputs.
    replaying: Option<Checkpoint>,
    /// A snapshot was asked for (by time) and is written with the partition's next batch.
    snapshot_requested: bool,
}

impl<S> Default for Partition<S> {
    fn default() -> Self {
        Self {
            slots: Slots::default(),
            stream_time: None,
            committed_stream_time: None,
            removed: Vec::new(),
            snapshot: None,
            pending_snapshot: None,
            records_since_snapshot: 0,
            replaying: None,
            snapshot_requested: false,
        }
    }
}

/// One key of a snapshot: its state and applied offset, or `None`: removed.
pub type SnapshotEntry<'a, S> = (&'a str, Option<(&'a S, i64)>);

/// A key the current batch touched, and its state and applied offset before the batch
/// (`None`: the batch created it). Boxed: a batch of new keys (a processor's first pass over
/// 100 000 sensors) then logs 40 bytes per key rather than a whole state each, and the log
/// keeps its capacity between batches.
#[derive(Debug)]
struct Undo<S> {
    partition: i32,
    key: SmolStr,
    before: Option<Box<(S, i64)>>,
}

/// A key's state as restored from the changelog.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored<S> {
    /// The state.
    pub state: S,
    /// The input offset last applied to it.
    pub applied_offset: i64,
}

/// The state of every assigned partition.
#[derive(Debug)]
pub struct StateStore<S> {
    partitions: HashMap<i32, Partition<S>>,
    undo: Vec<Undo<S>>,
    /// The current batch's number, from 1; a slot holding it is in the undo log.
    batch: u64,
}

impl<S> Default for StateStore<S> {
    fn default() -> Self {
        Self {
            partitions: HashMap::new(),
            undo: Vec::new(),
            batch: 1,
        }
    }
}

impl<S: Clone> StateStore<S> {
    /// Makes a partition's restored state current; its records can be applied from now on.
    /// The values stand at the checkpoint's snapshot (no checkpoint: nothing was written);
    /// the records from there to the checkpoint are replayed silently.
    pub fn load_partition(
        &mut self,
        partition: i32,
        keys: impl IntoIterator<Item = (SmolStr, Restored<S>)>,
        checkpoint: Option<Checkpoint>,
    ) {
        let slots = keys
            .into_iter()
            .map(|(key, r)| {
                let slot = Slot {
                    state: r.state,
                    applied_offset: r.applied_offset,
                    batch: 0,
                    dirty: false,
                };
                (key, slot)
            })
            .collect();
        let snapshot = checkpoint.map(|c| c.snapshot());
        let stream_time = snapshot.and_then(|s| s.stream_time_ms);
        let behind = checkpoint
            .zip(snapshot)
            .map_or(0, |(c, s)| c.next_offset - s.next_offset);
        self.partitions.insert(
            partition,
            Partition {
                slots,
                stream_time,
                committed_stream_time: stream_time,
                snapshot,
                records_since_snapshot: u64::try_from(behind).unwrap_or(0),
                replaying: checkpoint.filter(|_| behind > 0),
                ..Partition::default()
            },
        );
    }

    /// Whether the record at `offset` was processed before the partition's restore: it is
    /// applied again without emitting anything.
    pub fn replaying(&self, partition: i32, offset: i64) -> bool {
        let Some(p) = self.partitions.get(&partition) else {
            return false;
        };
        // Kept after the replay: an aborted batch can rewind into it, and once a batch past it
        // commits, no earlier record comes again.
        p.replaying.is_some_and(|c| offset < c.next_offset)
    }

    /// The checkpoint restored from, while a batch ending at `next_offset` has not replayed
    /// up to it: the partition's checkpoint must not move back.
    pub fn replaying_beyond(&self, partition: i32, next_offset: i64) -> Option<Checkpoint> {
        self.partitions
            .get(&partition)?
            .replaying
            .filter(|c| next_offset < c.next_offset)
    }

    /// Counts a record applied to a partition, towards its next snapshot.
    pub fn count_record(&mut self, partition: i32) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.records_since_snapshot += 1;
        }
    }

    /// Asks every loaded partition for a snapshot with its next batch.
    pub fn request_snapshots(&mut self) {
        for p in self.partitions.values_mut() {
            p.snapshot_requested = true;
        }
    }

    /// If a snapshot of the partition is due (none yet, `every_records` applied since the
    /// last, or one was asked for), the keys changed or removed since the last one, and the
    /// snapshot this batch writes (`next_offset` and the stream time now), which becomes the
    /// partition's snapshot when the batch commits. `None`: not due, or the partition is not
    /// loaded.
    pub fn take_snapshot(
        &mut self,
        partition: i32,
        next_offset: i64,
        every_records: u64,
    ) -> Option<(Snapshot, impl Iterator<Item = SnapshotEntry<'_, S>>)> {
        let p = self.partitions.get_mut(&partition)?;
        let due = p.snapshot.is_none()
            || p.snapshot_requested
            || p.records_since_snapshot >= every_records;
        if !due {
            return None;
        }
        let snapshot = Snapshot {
            next_offset,
            stream_time_ms: p.stream_time,
        };
        p.pending_snapshot = Some(snapshot);
        p.removed.sort_unstable();
        p.removed.dedup();
        let slots = &p.slots;
        let tombstones = p
            .removed
            .iter()
            .filter(|key| !slots.contains_key(*key))
            .map(|key| (key.as_str(), None));
        let changed = slots
            .iter()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| (key.as_str(), Some((&slot.state, slot.applied_offset))));
        Some((snapshot, tombstones.chain(changed)))
    }

    /// The partition's snapshot as of the last committed batch.
    pub fn snapshot(&self, partition: i32) -> Option<Snapshot> {
        self.partitions.get(&partition)?.snapshot
    }

    /// Forgets a partition that is no longer assigned here, and its part of the undo log.
    pub fn drop_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        self.undo.retain(|u| u.partition != partition);
    }

    /// Whether the partition's state is loaded.
    pub fn has_partition(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Keys in memory, over all partitions.
    pub fn keys(&self) -> usize {
        self.partitions.values().map(|p| p.slots.len()).sum()
    }

    /// A partition's stream time: the largest event time applied to it, if any.
    pub fn stream_time(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition)?.stream_time
    }

    /// `key`'s state, to apply the input at `offset` to (created by `new` if missing), or
    /// `None` if the key has already applied that offset. The key's applied offset becomes
    /// `offset`; its first change in a batch saves its state in the undo log. A partition not
    /// loaded yet is created empty.
    pub fn entry(
        &mut self,
        partition: i32,
        key: &str,
        offset: i64,
        new: impl FnOnce() -> S,
    ) -> Option<&mut S> {
        let batch = self.batch;
        let p = self.partitions.entry(partition).or_default();
        let slot = match p.slots.entry_ref(key) {
            EntryRef::Occupied(mut entry) => {
                if offset <= entry.get().applied_offset {
                    return None;
                }
                if entry.get().batch != batch {
                    let before = Box::new((entry.get().state.clone(), entry.get().applied_offset));
                    self.undo.push(Undo {
                        partition,
                        key: entry.key().clone(),
                        before: Some(before),
                    });
                    entry.get_mut().batch = batch;
                }
                let slot = entry.into_mut();
                slot.dirty = true;
                slot
            }
            EntryRef::Vacant(entry) => {
                let key = SmolStr::new(key);
                self.undo.push(Undo {
                    partition,
                    key: key.clone(),
                    before: None,
                });
                let slot = Slot {
                    state: new(),
                    applied_offset: -1,
                    batch,
                    dirty: true,
                };
                entry.insert_with_key(key, slot)
            }
        };
        slot.applied_offset = offset;
        Some(&mut slot.state)
    }

    /// Moves a partition's stream time to `event_time` if that is later; returns the new
    /// stream time when it moved.
    pub fn advance_stream_time(&mut self, partition: i32, event_time: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition)?;
        if p.stream_time.is_some_and(|t| t >= event_time) {
            return None;
        }
        p.stream_time = Some(event_time);
        Some(event_time)
    }

    /// A partition's keys, for a job acting on its stream time.
    pub fn view(&mut self, partition: i32) -> Option<PartitionView<'_, S>> {
        let p = self.partitions.get_mut(&partition)?;
        Some(PartitionView {
            partition,
            batch: self.batch,
            slots: &mut p.slots,
            removed: &mut p.removed,
            undo: &mut self.undo,
        })
    }

    /// The keys the current batch changed, with their state and applied offset now (`None`:
    /// the batch removed the key), for the changelog. A key removed and created again in one
    /// batch comes twice, with its final state both times.
    pub fn touched(&self) -> impl Iterator<Item = (i32, &str, Option<(&S, i64)>)> {
        self.undo.iter().filter_map(|undo| {
            let slots = &self.partitions.get(&undo.partition)?.slots;
            let now = slots
                .get(&undo.key)
                .map(|slot| (&slot.state, slot.applied_offset));
            Some((undo.partition, &*undo.key, now))
        })
    }

    /// The batch is durable: forget how to undo it.
    pub fn commit(&mut self) {
        self.undo.clear();
        for p in self.partitions.values_mut() {
            p.committed_stream_time = p.stream_time;
            if let Some(snapshot) = p.pending_snapshot.take() {
                p.removed.clear();
                for slot in p.slots.values_mut() {
                    slot.dirty = false;
                }
                p.snapshot = Some(snapshot);
                p.records_since_snapshot = 0;
                p.snapshot_requested = false;
            }
        }
        self.batch += 1;
    }

    /// The batch was aborted: every key it touched, and every stream time, back as they were.
    pub fn rollback(&mut self) {
        // Newest first: a key removed and then created again ends as it was before both.
        while let Some(undo) = self.undo.pop() {
            let Some(p) = self.partitions.get_mut(&undo.partition) else {
                continue;
            };
            match undo.before.map(|before| *before) {
                Some((state, applied_offset)) => {
                    // Dirty: it may have been since the snapshot; writing it again is harmless.
                    let slot = Slot {
                        state,
                        applied_offset,
                        batch: 0,
                        dirty: true,
                    };
                    p.slots.insert(undo.key, slot);
                }
                None => {
                    // A tombstone at the next snapshot, in case the aborted batch's snapshot
                    // reached the changelog (`at_least_once` writes it outside a transaction).
                    p.slots.remove(&undo.key);
                    p.removed.push(undo.key);
                }
            }
        }
        for p in self.partitions.values_mut() {
            p.stream_time = p.committed_stream_time;
            p.pending_snapshot = None;
        }
        self.batch += 1;
    }

    /// Every key of a partition with its state and applied offset (for tests and audits).
    pub fn partition_state(&self, partition: i32) -> Vec<(SmolStr, Restored<S>)> {
        let Some(p) = self.partitions.get(&partition) else {
            return Vec::new();
        };
        p.slots
            .iter()
            .map(|(key, slot)| {
                let restored = Restored {
                    state: slot.state.clone(),
                    applied_offset: slot.applied_offset,
                };
                (key.clone(), restored)
            })
            .collect()
    }
}

/// One partition's keys, as a job acting on stream time sees them. Changes made through it
/// are logged for undo and written to the changelog like any other.
#[derive(Debug)]
pub struct PartitionView<'a, S> {
    partition: i32,
    batch: u64,
    slots: &'a mut Slots<S>,
    removed: &'a mut Vec<SmolStr>,
    undo: &'a mut Vec<Undo<S>>,
}

impl<S: Clone> PartitionView<'_, S> {
    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Every key and its state.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &S)> {
        self.slots.iter().map(|(k, slot)| (k.as_str(), &slot.state))
    }

    /// The keys whose state satisfies `select`.
    pub fn keys_where(&self, mut select: impl FnMut(&str, &S) -> bool) -> Vec<SmolStr> {
        self.slots
            .iter()
            .filter(|(k, slot)| select(k, &slot.state))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A key's state, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut S> {
        let (key, slot) = self.slots.get_key_value_mut(key)?;
        if slot.batch != self.batch {
            slot.batch = self.batch;
            self.undo.push(Undo {
                partition: self.partition,
                key: key.clone(),
                before: Some(Box::new((slot.state.clone(), slot.applied_offset))),
            });
        }
        slot.dirty = true;
        Some(&mut slot.state)
    }

    /// Removes a key (a tombstone in the changelog); returns its state.
    pub fn remove(&mut self, key: &str) -> Option<S> {
        let (key, slot) = self.slots.remove_entry(key)?;
        self.removed.push(key.clone());
        if slot.batch != self.batch {
            self.undo.push(Undo {
                partition: self.partition,
                key,
                before: Some(Box::new((slot.state.clone(), slot.applied_offset))),
            });
        }
        Some(slot.state)
    }
}

#[cfg(test)]
mod tests;
