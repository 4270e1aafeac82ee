//! The worker's side of the consumer: taking a batch's records, assignment changes, finished
//! restores, and moving partitions.

use std::time::{Duration, Instant};

use ::metrics::{counter, histogram};
use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::Job;
use crate::context::AssignmentChange;
use crate::restore::Finished;

/// How often a restored partition waiting for librdkafka to fetch it is tried again.
const DEFERRED_SEEK_RETRY: Duration = Duration::from_millis(100);

impl<'a, J: Job> Worker<'a, J> {
    /// Waits for the first record of the next batch (`None` at shutdown). Finished restores
    /// and assignment changes are applied meanwhile.
    pub(super) async fn first_record(
        &mut self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<BorrowedMessage<'a>>> {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(None),
                Some(done) = self.restores.next_done() => {
                    if let Some(finished) = self.restores.finish(done) {
                        self.finish_restore(finished)?;
                    }
                }
                _ = self.context.changed() => {
                    self.apply_assignment_changes();
                }
                _ = tokio::time::sleep_until(self.next_seek_retry.into()),
                    if !self.deferred_seeks.is_empty() =>
                {
                    self.retry_deferred_seeks()?;
                }
                Some(message) = self.messages.next() => {
                    self.apply_assignment_changes();
                    if let Some(message) = self.accept(message).await {
                        return Ok(Some(message));
                    }
                }
            }
        }
    }

    /// The next record the consumer has ready for the batch under way, without waiting;
    /// `None` when none is ready. Partitions revoked by the poll are added to `revoked` (the
    /// batch must not commit if it holds any of their records).
    pub(super) async fn next_ready(
        &mut self,
        revoked: &mut Vec<i32>,
    ) -> Option<BorrowedMessage<'a>> {
        loop {
            let polled = self.messages.next().now_or_never();
            // A rebalance served by this poll applies to the batch before this record (a poll
            // that serves one returns no record: the batch ends, and must know of it).
            revoked.extend(self.apply_assignment_changes());
            let message = polled??;
            if let Some(message) = self.accept(message).await {
                return Some(message);
            }
        }
    }

    /// A polled record, unless it must not be processed now.
    async fn accept(
        &mut self,
        message: Result<BorrowedMessage<'a>, KafkaError>,
    ) -> Option<BorrowedMessage<'a>> {
        match message {
            Ok(message) if self.restores.is_pending(message.partition()) => {
                // Fetched before the partition was paused: processed after the restore.
                self.restores
                    .fetched_meanwhile(message.partition(), message.offset());
                None
            }
            Ok(message) => match self.check_rewound(message.partition(), message.offset()) {
                Ok(true) => Some(message),
                Ok(false) => None,
                Err(error) => {
                    tracing::error!("{error:#}");
                    None
                }
            },
            Err(error) => {
                // While a broker is down this comes every poll: once a minute is news enough.
                let text = error.to_string();
                if !pipeline_runtime::kafka::is_connection_failure(&error)
                    || pipeline_runtime::kafka::first_connection_failure_in_a_while(&text)
                {
                    tracing::warn!(%error, "consumer error");
                } else {
                    tracing::debug!(%error, "consumer error");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
        }
    }

    /// Revoked partitions: their state is dropped (returned, for the batch under way).
    /// Assigned ones: their restore starts (a stateless job's resume at once).
    pub(super) fn apply_assignment_changes(&mut self) -> Vec<i32> {
        let changes = self.context.take_changes();
        let mut revoked = Vec::new();
        if changes.is_empty() {
            return revoked;
        }
        for change in changes {
            counter!(self.settings.metrics.rebalances).increment(1);
            match change {
                AssignmentChange::Revoked(partitions) => {
                    for partition in &partitions {
                        self.rewound.remove(partition);
                        self.deferred_seeks.remove(partition);
                        self.task.drop_partition(*partition);
                        self.restores.forget(*partition);
                        self.assigned.remove(partition);
                    }
                    revoked.extend(partitions);
                }
                AssignmentChange::Assigned(partitions) => {
                    self.assigned_once = true;
                    for partition in partitions {
                        self.rewound.remove(&partition);
                        self.deferred_seeks.remove(&partition);
                        self.assigned.insert(partition);
                        if J::STATEFUL {
                            self.restores.start(partition);
                        } else if let Err(error) = self.resume(partition, None) {
                            tracing::error!(partition, "{error:#}");
                        }
                    }
                }
            }
        }
        self.update_health();
        revoked
    }

    /// Ready once the replica has been assigned partitions and restored every one of them.
    pub(super) fn update_health(&self) {
        let restoring = self.assigned.iter().any(|p| self.restores.is_pending(*p));
        self.health.set_ready(self.assigned_once && !restoring);
        self.settings
            .metrics
            .set_state(self.assigned.len(), self.task.store().keys());
    }

    fn finish_restore(&mut self, finished: Finished) -> anyhow::Result<()> {
        let Finished {
            partition,
            restored,
            rewind_to,
        } = finished;
        let keys = restored.values.len();
        let unreadable = self
            .task
            .load_partition(partition, restored.values, restored.checkpoint);
        tracing::info!(
            partition,
            keys,
            unreadable,
            records = restored.records,
            ahead = restored.ahead,
            seconds = restored.seconds,
            checkpoint = ?restored.checkpoint,
            committed = ?restored.committed,
            "state restored"
        );
        histogram!(self.settings.metrics.restore_seconds).record(restored.seconds);
        self.update_health();
        // The values stand at the checkpoint's snapshot: resume there (the records from there
        // to the checkpoint are replayed without outputs). Without a checkpoint (a new
        // partition) resume where the consumer started, before any record dropped meanwhile.
        let resume_at = restored.checkpoint.map(|c| c.resume_offset()).or(rewind_to);
        self.resume(partition, resume_at)
    }

    /// Resumes a restored partition, first moving it to `at`. A partition librdkafka has not
    /// started fetching yet refuses the move: it stays paused and the move is retried (see
    /// [`Self::retry_deferred_seeks`]). Resumed unmoved, it would start at the group's
    /// committed offset, past the records its state must replay from its snapshot: its
    /// windows would miss them (seen in a chaos run after a broker restart, when the
    /// committed offsets came late: counts missing and wrong).
    fn resume(&mut self, partition: i32, at: Option<i64>) -> anyhow::Result<()> {
        if let Some(offset) = at
            && self.try_seek(partition, offset)? == Seek::NotFetching
        {
            tracing::debug!(
                partition,
                offset,
                "the restored partition is not fetched yet: it is moved once it is"
            );
            if self.deferred_seeks.is_empty() {
                self.next_seek_retry = Instant::now() + DEFERRED_SEEK_RETRY;
            }
            self.deferred_seeks.insert(partition, offset);
            return Ok(());
        }
        self.resume_fetching(partition)
    }

    fn resume_fetching(&self, partition: i32) -> anyhow::Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.settings.input_topic, partition);
        self.consumer
            .resume(&list)
            .context("resuming a restored partition")
    }

    /// Moves and resumes the restored partitions librdkafka now fetches.
    fn retry_deferred_seeks(&mut self) -> anyhow::Result<()> {
        self.next_seek_retry = Instant::now() + DEFERRED_SEEK_RETRY;
        let waiting: Vec<(i32, i64)> = self.deferred_seeks.iter().map(|(p, o)| (*p, *o)).collect();
        for (partition, offset) in waiting {
            if self.try_seek(partition, offset)? == Seek::Moved {
                self.deferred_seeks.remove(&partition);
                tracing::info!(
                    partition,
                    offset,
                    "restored partition moved to its snapshot and resumed"
                );
                self.resume_fetching(partition)?;
            }
        }
        Ok(())
    }

    /// Moves a partition's fetch position, or says that librdkafka does not fetch it (yet, or
    /// any more): not started (its committed offset not read yet), or stopping (unassigned by
    /// a rebalance whose revocation this loop has not handled yet).
    fn try_seek(&self, partition: i32, offset: i64) -> anyhow::Result<Seek> {
        let result = self.consumer.seek(
            &self.settings.input_topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(10),
        );
        match result {
            Ok(()) => Ok(Seek::Moved),
            Err(KafkaError::Seek(error)) if not_fetching(&error) => Ok(Seek::NotFetching),
            Err(error) => Err(error)
                .with_context(|| format!("moving partition {partition} to offset {offset}")),
        }
    }

    /// Moves a partition's fetch position (after an abort, or to its committed offset). A
    /// partition librdkafka does not fetch is left as it is: one being revoked delivers
    /// nothing more, and one not started yet starts at its committed offset, which a rewound
    /// partition's check catches (see `check_rewound`). (Taken as an error, this stopped a
    /// replica in a clean-clone run: a seek after a restore raced a rebalance while replicas
    /// were frozen.)
    pub(super) fn seek(&self, partition: i32, offset: i64) -> anyhow::Result<()> {
        if self.try_seek(partition, offset)? == Seek::NotFetching {
            tracing::warn!(
                partition,
                offset,
                "the partition is not fetched (not started yet, or being revoked): not moved"
            );
        }
        Ok(())
    }
}

/// Whether a seek took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seek {
    Moved,
    /// librdkafka does not fetch the partition: not started yet, or stopping.
    NotFetching,
}

/// Whether a seek failed because librdkafka does not fetch the partition: "erroneous state"
/// before its fetcher has started or after it stopped, "previous operation in progress" while
/// it stops. rust-rdkafka passes a seek's error code on as librdkafka's description of it
/// only, which the code's `Display` shows after its name.
fn not_fetching(error: &str) -> bool {
    [
        RDKafkaErrorCode::State,
        RDKafkaErrorCode::PreviousInProgress,
    ]
    .iter()
    .any(|code| code.to_string() == format!("{code:?} ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seek_of_a_partition_not_fetched_is_told_from_other_seek_errors() {
        assert!(not_fetching("Local: Erroneous state"));
        assert!(not_fetching("Local: Previous operation in progress"));
        assert!(!not_fetching("Local: Unrepresentable offset"));
        assert!(!not_fetching("Local: Unknown partition"));
    }
}
