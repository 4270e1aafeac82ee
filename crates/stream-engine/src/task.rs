//! A job with its state store: what one record does, without Kafka. The engine's loop feeds
//! it records and commits or rolls back its batches; the property tests drive the very same
//! code with random records, aborts, revocations and restores.

use std::ops::Range;

use smol_str::SmolStr;

use crate::codec::{self, Checkpoint};
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
}

/// A job, its keyed state and the outputs of the current batch.
#[derive(Debug)]
pub struct Task<J: Job> {
    job: J,
    store: StateStore<J::State>,
    outputs: Outputs,
}

impl<J: Job> Task<J> {
    /// A task with no partition loaded.
    pub fn new(job: J) -> Self {
        Self {
            job,
            store: StateStore::default(),
            outputs: Outputs::default(),
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

    /// Appends the current batch's changelog records to `writes`: each key it changed (no
    /// value: removed), then each partition's checkpoint from `next_offsets` (partition, next
    /// input offset) for the partitions still loaded. Nothing for a stateless job.
    pub fn changelog(
        &self,
        next_offsets: impl IntoIterator<Item = (i32, i64)>,
        writes: &mut StateWrites,
    ) {
        if !J::STATEFUL {
            return;
        }
        for (partition, key, now) in self.store.touched() {
            let value = now.map(|(state, applied_offset)| {
                move |out: &mut Vec<u8>| {
                    codec::write_envelope(applied_offset, J::STATE_VERSION, out);
                    self.job.encode_state(state, out);
                }
            });
            writes.push(partition, key.as_bytes(), value);
        }
        for (partition, next_offset) in next_offsets {
            if !self.store.has_partition(partition) {
                continue;
            }
            let checkpoint = Checkpoint {
                next_offset,
                stream_time_ms: self.store.stream_time(partition),
            };
            writes.push(
                partition,
                codec::CHECKPOINT_KEY,
                Some(|out: &mut Vec<u8>| out.extend_from_slice(&checkpoint.encode())),
            );
        }
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
    /// the latest checkpoint. Returns how many values could not be read (logged, skipped).
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
        self.store
            .load_partition(partition, keys, checkpoint.and_then(|c| c.stream_time_ms));
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
    records: Vec<(i32, Range<usize>, Option<Range<usize>>)>,
}

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
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        let value = value.map(|write| {
            write(&mut self.bytes);
            key_end..self.bytes.len()
        });
        self.records.push((partition, start..key_end, value));
    }

    /// The records, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = StateWrite<'_>> {
        self.records
            .iter()
            .map(|(partition, key, value)| StateWrite {
                partition: *partition,
                key: &self.bytes[key.clone()],
                value: value.clone().map(|v| &self.bytes[v]),
            })
    }

    /// Forgets every record, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}
