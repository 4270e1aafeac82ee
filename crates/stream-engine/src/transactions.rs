//! Kafka transactions for `exactly_once`: the producer's transactional calls with librdkafka's
//! error classes handled. Retriable errors are retried; abortable ones are returned for the
//! caller to abort and rewind; fatal ones (the producer is fenced) as [`BatchError::Fenced`],
//! for the caller to replace the producer. Each call runs on a [`Watchdog`] thread: one that is
//! still blocked well past its own timeout is given up as [`BatchError::Stuck`], and the
//! producer is replaced as for a fatal error.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::BatchError;
use crate::deliveries::EngineProducer;
use crate::watchdog::{Unfinished, Watchdog};

/// Timeout of one transactional call.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts of a call that keeps failing with retriable errors. Past them the batch is aborted
/// (and if the abort cannot be made either, the producer is replaced, whose initialisation
/// settles the transaction): retrying a commit for minutes past the transaction timeout would
/// only hold the replica, as 5 attempts of 30 s could. Each retry is logged.
const ATTEMPTS: u32 = 3;
/// Timeout of one attempt to initialise transactions: short, so that a shutdown while the
/// broker is unreachable is seen within seconds (initialisation is retried until it succeeds).
const INIT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long past [`CALL_TIMEOUT`] an attempt is waited for before it is given up as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The transactional producer of one replica.
pub(crate) struct Transactions {
    producer: Arc<EngineProducer>,
    transactional_id: String,
    /// Makes the calls that can block (all but `begin`).
    watchdog: Watchdog<EngineProducer>,
}

enum Class {
    Retry,
    Fatal,
    Abort,
}

fn classify(error: &KafkaError) -> Class {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => Class::Fatal,
        KafkaError::Transaction(e) if e.is_retriable() => Class::Retry,
        _ => Class::Abort,
    }
}

/// Refuses to commit offsets while the consumer's group membership is lost.
///
/// librdkafka resets the member id to "" when the coordinator answers "unknown member" and the
/// generation to -1 on "illegal generation", and keeps the partitions until the application
/// has handled their loss (in a poll, after this batch). Kafka's group coordinator takes a
/// transactional offset commit whose member id is empty and generation negative without
/// checking either (the form of producers that predate group metadata): sent then, this
/// batch's offsets would commit for partitions another replica may own by now, and its
/// outputs would double that replica's. The metadata librdkafka sends cannot change between
/// `group_metadata` and this check: a rejoin waits for the loss to be handled, on this task.
fn check_membership<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
) -> Result<(String, i32), BatchError> {
    use rdkafka::bindings as rd;
    let native = consumer.client().native_ptr();
    // SAFETY: `native` is the live handle of `consumer`, borrowed for the whole block;
    // `rd_kafka_consumer_group_metadata` returns a new object owned here (or null), whose
    // member id string lives until it is destroyed, after the string is copied.
    #[allow(unsafe_code)]
    let membership = unsafe {
        let metadata = rd::rd_kafka_consumer_group_metadata(native);
        if metadata.is_null() {
            None
        } else {
            let member = rd::rd_kafka_consumer_group_metadata_member_id(metadata);
            let member_id = if member.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(member)
                    .to_string_lossy()
                    .into_owned()
            };
            let generation = rd::rd_kafka_consumer_group_metadata_generation_id(metadata);
            rd::rd_kafka_consumer_group_metadata_destroy(metadata);
            Some((member_id, generation))
        }
    };
    match membership {
        None => Err(BatchError::NoGroupMetadata),
        Some((member_id, generation)) if membership_lost(&member_id, generation) => {
            Err(BatchError::MembershipLost {
                member_id,
                generation,
            })
        }
        Some(membership) => Ok(membership),
    }
}

/// Whether offsets carrying `member_id` and `generation` would be a lost member's.
fn membership_lost(member_id: &str, generation: i32) -> bool {
    member_id.is_empty() || generation < 0
}

impl Transactions {
    /// Wraps a producer created with `transactional_id`. Fails only if the watchdog's thread
    /// cannot be started.
    pub(crate) fn new(
        producer: Arc<EngineProducer>,
        transactional_id: &str,
    ) -> std::io::Result<Self> {
        Ok(Self {
            watchdog: Watchdog::new(producer.clone(), "transactions")?,
            producer,
            transactional_id: transactional_id.to_owned(),
        })
    }

    /// The transactional id.
    pub(crate) fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    fn error(&self, context: &'static str, source: KafkaError) -> BatchError {
        match classify(&source) {
            Class::Fatal => BatchError::Fenced {
                transactional_id: self.transactional_id.clone(),
                source,
            },
            _ => BatchError::Kafka { context, source },
        }
    }

    /// Registers the transactional id with the broker, fencing any earlier instance and
    /// aborting its open transaction. Waits (logging) while the broker is unreachable;
    /// `Ok(false)` if shutdown came first.
    pub(crate) async fn init(&self, shutdown: &CancellationToken) -> Result<bool, BatchError> {
        loop {
            let result = tokio::task::block_in_place(|| {
                self.producer
                    .init_transactions(Timeout::After(INIT_TIMEOUT))
            });
            match result {
                Ok(()) => {
                    tracing::info!(transactional_id = %self.transactional_id, "transactions initialised");
                    return Ok(true);
                }
                Err(error) => match classify(&error) {
                    Class::Fatal => return Err(self.error("initialising transactions", error)),
                    _ => tracing::warn!(%error, "initialising transactions failed, retrying"),
                },
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return Ok(false),
            }
        }
    }

    /// Starts the batch's transaction.
    pub(crate) fn begin(&self) -> Result<(), BatchError> {
        self.producer
            .begin_transaction()
            .map_err(|error| self.error("beginning a transaction", error))
    }

    /// Adds the batch's input offsets (the end of each partition's span: where it resumes) with the
    /// consumer's group metadata, and commits. An error that is not fatal leaves a transaction
    /// that must be aborted.
    pub(crate) async fn commit<C: ConsumerContext + 'static>(
        &self,
        consumer: &StreamConsumer<C>,
        topic: &str,
        spans: &HashMap<i32, Range<i64>>,
        shutdown: &CancellationToken,
    ) -> Result<(), BatchError> {
        let metadata = consumer
            .group_metadata()
            .ok_or(BatchError::NoGroupMetadata)?;
        let (member_id, generation) = check_membership(consumer)?;
        let mut offsets = TopicPartitionList::new();
        for (&partition, span) in spans {
            let offset = span.end;
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|source| BatchError::Kafka {
                    context: "building the offset list",
                    source,
                })?;
        }
        let sent = Arc::new((offsets, metadata));
        self.call(
            "sending offsets to the transaction",
            shutdown,
            move |producer| {
                producer.send_offsets_to_transaction(&sent.0, &sent.1, Timeout::After(CALL_TIMEOUT))
            },
        )
        .await?;
        self.call("committing the transaction", shutdown, |producer| {
            producer.commit_transaction(Timeout::After(CALL_TIMEOUT))
        })
        .await?;
        // Each commit's input spans and the membership they were committed under: what an
        // exactly-once audit's duplicate or gap is traced back to.
        tracing::debug!(
            transactional_id = %self.transactional_id,
            %member_id,
            generation,
            ?spans,
            "transaction committed"
        );
        Ok(())
    }

    /// Aborts the open transaction: none of its records become visible to `read_committed`
    /// readers and its offsets are not committed.
    pub(crate) async fn abort(&self, shutdown: &CancellationToken) -> Result<(), BatchError> {
        self.call("aborting the transaction", shutdown, |producer| {
            producer.abort_transaction(Timeout::After(CALL_TIMEOUT))
        })
        .await
    }

    /// Makes a transactional call on the watchdog's thread, retrying retriable errors.
    async fn call(
        &self,
        what: &'static str,
        shutdown: &CancellationToken,
        f: impl Fn(&EngineProducer) -> KafkaResult<()> + Clone + Send + 'static,
    ) -> Result<(), BatchError> {
        let mut attempt = 1;
        loop {
            let result = self
                .watchdog
                .run(CALL_TIMEOUT + STUCK_AFTER, shutdown, f.clone())
                .await
                .map_err(|unfinished| match unfinished {
                    Unfinished::Stuck => BatchError::Stuck {
                        what,
                        seconds: (CALL_TIMEOUT + STUCK_AFTER).as_secs(),
                    },
                    Unfinished::ShutDown => BatchError::Interrupted { what },
                })?;
            match result {
                Ok(()) => return Ok(()),
                Err(error) => match classify(&error) {
                    Class::Retry if attempt < ATTEMPTS => {
                        tracing::warn!(%error, attempt, "{what}: retriable error, retrying");
                        attempt += 1;
                    }
                    _ => return Err(self.error(what, error)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a member with an id and a generation commits: either reset means the membership
    /// was lost, and both reset would pass the coordinator's checks unchecked.
    #[test]
    fn offsets_of_a_lost_membership_are_refused() {
        assert!(!membership_lost("rdkafka-3f2c", 7));
        assert!(!membership_lost("rdkafka-3f2c", 0));
        assert!(membership_lost("", 7));
        assert!(membership_lost("rdkafka-3f2c", -1));
        assert!(membership_lost("", -1));
    }
}
