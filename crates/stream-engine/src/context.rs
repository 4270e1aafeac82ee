//! The consumer context: routes librdkafka's logs, reports assignment changes to the loop,
//! and publishes each partition's lag from librdkafka's statistics.
//!
//! Rebalance callbacks run inside the consumer's poll, on the loop's own task, so the loop
//! sees each change before it handles any record fetched after it.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use pipeline_runtime::endpoints::Health;

use crate::metrics::MetricNames;
use pipeline_runtime::kafka::{error_to_tracing, log_to_tracing};
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
    changed: Arc<Notify>,
    health: Arc<Health>,
    metrics: MetricNames,
}

impl EngineContext {
    /// A context reporting fatal client errors to `health`.
    pub fn new(health: Arc<Health>, metrics: MetricNames) -> Self {
        Self {
            changes: Arc::default(),
            changed: Arc::default(),
            health,
            metrics,
        }
    }

    /// Completes when a change has been reported since the last wait. The loop needs this
    /// besides the records: newly assigned partitions are paused, so no record announces them.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Takes the changes reported since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<AssignmentChange> {
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
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each partition
    /// this replica fetches. librdkafka's own `consumer_lag` needs the consumer's commits,
    /// which `exactly_once` makes through the producer, so the lag is computed here: the last
    /// stable offset less the position consumed (or fetched, before the first record).
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for p in topic.partitions.values() {
                if p.partition < 0 || p.fetch_state != "active" || p.ls_offset < 0 {
                    continue;
                }
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.next_offset
                };
                if position >= 0 {
                    self.metrics
                        .set_lag(p.partition, (p.ls_offset - position).max(0));
                }
            }
        }
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
