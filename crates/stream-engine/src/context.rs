//! The consumer context: routes librdkafka's logs, reports assignment changes to the loop,
//! publishes each partition's lag from librdkafka's statistics, and warns when a partition
//! has records waiting that the consumer has not delivered for a minute (a stuck fetch is
//! otherwise silent: the replica looks idle while its lag grows).
//!
//! Rebalance callbacks run inside the consumer's poll, on the loop's own task, so the loop
//! sees each change before it handles any record fetched after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use pipeline_runtime::endpoints::Health;

use crate::metrics::MetricNames;
use pipeline_runtime::kafka::{error_to_tracing, log_to_tracing};
use pipeline_runtime::rebootstrap::{Rebootstrap, Rebootstraps};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

/// A change of this replica's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AssignmentChange {
    /// These partitions were added.
    Assigned(Vec<i32>),
    /// These partitions were taken away.
    Revoked(Vec<i32>),
}

/// Consumer context of the engine.
#[derive(Debug, Clone)]
pub(crate) struct EngineContext {
    changes: Arc<Mutex<Vec<AssignmentChange>>>,
    /// Set when a change is pushed: the loop asks for changes after every record, and a
    /// load of this flag costs less than the lock.
    pending: Arc<AtomicBool>,
    changed: Arc<Notify>,
    health: Arc<Health>,
    metrics: MetricNames,
    stalls: Arc<Mutex<Stalls>>,
    /// The consumer's own (a clone of this context starts unbound).
    rebootstrap: Rebootstrap,
}

/// How long a partition may have records waiting without any delivered before it is reported.
const STALL: Duration = Duration::from_secs(60);

/// Per partition: the position last seen, since when, and whether that stall was reported.
#[derive(Debug, Default)]
struct Stalls {
    seen: HashMap<i32, (i64, Instant, bool)>,
}

impl Stalls {
    /// Notes `partition` at `position` with `lag` records waiting; true when it has had
    /// records waiting at the same position for [`STALL`], once per stall.
    fn stalled(&mut self, partition: i32, position: i64, lag: i64, now: Instant) -> bool {
        let entry = self.seen.entry(partition).or_insert((position, now, false));
        if lag <= 0 || entry.0 != position {
            *entry = (position, now, false);
            return false;
        }
        if !entry.2 && now.duration_since(entry.1) >= STALL {
            entry.2 = true;
            return true;
        }
        false
    }
}

impl EngineContext {
    /// A context reporting fatal client errors to `health`.
    pub fn new(health: Arc<Health>, metrics: MetricNames) -> Self {
        Self {
            changes: Arc::default(),
            pending: Arc::default(),
            changed: Arc::default(),
            health,
            metrics,
            stalls: Arc::default(),
            rebootstrap: Rebootstrap::default(),
        }
    }

    /// Completes when a change has been reported since the last wait. The loop needs this
    /// besides the records: newly assigned partitions are paused, so no record announces them.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Takes the changes reported since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<AssignmentChange> {
        // A change pushed after this swap sets the flag again: none is left behind.
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        match self.changes.lock() {
            Ok(mut changes) => std::mem::take(&mut *changes),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn push(&self, change: AssignmentChange) {
        match self.changes.lock() {
            Ok(mut changes) => changes.push(change),
            Err(poisoned) => poisoned.into_inner().push(change),
        }
        self.pending.store(true, Ordering::Release);
        self.changed.notify_one();
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for EngineContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.health.set_fatal();
        }
        error_to_tracing(&error, reason);
        self.rebootstrap.after(&error);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each partition
    /// this replica fetches. librdkafka's own `consumer_lag` needs the consumer's commits,
    /// which `exactly_once` makes through the producer, so the lag is computed here: the last
    /// stable offset less the position consumed (or fetched, before the first record).
    fn stats(&self, statistics: Statistics) {
        let now = Instant::now();
        let mut stalls = self.stalls.lock().unwrap_or_else(|e| e.into_inner());
        for topic in statistics.topics.values() {
            for p in topic.partitions.values() {
                if p.partition < 0 || !p.desired || p.ls_offset < 0 {
                    continue;
                }
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.next_offset
                };
                if position < 0 {
                    continue;
                }
                let lag = (p.ls_offset - position).max(0);
                if p.fetch_state == "active" {
                    self.metrics.set_lag(p.partition, lag);
                }
                if stalls.stalled(p.partition, position, lag, now) {
                    tracing::warn!(
                        topic = %topic.topic,
                        partition = p.partition,
                        lag,
                        fetch_state = %p.fetch_state,
                        next_offset = p.next_offset,
                        app_offset = p.app_offset,
                        fetch_queue = p.fetchq_cnt,
                        "records are waiting in a partition but none was delivered for {} s \
                         (paused for a restore that does not end, or a fetch that does not \
                         resume)",
                        STALL.as_secs()
                    );
                }
            }
        }
    }
}

impl Rebootstraps for EngineContext {
    fn rebootstrap(&self) -> &Rebootstrap {
        &self.rebootstrap
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions(list);
            // The new owner reports these partitions' lag from now on.
            for partition in &revoked {
                self.metrics.set_lag(*partition, 0);
            }
            tracing::info!(partitions = ?revoked, "partitions revoked");
            self.push(AssignmentChange::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // New partitions wait, paused, until their state is restored; the partitions
                // this replica keeps go on being fetched and processed meanwhile.
                if let Err(error) = consumer.pause(list) {
                    tracing::error!(%error, "could not pause newly assigned partitions");
                }
                let assigned = partitions(list);
                tracing::info!(partitions = ?assigned, "partitions assigned");
                self.push(AssignmentChange::Assigned(assigned));
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_reported_once_per_stall_and_only_with_records_waiting() {
        let mut stalls = Stalls::default();
        let t0 = Instant::now();
        assert!(!stalls.stalled(1, 100, 5, t0));
        assert!(!stalls.stalled(1, 100, 5, t0 + STALL / 2));
        assert!(stalls.stalled(1, 100, 5, t0 + STALL));
        // Reported once.
        assert!(!stalls.stalled(1, 100, 9, t0 + STALL * 2));
        // Delivering again ends the stall; a new one is reported after its own minute.
        assert!(!stalls.stalled(1, 101, 9, t0 + STALL * 2));
        assert!(!stalls.stalled(1, 101, 9, t0 + STALL * 2 + STALL / 2));
        assert!(stalls.stalled(1, 101, 9, t0 + STALL * 3));
        // Nothing waiting is no stall, however long.
        assert!(!stalls.stalled(2, 50, 0, t0));
        assert!(!stalls.stalled(2, 50, 0, t0 + STALL * 5));
    }
}
