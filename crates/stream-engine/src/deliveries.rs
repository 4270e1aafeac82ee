//! Delivery reports counted in the producer's callback, instead of a future per record.
//!
//! rust-rdkafka's `FutureProducer` gives each record a `DeliveryFuture`: a oneshot channel and
//! a boxed sender per record, resolved from the producer's polling thread. The engine only
//! ever needs to know that every record of a batch was acknowledged, or that one was not; so
//! the producer's context counts reports as they come (no allocation, no channel per record)
//! and a batch waits until the count reaches what it enqueued. Public so that benchmarks
//! measure a producer set up exactly like this.

use std::sync::Mutex;
use std::time::Duration;

use pipeline_runtime::kafka::TracingContext;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use tokio::sync::Notify;

use crate::BatchError;

/// The engine's producer.
pub type EngineProducer = ThreadedProducer<Deliveries>;

/// The first failed delivery since the last [`Deliveries::reset`].
#[derive(Debug, Clone)]
struct Failure {
    topic: String,
    error: KafkaError,
}

#[derive(Debug, Default)]
struct Tally {
    /// Reports received (acknowledged or failed).
    reported: u64,
    failure: Option<Failure>,
}

/// The producer's context: logs like every client's, and counts delivery reports.
#[derive(Debug, Default)]
pub struct Deliveries {
    tally: Mutex<Tally>,
    changed: Notify,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        TracingContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.reported += 1;
        if let Err((error, message)) = result
            && tally.failure.is_none()
        {
            tally.failure = Some(Failure {
                topic: message.topic().to_owned(),
                error: error.clone(),
            });
        }
        drop(tally);
        self.changed.notify_waiters();
    }
}

impl Deliveries {
    /// Waits until `sent` reports have come in; the first failure among them is the error.
    pub async fn wait_for(&self, sent: u64) -> Result<(), BatchError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a report between the look and the wait wakes it.
            changed.as_mut().enable();
            {
                let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(failure) = &tally.failure {
                    return Err(BatchError::NotDelivered {
                        topic: failure.topic.clone(),
                        source: failure.error.clone(),
                    });
                }
                if tally.reported >= sent {
                    return Ok(());
                }
            }
            changed.await;
        }
    }

    /// Waits for every report of what was sent so far (an aborted batch's records are reported
    /// as purged), then forgets their failure: the next batch starts clean.
    pub async fn reset(&self, sent: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
                if tally.reported >= sent {
                    tally.failure = None;
                    return;
                }
            }
            changed.await;
        }
    }
}

/// Enqueues a record, waiting while librdkafka's queue is full; counts it in `sent`.
pub async fn enqueue<K, P>(
    producer: &EngineProducer,
    mut record: BaseRecord<'_, K, P, ()>,
    sent: &mut u64,
    what: &'static str,
) -> Result<(), BatchError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => {
                *sent += 1;
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((source, _)) => return Err(BatchError::NotEnqueued { what, source }),
        }
    }
}

/// How long one flush call may hold a runtime thread before the wait goes on asynchronously.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Has the producer send what it holds now rather than after `linger.ms`, and waits until
/// `sent` reports have come in; the first failure among them is the error.
///
/// A batch waits for its records anyway, so lingering then only adds `linger.ms` to every
/// wait (twice per batch in `at_least_once`: outputs, then checkpoints). librdkafka sends
/// without lingering while an `rd_kafka_flush` call waits, so the wait starts inside one, on
/// a thread the runtime lets block; a flush longer than [`FLUSH_WAIT`] (a slow or absent
/// broker) leaves the rest to [`Deliveries::wait_for`]. (rust-rdkafka's `Producer::flush`
/// calls `rd_kafka_flush` with a zero timeout and then polls for up to 100 ms, so the
/// no-linger window closes at once and each wait took 100 ms: measured, 43 000 readings/s.)
pub async fn deliver_now(producer: &EngineProducer, sent: u64) -> Result<(), BatchError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        let native = producer.client().native_ptr();
        let timeout_ms = i32::try_from(FLUSH_WAIT.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `native` is the live handle of `producer`, borrowed for the whole call;
        // `rd_kafka_flush` may be called from any thread. Its delivery reports are served by
        // the producer's own polling thread (rust-rdkafka's event mode), and its result (a
        // timeout) does not matter: the reports are counted below either way.
        #[allow(unsafe_code)]
        tokio::task::block_in_place(|| unsafe {
            rdkafka::bindings::rd_kafka_flush(native, timeout_ms)
        });
    }
    producer.context().wait_for(sent).await
}
