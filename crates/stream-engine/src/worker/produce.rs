//! Producing a batch's changelog records.

use std::collections::HashMap;
use std::ops::Range;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::codec::{CHECKPOINT_KEY, WRITER_HEADER};
use crate::deliveries::{EngineProducer, enqueue};
use crate::task::{StateWrites, Task};
use crate::{BatchError, EngineSettings, Job};

/// Produces the batch's changelog records: for each partition whose snapshot is due, each key
/// changed since the last, then each partition's checkpoint (with a [`WRITER_HEADER`] of
/// `writer`). Counts them in `sent`.
pub(super) async fn produce_state<J: Job>(
    task: &mut Task<J>,
    writes: &mut StateWrites,
    producer: &EngineProducer,
    settings: &EngineSettings,
    offsets: &HashMap<i32, Range<i64>>,
    writer: &str,
    sent: &mut u64,
) -> Result<(), BatchError> {
    writes.clear();
    task.changelog(offsets.iter().map(|(p, o)| (*p, o.clone())), writes);
    for write in writes.iter() {
        let mut record = BaseRecord::<[u8], [u8], ()>::to(&settings.state_topic)
            .partition(write.partition)
            .key(write.key);
        if let Some(value) = write.value {
            record = record.payload(value);
        }
        if write.key == CHECKPOINT_KEY {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: WRITER_HEADER,
                value: Some(writer),
            }));
        }
        enqueue(producer, record, sent, "a changelog record").await?;
    }
    Ok(())
}
