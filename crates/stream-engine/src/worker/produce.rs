//! Producing a batch's changelog records.

use std::collections::HashMap;

use rdkafka::producer::BaseRecord;

use crate::deliveries::{EngineProducer, enqueue};
use crate::task::{StateWrites, Task};
use crate::{BatchError, EngineSettings, Job};

/// Produces the batch's changelog records: for each partition whose snapshot is due, each key
/// changed since the last, then each partition's checkpoint. Counts them in `sent`.
pub(super) async fn produce_state<J: Job>(
    task: &mut Task<J>,
    writes: &mut StateWrites,
    producer: &EngineProducer,
    settings: &EngineSettings,
    next_offsets: &HashMap<i32, i64>,
    sent: &mut u64,
) -> Result<(), BatchError> {
    writes.clear();
    task.changelog(next_offsets.iter().map(|(p, o)| (*p, *o)), writes);
    for write in writes.iter() {
        let mut record = BaseRecord::<[u8], [u8], ()>::to(&settings.state_topic)
            .partition(write.partition)
            .key(write.key);
        if let Some(value) = write.value {
            record = record.payload(value);
        }
        enqueue(producer, record, sent, "a changelog record").await?;
    }
    Ok(())
}
