//! A job with its state store: what one record does, without Kafka. The engine's loop feeds
//! it records and commits or rolls back its batches; the property tests drive the very same
//! code with random records, aborts, revocations and restores.

use std::ops::Range;

use smol_str::SmolStr;

use crate::codec::{self, Checkpoint, Snapshot};
use crate::job::{ApplyContext, InputRecord, Job};
use crate::outputs::Outputs;
use crate::store::{Restored, StateStore};

/// What became of a record that was not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Applied to its key's state; its outputs were emitted.
    Applied,
    /// Its key's state already holds it (replayed after an at-least-once crash): no outputs.
    AlreadyApplied,
    /// Processed before the partition was restored from an older snapshot: applied to the
    /// state again; its outputs (or its dead letter) were produced then, not again now.
    Replayed,
}

/// When a partition's changed keys are written to the changelog.
///
/// Writing every changed key with every batch costs a changelog record for nearly every input
/// record when keys are many (10 000 sensors read in turn: one per reading), twice the records
/// produced. Instead each batch writes only a checkpoint per partition, and the keys changed
/// since the last snapshot are written once `every_records` records have been applied to the
/// partition since (or when the engine asks, by time). A restore then replays at most that
/// many records of the input, silently: what a snapshot saves in changelog records, it costs
/// in restore time, measured in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Records applied to a partition between snapshots; 0 or 1: every batch.
    pub every_records: u64,
}

impl Default for SnapshotPolicy {
    /// Every batch: the changelog always current, no replay on restore.
    fn default() -> Self {
        Self { every_records: 0 }
    }
}

/// A job, its keyed state and the outputs of the current batch.
#[derive(Debug)]
pub struct Task<J: Job> {
    job: J,
    store: StateStore<J::State>,
    outputs: Outputs,
    policy: SnapshotPolicy,
}

impl<J: Job> Task<J> {
    /// A task with no partition loaded, writing its state with every batch.
    pub fn new(job: J) -> Self {
        Self::with_snapshots(job, SnapshotPolicy::default())
    }

    /// A task with no partition loaded, writing its state as `policy` says.
    pub fn with_snapshots(job: J, policy: SnapshotPolicy) -> Self {
        Self {
            job,
            store: StateStore::default(),
            outputs: Outputs::default(),
            policy,
        }
    }

    /// The job.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// The state store.
    pub fn store(&self) -> &StateStore<J::State> {
        &self.store
    }

    /// Decodes a record and applies it to its key's state, emitting its outputs into
    /// [`Task::outputs`]; an unusable record (undecodable, or rejected by the job) is returned
    /// as the error.
    /// Afterwards the partition's stream time advances to the record's event time if that is
    /// later, and the job acts on it.
    pub fn process(&mut self, record: &InputRecord<'_>) -> Result<Processed, J::Reject> {
        if !self.store.replaying(record.partition, record.offset) {
            return self.apply(record);
        }
        let emitted = self.outputs.len();
        let applied = self.apply(record);
        self.outputs.truncate(emitted);
        Ok(match applied {
            Ok(Processed::AlreadyApplied) => Processed::AlreadyApplied,
            _ => Processed::Replayed,
        })
    }

    fn apply(&mut self, record: &InputRecord<'_>) -> Result<Processed, J::Reject> {
        let Self {
            job,
            store,
            outputs,
            ..
        } = self;
        let input = job.decode(record)?;
        let event_time = job.event_time_ms(&input, record);
        let key = job.key(&input);
        let previous = store.stream_time(record.partition);
        let context = ApplyContext {
            partition: record.partition,
            offset: record.offset,
            stream_time_ms: previous,
        };
        let processed = match store.entry(record.partition, key, record.offset, || job.new_state())
        {
            Some(state) => {
                job.apply(&input, state, &context, outputs)?;
                store.count_record(record.partition);
                Processed::Applied
            }
            None => Processed::AlreadyApplied,
        };
        if let Some(event_time) = event_time
            && let Some(stream_time) = store.advance_stream_time(record.partition, event_time)
            && let Some(mut view) = store.view(record.partition)
        {
            job.on_stream_time(previous, stream_time, &mut view, outputs);
        }
        Ok(processed)
    }

    /// The outputs emitted since the last [`Task::clear_outputs`].
    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// Forgets the emitted outputs (they were produced).
    pub fn clear_outputs(&mut self) {
        self.outputs.clear();
    }

    /// Appends the current batch's changelog records to `writes`, for each partition of
    /// `batch` (partition, the input offsets the batch processed: its first record's to the
    /// next input offset) still loaded: when its snapshot is due, each key changed since the
    /// last (no value: removed), then its checkpoint. Nothing for a stateless job.
    pub fn changelog(
        &mut self,
        batch: impl IntoIterator<Item = (i32, Range<i64>)>,
        writes: &mut StateWrites,
    ) {
        if !J::STATEFUL {
            return;
        }
        let every_records = self.policy.every_records;
        for (partition, offsets) in batch {
            let (from_offset, next_offset) = (offsets.start, offsets.end);
            if !self.store.has_partition(partition) {
                continue;
            }
            let stream_time_ms = self.store.stream_time(partition);
            let previous = self.store.snapshot(partition);
            let snapshot = match self
                .store
                .take_snapshot(partition, next_offset, every_records)
            {
                Some((_, entries)) => {
                    for (key, now) in entries {
                        let value = now.map(|(state, applied_offset)| {
                            let job = &self.job;
                            move |out: &mut Vec<u8>| {
                                codec::write_envelope(applied_offset, J::STATE_VERSION, out);
                                job.encode_state(state, out);
                            }
                        });
                        writes.push(partition, key.as_bytes(), value);
                    }
                    None
                }
                None => previous,
            };
            let checkpoint = match self.store.replaying_beyond(partition, next_offset) {
                // Still replaying what was processed before the restore: processing stands
                // where it had reached, the values where they are now (or were).
                Some(reached) => Checkpoint {
                    snapshot: Some(snapshot.unwrap_or(Snapshot {
                        next_offset,
                        stream_time_ms,
                    })),
                    input_offset: Some(next_offset),
                    from_offset: Some(from_offset),
                    ..reached
                },
                None => Checkpoint {
                    next_offset,
                    stream_time_ms,
                    snapshot,
                    input_offset: Some(next_offset),
                    from_offset: Some(from_offset),
                },
            };
            writes.push(
                partition,
                codec::CHECKPOINT_KEY,
                Some(|out: &mut Vec<u8>| out.extend_from_slice(&checkpoint.encode())),
            );
        }
    }

    /// Asks for a snapshot of every loaded partition with its next batch (the engine does,
    /// by time, so that a quiet partition's replay stays within the input's retention).
    pub fn request_snapshots(&mut self) {
        self.store.request_snapshots();
    }

    /// The batch is durable.
    pub fn commit(&mut self) {
        self.store.commit();
        self.outputs.clear();
    }

    /// The batch was aborted: its state changes are undone and its outputs forgotten.
    pub fn rollback(&mut self) {
        self.store.rollback();
        self.outputs.clear();
    }

    /// Makes a partition's state current from its changelog: each key's latest value, and
    /// the latest checkpoint; the records between the snapshot the values stand at and the
    /// checkpoint are replayed by [`Task::process`] without outputs, from the offset
    /// [`Checkpoint::resume_offset`] names. Returns how many values could not be read (logged,
    /// skipped).
    pub fn load_partition(
        &mut self,
        partition: i32,
        values: impl IntoIterator<Item = (SmolStr, Vec<u8>)>,
        checkpoint: Option<Checkpoint>,
    ) -> usize {
        let mut unreadable = 0;
        let job = &self.job;
        let keys: Vec<_> = values
            .into_iter()
            .filter_map(|(key, value)| {
                let restored = codec::read_value(&value)
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        let state = job.decode_state(v.state_version, v.state)?;
                        Ok(Restored {
                            state,
                            applied_offset: v.applied_offset,
                        })
                    });
                match restored {
                    Ok(restored) => Some((key, restored)),
                    Err(error) => {
                        unreadable += 1;
                        tracing::warn!(partition, key = %key, %error, "unreadable changelog record skipped");
                        None
                    }
                }
            })
            .collect();
        self.store.load_partition(partition, keys, checkpoint);
        unreadable
    }

    /// Forgets a partition that is no longer assigned here.
    pub fn drop_partition(&mut self, partition: i32) {
        self.store.drop_partition(partition);
    }
}

/// Changelog records of a batch, back to back in one buffer.
#[derive(Debug, Default)]
pub struct StateWrites {
    bytes: Vec<u8>,
    records: Vec<WriteSpan>,
}

/// Where one record lies in [`StateWrites::bytes`]: its key from `start` to `key_end`, then its
/// value to `value_end`. 16 bytes rather than the 48 of a partition and two ranges: a snapshot
/// of 100 000 keys holds one per key.
#[derive(Debug, Clone, Copy)]
struct WriteSpan {
    partition: i32,
    start: u32,
    key_end: u32,
    /// [`TOMBSTONE`] for no value.
    value_end: u32,
}

/// [`WriteSpan::value_end`] of a record without a value.
const TOMBSTONE: u32 = u32::MAX;

/// One changelog record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateWrite<'a> {
    /// The changelog partition (the input partition).
    pub partition: i32,
    /// The key.
    pub key: &'a [u8],
    /// The value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
}

impl StateWrites {
    fn push(&mut self, partition: i32, key: &[u8], value: Option<impl FnOnce(&mut Vec<u8>)>) {
        let start = self.offset();
        self.bytes.extend_from_slice(key);
        let key_end = self.offset();
        let value_end = match value {
            Some(write) => {
                write(&mut self.bytes);
                self.offset()
            }
            None => TOMBSTONE,
        };
        self.records.push(WriteSpan {
            partition,
            start,
            key_end,
            value_end,
        });
    }

    /// The end of the bytes so far, as a span's offset. A batch's changelog records are a
    /// value per key changed since the partition's snapshot: far from 4 GiB.
    fn offset(&self) -> u32 {
        u32::try_from(self.bytes.len())
            .ok()
            .filter(|&offset| offset != TOMBSTONE)
            .expect("a batch's changelog records take less than 4 GiB")
    }

    /// The records, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = StateWrite<'_>> {
        self.records.iter().map(|span| {
            let (start, key_end) = (span.start as usize, span.key_end as usize);
            StateWrite {
                partition: span.partition,
                key: &self.bytes[start..key_end],
                value: (span.value_end != TOMBSTONE)
                    .then(|| &self.bytes[key_end..span.value_end as usize]),
            }
        })
    }

    /// Forgets every record, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

/// A changelog topic as a compacted reader sees it, in memory: each key's latest value and
/// each partition's latest checkpoint. For tests that drive a [`Task`] through batches,
/// aborts and restores without Kafka.
#[derive(Debug, Default)]
pub struct CompactedChangelog {
    values: std::collections::HashMap<(i32, Vec<u8>), Vec<u8>>,
    checkpoints: std::collections::HashMap<i32, Checkpoint>,
}

impl CompactedChangelog {
    /// Applies a committed batch's changelog records.
    pub fn write(&mut self, writes: &StateWrites) {
        for w in writes.iter() {
            if w.key == codec::CHECKPOINT_KEY {
                if let Some(checkpoint) = w.value.and_then(|v| Checkpoint::decode(v).ok()) {
                    self.checkpoints.insert(w.partition, checkpoint);
                }
            } else if let Some(value) = w.value {
                self.values
                    .insert((w.partition, w.key.to_vec()), value.to_vec());
            } else {
                self.values.remove(&(w.partition, w.key.to_vec()));
            }
        }
    }

    /// Loads a partition into `task` as the engine's restore does; returns the checkpoint
    /// (processing resumes at its [`Checkpoint::resume_offset`]) and how many values could
    /// not be read.
    pub fn restore<J: Job>(
        &self,
        task: &mut Task<J>,
        partition: i32,
    ) -> (Option<Checkpoint>, usize) {
        let values = self
            .values
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .filter_map(|((_, key), value)| {
                let key = std::str::from_utf8(key).ok()?;
                Some((SmolStr::new(key), value.clone()))
            });
        let checkpoint = self.checkpoints.get(&partition).copied();
        let unreadable = task.load_partition(partition, values, checkpoint);
        (checkpoint, unreadable)
    }
}
