//! The job interface: what a pipeline says about its records and its state. The engine does
//! the rest (batches, transactions, the changelog, restores, rollback, dead letters, metrics).
//!
//! A job decodes a record (or says why it is unusable), names the record's key, applies it to
//! that key's state and emits output records. It encodes and decodes its state for the
//! changelog, and may act when a partition's stream time (the largest event time seen on it)
//! advances: that is how windows that close on time, not on a count, are emitted once, final.

use std::fmt::Display;

use crate::outputs::Outputs;
use crate::store::PartitionView;

/// An input record as the consumer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'r> {
    /// The record key.
    pub key: Option<&'r [u8]>,
    /// The record value.
    pub value: Option<&'r [u8]>,
    /// The Kafka timestamp, ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The input partition.
    pub partition: i32,
    /// The offset in its partition.
    pub offset: i64,
}

/// Where an input is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyContext {
    /// The input partition.
    pub partition: i32,
    /// The input's offset.
    pub offset: i64,
    /// The partition's stream time before this input (the largest event time applied to it).
    pub stream_time_ms: Option<i64>,
}

/// Why a record is unusable: a sentence for people (`Display`, the dead letter's `error`
/// header) and a stable short name for machines (`error.kind`, the metric's `reason`).
pub trait Rejection: Display {
    /// A stable short name, such as `not_json`.
    fn kind(&self) -> &'static str;
}

/// A stream-processing job: per-key state, one input topic, outputs by index into
/// [`EngineSettings::output_topics`](crate::EngineSettings::output_topics).
pub trait Job: Send + Sync {
    /// A decoded input record, which may borrow from the record.
    type Input<'r>;
    /// One key's state.
    type State: Clone + Send;
    /// Why a record is unusable.
    type Reject: Rejection;

    /// Whether the job keeps state in a changelog. A stateless job (`false`) has no changelog
    /// topic, nothing to restore and nothing to write but its outputs.
    const STATEFUL: bool = true;
    /// The version [`Job::encode_state`] writes; [`Job::decode_state`] is given the version a
    /// record was written with, so a later change of the state can still read older records.
    const STATE_VERSION: u16 = 1;

    /// Decodes a record, or says why it is unusable (it then goes to the dead-letter topic).
    fn decode<'r>(&self, record: &InputRecord<'r>) -> Result<Self::Input<'r>, Self::Reject>;

    /// The key whose state the input updates.
    fn key<'i>(&self, input: &'i Self::Input<'_>) -> &'i str;

    /// The input's event time, ms since the epoch. Default: the Kafka timestamp.
    fn event_time_ms(&self, _input: &Self::Input<'_>, record: &InputRecord<'_>) -> Option<i64> {
        record.timestamp_ms
    }

    /// A key's state before its first input.
    fn new_state(&self) -> Self::State;

    /// Applies an input to its key's state, emitting outputs. An input the job cannot use
    /// where it stands (one later than its window's close, say) is rejected: it goes to the
    /// dead-letter topic like an undecodable one. A job that rejects must not have changed the
    /// state or emitted anything for that input.
    fn apply(
        &self,
        input: &Self::Input<'_>,
        state: &mut Self::State,
        context: &ApplyContext,
        out: &mut Outputs,
    ) -> Result<(), Self::Reject>;

    /// Called when a partition's stream time advances from `previous_ms` (`None`: the first
    /// event time seen, or restored) to `stream_time_ms`, after the input that advanced it and
    /// before the next: a job whose results close on time emits and forgets them here. Default:
    /// nothing.
    fn on_stream_time(
        &self,
        _previous_ms: Option<i64>,
        _stream_time_ms: i64,
        _partition: &mut PartitionView<'_, Self::State>,
        _out: &mut Outputs,
    ) {
    }

    /// Appends a state's bytes (version [`Job::STATE_VERSION`]) to `out`.
    fn encode_state(&self, state: &Self::State, out: &mut Vec<u8>);

    /// A state from bytes written with `version` (0: the unversioned records written before
    /// the engine had an envelope; see [`crate::codec`]).
    fn decode_state(&self, version: u16, bytes: &[u8]) -> Result<Self::State, String>;
}
