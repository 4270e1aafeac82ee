//! The changelog's record format, versioned so that a job can change its state and still read
//! what older versions wrote.
//!
//! A key's record: key = the key's UTF-8 bytes; value = an 11-byte envelope, then the job's
//! bytes:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | envelope version, `1` |
//! | 1..9 | input offset last applied to the key, i64 big-endian |
//! | 9..11 | the job's state version, u16 big-endian ([`Job::STATE_VERSION`](crate::Job)) |
//!
//! No value (a tombstone): the key was removed. A value starting with `{` is the unversioned
//! JSON the processor wrote before the envelope (`{"offset":…,"values":[…]}`): its `offset`
//! is read here and the whole value handed to the job as state version 0.
//!
//! A partition's checkpoint: key [`CHECKPOINT_KEY`] (not UTF-8, so never a job's key), value
//! JSON `{"next_offset":…,"stream_time_ms":…,"snapshot":{"next_offset":…,"stream_time_ms":…}}`:
//! the input offset processing has reached, and its stream time then. Written with every
//! batch. The keys' values are not: they are written as a snapshot every so many records (see
//! [`crate::task::SnapshotPolicy`]), and `snapshot` says which input offset and stream time
//! they stand at when that is older than `next_offset`; a restore loads the values, then
//! replays the input from `snapshot.next_offset` up to `next_offset` into the state without
//! emitting anything again. No `snapshot`: the values are current (every checkpoint written
//! before snapshots were introduced).

use serde::{Deserialize, Serialize};

/// Key of a partition's checkpoint record. Not UTF-8, so it can never be a job's key.
pub const CHECKPOINT_KEY: &[u8] = b"\xff\xfecheckpoint";

/// The header of a checkpoint record naming the replica and producer that wrote it:
/// `<instance_id>/<producer number>` (1 for a replica's first producer, growing each time it
/// is rebuilt).
pub const WRITER_HEADER: &str = "writer";

/// The envelope's version.
const ENVELOPE_V1: u8 = 1;
/// Envelope length in bytes.
const ENVELOPE_LEN: usize = 11;

/// Why a changelog record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value is shorter than its envelope.
    #[error("changelog value of {0} bytes is shorter than its envelope")]
    Truncated(usize),
    /// An envelope version this build does not know (written by a newer one).
    #[error("changelog envelope version {0} is unknown to this version")]
    UnknownVersion(u8),
    /// An unversioned value that is not the JSON it should be.
    #[error("unversioned changelog value: {0}")]
    Legacy(String),
}

/// A key's changelog value, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateValue<'a> {
    /// Input offset last applied to the key.
    pub applied_offset: i64,
    /// The job's state version.
    pub state_version: u16,
    /// The job's bytes.
    pub state: &'a [u8],
}

/// Appends the envelope of a key's value; the job's bytes follow.
pub fn write_envelope(applied_offset: i64, state_version: u16, out: &mut Vec<u8>) {
    out.push(ENVELOPE_V1);
    out.extend_from_slice(&applied_offset.to_be_bytes());
    out.extend_from_slice(&state_version.to_be_bytes());
}

/// Reads a key's value.
pub fn read_value(value: &[u8]) -> Result<StateValue<'_>, CodecError> {
    match value.first() {
        Some(&ENVELOPE_V1) => {
            let header = value
                .get(..ENVELOPE_LEN)
                .ok_or(CodecError::Truncated(value.len()))?;
            let mut offset = [0u8; 8];
            offset.copy_from_slice(&header[1..9]);
            Ok(StateValue {
                applied_offset: i64::from_be_bytes(offset),
                state_version: u16::from_be_bytes([header[9], header[10]]),
                state: &value[ENVELOPE_LEN..],
            })
        }
        Some(b'{') => {
            #[derive(Deserialize)]
            struct Legacy {
                offset: i64,
            }
            let legacy: Legacy =
                serde_json::from_slice(value).map_err(|e| CodecError::Legacy(e.to_string()))?;
            Ok(StateValue {
                applied_offset: legacy.offset,
                state_version: 0,
                state: value,
            })
        }
        Some(&other) => Err(CodecError::UnknownVersion(other)),
        None => Err(CodecError::Truncated(0)),
    }
}

/// A partition's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The input offset the state corresponds to: the next record to process.
    pub next_offset: i64,
    /// The partition's stream time then, if any event time was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_time_ms: Option<i64>,
    /// Where the keys' values in the changelog stand, when older than `next_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// The input offset the batch that wrote this checkpoint committed for the partition, in
    /// the same transaction. The same as `next_offset` except while a restored replica
    /// replays what was processed before (then behind it). A restore counts the committed
    /// state past the checkpoint of the group's committed offset (a transaction whose offsets
    /// the read did not show yet). `None` in checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_offset: Option<i64>,
    /// The first input offset of the batch that wrote this checkpoint: it processed the
    /// partition's records from here to `input_offset`. The checkpoints in order are the
    /// history of who processed what, for an operator reading the changelog after an
    /// incident. `None` in checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_offset: Option<i64>,
}

/// The input position a partition's keys' values in the changelog stand at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The next input record after the values.
    pub next_offset: i64,
    /// The partition's stream time at the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_time_ms: Option<i64>,
}

impl Checkpoint {
    /// The input offset processing resumes from after a restore: the snapshot's (the records
    /// from there to `next_offset` are replayed silently).
    pub fn resume_offset(&self) -> i64 {
        self.snapshot().next_offset
    }

    /// Where the keys' values stand: the snapshot, or the checkpoint itself without one.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.unwrap_or(Snapshot {
            next_offset: self.next_offset,
            stream_time_ms: self.stream_time_ms,
        })
    }

    /// The checkpoint's changelog value.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing two integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A checkpoint from its changelog value.
    pub fn decode(value: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_envelope() {
        let mut value = Vec::new();
        write_envelope(-1, 7, &mut value);
        value.extend_from_slice(b"job");
        assert_eq!(value.len(), ENVELOPE_LEN + 3);
        assert_eq!(
            read_value(&value),
            Ok(StateValue {
                applied_offset: -1,
                state_version: 7,
                state: b"job"
            })
        );
        value.clear();
        write_envelope(i64::MAX, 1, &mut value);
        assert_eq!(read_value(&value).unwrap().applied_offset, i64::MAX);
    }

    #[test]
    fn unversioned_json_is_version_0_and_bad_values_say_why() {
        let legacy = br#"{"offset":77,"values":[1.5,2.5]}"#;
        assert_eq!(
            read_value(legacy),
            Ok(StateValue {
                applied_offset: 77,
                state_version: 0,
                state: legacy
            })
        );
        assert_eq!(read_value(&[1, 0, 0]), Err(CodecError::Truncated(3)));
        assert_eq!(read_value(&[9; 20]), Err(CodecError::UnknownVersion(9)));
        assert_eq!(read_value(&[]), Err(CodecError::Truncated(0)));
        assert!(matches!(read_value(b"{}"), Err(CodecError::Legacy(_))));
    }

    #[test]
    fn checkpoints_round_trip_and_read_those_without_stream_time() {
        let mut checkpoint = Checkpoint {
            next_offset: 1234,
            stream_time_ms: Some(1_795_000_000_000),
            snapshot: None,
            input_offset: None,
            from_offset: None,
        };
        assert_eq!(
            Checkpoint::decode(&checkpoint.encode()).unwrap(),
            checkpoint
        );
        assert_eq!(
            checkpoint.snapshot(),
            Snapshot {
                next_offset: 1234,
                stream_time_ms: Some(1_795_000_000_000)
            }
        );
        let older = Snapshot {
            next_offset: 1000,
            stream_time_ms: None,
        };
        checkpoint.snapshot = Some(older);
        checkpoint.input_offset = Some(1200);
        checkpoint.from_offset = Some(1190);
        assert_eq!(
            String::from_utf8(checkpoint.encode()).unwrap(),
            r#"{"next_offset":1234,"stream_time_ms":1795000000000,"snapshot":{"next_offset":1000},"input_offset":1200,"from_offset":1190}"#
        );
        assert_eq!(
            Checkpoint::decode(&checkpoint.encode()).unwrap(),
            checkpoint
        );
        assert_eq!(checkpoint.snapshot(), older);
        assert_eq!(
            Checkpoint::decode(br#"{"next_offset":5}"#).unwrap(),
            Checkpoint {
                next_offset: 5,
                stream_time_ms: None,
                snapshot: None,
                input_offset: None,
                from_offset: None
            }
        );
        assert!(String::from_utf8(CHECKPOINT_KEY.to_vec()).is_err());
    }
}
