//! Producing a batch's records: enqueueing with back-off, the changelog records, and waiting
//! for acknowledgements.

use std::collections::HashMap;

use pipeline_runtime::kafka::{TracingContext, send};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::task::{StateWrites, Task};
use crate::{BatchError, EngineSettings, Job};

/// Produces the batch's changelog records: each key it changed, then each partition's
/// checkpoint, the input offset this state corresponds to.
pub(super) async fn produce_state<J: Job>(
    task: &mut Task<J>,
    writes: &mut StateWrites,
    producer: &FutureProducer<TracingContext>,
    settings: &EngineSettings,
    next_offsets: &HashMap<i32, i64>,
) -> Result<Vec<DeliveryFuture>, BatchError> {
    writes.clear();
    task.changelog(next_offsets.iter().map(|(p, o)| (*p, *o)), writes);
    let mut deliveries = Vec::with_capacity(writes.iter().len());
    for write in writes.iter() {
        let mut record = FutureRecord::<[u8], [u8]>::to(&settings.state_topic)
            .partition(write.partition)
            .key(write.key);
        if let Some(value) = write.value {
            record = record.payload(value);
        }
        deliveries.push(enqueue(producer, record, "a changelog record").await?);
    }
    Ok(deliveries)
}

/// Enqueues a record (waiting while the local queue is full); any other error names `what`.
pub(super) async fn enqueue<K, P>(
    producer: &FutureProducer<TracingContext>,
    record: FutureRecord<'_, K, P>,
    what: &'static str,
) -> Result<DeliveryFuture, BatchError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    send(producer, record)
        .await
        .map_err(|source| BatchError::NotEnqueued { what, source })
}

/// Waits for every delivery; the first failure is an error naming `what` was not delivered.
pub(super) async fn await_all(
    deliveries: Vec<DeliveryFuture>,
    what: &'static str,
) -> Result<(), BatchError> {
    for delivery in futures::future::join_all(deliveries).await {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((source, _))) => return Err(BatchError::NotDelivered { what, source }),
            Err(_) => return Err(BatchError::ProducerClosed(what)),
        }
    }
    Ok(())
}
