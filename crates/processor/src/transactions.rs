//! Kafka transactions for `exactly_once`: the producer's transactional calls with librdkafka's
//! error classes handled. Retriable errors are retried, abortable ones returned for the caller
//! to abort and rewind, fatal ones (this replica was fenced) returned as [`Fenced`].

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use pipeline_runtime::kafka::TracingContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// Timeout of one transactional call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a call that keeps failing with retriable errors.
const ATTEMPTS: u32 = 5;

/// This replica cannot use its transactional producer any more: another instance with its
/// transactional id took over, or the broker reported another fatal error. The replica must
/// stop; its supervisor restarts it.
#[derive(Debug, thiserror::Error)]
#[error("fatal transactional error (fenced by another instance of {transactional_id}?): {source}")]
pub struct Fenced {
    /// The producer's transactional id.
    pub transactional_id: String,
    /// The error librdkafka reported.
    pub source: KafkaError,
}

/// The transactional producer of one replica.
pub struct Transactions<'a> {
    producer: &'a FutureProducer<TracingContext>,
    transactional_id: String,
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

impl<'a> Transactions<'a> {
    /// Wraps a producer created with a `transactional.id`.
    pub fn new(producer: &'a FutureProducer<TracingContext>, transactional_id: &str) -> Self {
        Self {
            producer,
            transactional_id: transactional_id.to_owned(),
        }
    }

    /// Whether `error` means the replica must stop.
    pub fn is_fatal(error: &anyhow::Error) -> bool {
        error.chain().any(|e| e.is::<Fenced>())
    }

    fn fenced(&self, source: KafkaError) -> anyhow::Error {
        anyhow::Error::new(Fenced {
            transactional_id: self.transactional_id.clone(),
            source,
        })
    }

    /// Registers the transactional id with the broker, fencing any earlier instance and
    /// aborting its open transaction. Waits (logging) while the broker is unreachable;
    /// `Ok(false)` if shutdown came first.
    pub async fn init(&self, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        loop {
            let result = tokio::task::block_in_place(|| {
                self.producer
                    .init_transactions(Timeout::After(CALL_TIMEOUT))
            });
            match result {
                Ok(()) => {
                    tracing::info!(transactional_id = %self.transactional_id, "transactions initialised");
                    return Ok(true);
                }
                Err(error) => match classify(&error) {
                    Class::Fatal => return Err(self.fenced(error)),
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
    pub fn begin(&self) -> anyhow::Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|error| match classify(&error) {
                Class::Fatal => self.fenced(error),
                _ => anyhow::Error::new(error).context("beginning a transaction"),
            })
    }

    /// Adds the batch's input offsets (`next_offsets`: where each partition resumes) with the
    /// consumer's group metadata, and commits. An error that is not [`Fenced`] leaves a
    /// transaction that must be aborted.
    pub async fn commit<C: ConsumerContext + 'static>(
        &self,
        consumer: &StreamConsumer<C>,
        topic: &str,
        next_offsets: &HashMap<i32, i64>,
    ) -> anyhow::Result<()> {
        let metadata = consumer
            .group_metadata()
            .context("the consumer has no group metadata")?;
        let mut offsets = TopicPartitionList::new();
        for (&partition, &offset) in next_offsets {
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        self.call("sending offsets to the transaction", || {
            self.producer.send_offsets_to_transaction(
                &offsets,
                &metadata,
                Timeout::After(CALL_TIMEOUT),
            )
        })?;
        self.call("committing the transaction", || {
            self.producer
                .commit_transaction(Timeout::After(CALL_TIMEOUT))
        })
    }

    /// Aborts the open transaction: none of its records become visible to `read_committed`
    /// readers and its offsets are not committed.
    pub fn abort(&self) -> anyhow::Result<()> {
        self.call("aborting the transaction", || {
            self.producer
                .abort_transaction(Timeout::After(CALL_TIMEOUT))
        })
    }

    fn call(&self, what: &str, mut f: impl FnMut() -> KafkaResult<()>) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            match tokio::task::block_in_place(&mut f) {
                Ok(()) => return Ok(()),
                Err(error) => match classify(&error) {
                    Class::Retry if attempt < ATTEMPTS => {
                        tracing::debug!(%error, attempt, "{what}: retriable error, retrying");
                        attempt += 1;
                    }
                    Class::Fatal => return Err(self.fenced(error)),
                    _ => return Err(anyhow::Error::new(error).context(what.to_owned())),
                },
            }
        }
    }
}
