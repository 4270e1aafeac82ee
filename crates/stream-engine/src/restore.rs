//! Restores under way: each newly assigned partition's state is read back from the changelog
//! on a blocking thread, tracked, and cancelled by shutdown or by the partition's revocation.

use std::collections::HashMap;

use pipeline_runtime::settings::KafkaSettings;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::changelog::{self, RestoreError, RestoreTarget, RestoredPartition};

/// A finished restore, as reported by its thread.
pub(crate) type Done = (i32, u64, Result<RestoredPartition, RestoreError>);

/// A partition whose state is being restored.
struct Pending {
    /// Tells a finished restore of an earlier assignment of the partition from this one's.
    id: u64,
    /// Offset of the first record of the partition fetched before it was paused, if any; the
    /// partition is rewound to it once restored.
    rewind_to: Option<i64>,
    /// Cancels this restore alone (the partition was revoked).
    cancel: CancellationToken,
}

/// The restores of one replica.
pub(crate) struct Restores {
    kafka: KafkaSettings,
    target: RestoreTarget,
    pending: HashMap<i32, Pending>,
    next_id: u64,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// A restore that finished for a partition still waiting for it.
pub(crate) struct Finished {
    pub partition: i32,
    pub restored: RestoredPartition,
    pub rewind_to: Option<i64>,
}

impl Restores {
    /// Restores of partitions of `target` (its partition is set per restore); cancelled by
    /// `shutdown`.
    pub fn new(kafka: KafkaSettings, target: RestoreTarget, shutdown: &CancellationToken) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            kafka,
            target,
            pending: HashMap::new(),
            next_id: 0,
            done_tx,
            done_rx,
            tracker: TaskTracker::new(),
            shutdown: shutdown.child_token(),
        }
    }

    /// Starts restoring `partition` (again, if a restore of it is under way).
    pub fn start(&mut self, partition: i32) {
        self.start_from(partition, None);
    }

    /// Starts restoring `partition`, which resumes no later than `rewind_to` if its changelog
    /// has no checkpoint (after a lost producer: its committed position).
    pub fn start_at(&mut self, partition: i32, rewind_to: i64) {
        self.start_from(partition, Some(rewind_to));
    }

    fn start_from(&mut self, partition: i32, rewind_to: Option<i64>) {
        self.forget(partition);
        let id = self.next_id;
        self.next_id += 1;
        let cancel = self.shutdown.child_token();
        self.pending.insert(
            partition,
            Pending {
                id,
                rewind_to,
                cancel: cancel.clone(),
            },
        );
        let kafka = self.kafka.clone();
        let target = RestoreTarget {
            partition,
            ..self.target.clone()
        };
        let done = self.done_tx.clone();
        self.tracker.spawn_blocking(move || {
            let result = changelog::restore_partition(&kafka, &target, &cancel);
            let _ = done.send((partition, id, result));
        });
    }

    /// Forgets a partition's restore (it was revoked), cancelling it.
    pub fn forget(&mut self, partition: i32) {
        if let Some(pending) = self.pending.remove(&partition) {
            pending.cancel.cancel();
        }
    }

    /// Whether the partition is being restored.
    pub fn is_pending(&self, partition: i32) -> bool {
        self.pending.contains_key(&partition)
    }

    /// Notes a record of a partition being restored, fetched before the partition was paused:
    /// the partition resumes no later than it.
    pub fn fetched_meanwhile(&mut self, partition: i32, offset: i64) {
        if let Some(pending) = self.pending.get_mut(&partition) {
            pending.rewind_to.get_or_insert(offset);
        }
    }

    /// The next finished restore report.
    pub async fn next_done(&mut self) -> Option<Done> {
        self.done_rx.recv().await
    }

    /// Takes a report: the restore if it is current and succeeded; a failed one is logged
    /// and started again; a stale or cancelled one is ignored.
    pub fn finish(&mut self, (partition, id, result): Done) -> Option<Finished> {
        if self.pending.get(&partition).is_none_or(|p| p.id != id) {
            return None; // a restore of an earlier assignment of this partition
        }
        match result {
            Ok(restored) => {
                let pending = self.pending.remove(&partition)?;
                Some(Finished {
                    partition,
                    restored,
                    rewind_to: pending.rewind_to,
                })
            }
            Err(RestoreError::Cancelled) => None,
            Err(RestoreError::Kafka(error)) => {
                tracing::warn!(partition, "restoring state failed, retrying: {error:#}");
                self.start(partition);
                None
            }
        }
    }

    /// Cancels every restore and waits for their threads to end.
    pub async fn shut_down(&mut self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
