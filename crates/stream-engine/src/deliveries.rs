//! Delivery reports counted in the producer's callback, instead of a future per record.
//!
//! rust-rdkafka's `FutureProducer` gives each record a `DeliveryFuture`: a oneshot channel and
//! a boxed sender per record, resolved from the producer's polling thread. The engine only
//! ever needs to know that every record of a batch was acknowledged, or that one was not; so
//! the producer's context counts reports as they come (no allocation, no channel per record)
//! and a batch waits until the count reaches what it enqueued. Public so that benchmarks
//! measure a producer set up exactly like this.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pipeline_runtime::kafka::{error_to_tracing, log_to_tracing};
use pipeline_runtime::rebootstrap::{Rebootstrap, Rebootstraps};
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

/// No wait under way: reports do not wake anybody.
const NOBODY_WAITS: u64 = u64::MAX;

/// The producer's context: logs like every client's, and counts delivery reports.
///
/// A report costs one atomic add, and a wake-up only when it is the one a batch waits for (or
/// a failure): the producer's polling thread takes no lock per record. (A mutex and a
/// `notify_waiters` per report, as before, were a lock, an unlock and a wake-up attempt per
/// record produced.)
#[derive(Debug)]
pub struct Deliveries {
    /// Reports received (acknowledged or failed).
    reported: AtomicU64,
    /// The count the waiting batch needs, or [`NOBODY_WAITS`].
    target: AtomicU64,
    /// Whether `failure` holds one: read without the lock.
    failed: AtomicBool,
    failure: Mutex<Option<Failure>>,
    changed: Notify,
    rebootstrap: Rebootstrap,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            reported: AtomicU64::new(0),
            target: AtomicU64::new(NOBODY_WAITS),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            changed: Notify::new(),
            rebootstrap: Rebootstrap::default(),
        }
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        error_to_tracing(&error, reason);
        self.rebootstrap.after(&error);
    }
}

impl Rebootstraps for Deliveries {
    fn rebootstrap(&self) -> &Rebootstrap {
        &self.rebootstrap
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.report(
            result
                .as_ref()
                .err()
                .map(|(error, message)| (message.topic(), error)),
        );
    }
}

impl Deliveries {
    /// Counts one report: acknowledged, or failed with the record's topic and the error.
    fn report(&self, failed: Option<(&str, &KafkaError)>) {
        if let Some((topic, error)) = failed {
            let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
            if failure.is_none() {
                *failure = Some(Failure {
                    topic: topic.to_owned(),
                    error: error.clone(),
                });
                self.failed.store(true, Ordering::SeqCst);
            }
        }
        // SeqCst with the waiter's store of its target and load of the count: either this
        // thread sees the target, or the waiter sees this report.
        let reported = self.reported.fetch_add(1, Ordering::SeqCst) + 1;
        if failed.is_some() || reported >= self.target.load(Ordering::SeqCst) {
            self.changed.notify_waiters();
        }
    }

    /// Waits until `sent` reports have come in; the first failure among them is the error.
    pub async fn wait_for(&self, sent: u64) -> Result<(), BatchError> {
        self.wait_until(sent, true).await
    }

    /// Waits for every report of what was sent so far (an aborted batch's records are reported
    /// as purged), then forgets their failure: the next batch starts clean.
    pub async fn reset(&self, sent: u64) {
        // Without stopping at failures, it cannot fail.
        let _ = self.wait_until(sent, false).await;
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.failed.store(false, Ordering::SeqCst);
    }

    async fn wait_until(&self, sent: u64, stop_at_failure: bool) -> Result<(), BatchError> {
        let result = loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a report between the look and the wait wakes it.
            changed.as_mut().enable();
            self.target.store(sent, Ordering::SeqCst);
            if stop_at_failure && self.failed.load(Ordering::SeqCst) {
                let failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(failure) = failure.as_ref() {
                    break Err(BatchError::NotDelivered {
                        topic: failure.topic.clone(),
                        source: failure.error.clone(),
                    });
                }
            }
            if self.reported.load(Ordering::SeqCst) >= sent {
                break Ok(());
            }
            changed.await;
        };
        self.target.store(NOBODY_WAITS, Ordering::SeqCst);
        result
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Reports from another thread, batch after batch: no wake-up is lost (each wait ends at
    /// once when its last report comes), and a wait never ends early.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_wait_ends_at_its_last_report_and_not_before() {
        let deliveries = Arc::new(Deliveries::default());
        let mut sent = 0;
        for batch in 1..=2_000u64 {
            let size = batch % 7 + 1;
            sent += size;
            let reporter = {
                let deliveries = deliveries.clone();
                std::thread::spawn(move || {
                    for _ in 0..size {
                        deliveries.report(None);
                    }
                })
            };
            tokio::time::timeout(Duration::from_secs(5), deliveries.wait_for(sent))
                .await
                .expect("a lost wake-up: the wait did not end")
                .expect("no failure");
            assert!(deliveries.reported.load(Ordering::SeqCst) >= sent);
            reporter.join().expect("reporter");
        }
        let early =
            tokio::time::timeout(Duration::from_millis(50), deliveries.wait_for(sent + 1)).await;
        assert!(early.is_err(), "a wait for an unreported record ended");
    }

    /// A failure ends the wait at once with the record's topic, before the count is reached;
    /// `reset` forgets it once every report is in.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_ends_the_wait_with_its_topic_until_reset() {
        let deliveries = Deliveries::default();
        deliveries.report(None);
        deliveries.report(Some((
            "events",
            &KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        )));
        let error = deliveries.wait_for(10).await.expect_err("the failure");
        assert!(
            matches!(&error, BatchError::NotDelivered { topic, .. } if topic == "events"),
            "{error}"
        );
        deliveries.report(None);
        deliveries.reset(3).await;
        deliveries.report(None);
        deliveries.wait_for(4).await.expect("clean after reset");
    }
}
