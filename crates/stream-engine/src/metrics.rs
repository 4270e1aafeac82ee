//! The engine's Prometheus metrics, under names the job chooses, and how a batch is counted.
//!
//! Counters move only when a batch is committed (`exactly_once`) or acknowledged
//! (`at_least_once`), so an aborted batch is never counted twice.

use std::time::SystemTime;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// The names of the engine's metrics, so that each job keeps its own (`sensor_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricNames {
    /// Input records consumed and committed.
    pub consumed: &'static str,
    /// Outputs written, by `type` (the output's kind).
    pub produced: &'static str,
    /// The kinds of output, counted from 0 at start.
    pub output_kinds: &'static [&'static str],
    /// Dead letters written, by `reason`.
    pub dead_letters: &'static str,
    /// Records between the consumer's position and the partition end, by `partition`.
    pub lag: &'static str,
    /// Input partitions assigned.
    pub assigned_partitions: &'static str,
    /// Keys with state in memory.
    pub keys_in_memory: &'static str,
    /// Assignments and revocations seen.
    pub rebalances: &'static str,
    /// Batches, by `outcome` (`committed`, `aborted`).
    pub batches: &'static str,
    /// Time to commit a batch.
    pub commit_seconds: &'static str,
    /// Time to take, decode, apply and enqueue a batch's records.
    pub processing_seconds: &'static str,
    /// From an input's Kafka timestamp to its outputs being committed.
    pub end_to_end_seconds: &'static str,
    /// From a batch's oldest input's Kafka timestamp to the batch's processing starting: the
    /// first stage of [`MetricNames::end_to_end_seconds`] (processing and commit follow).
    pub input_wait_seconds: &'static str,
    /// Time to restore a partition's state.
    pub restore_seconds: &'static str,
    /// Transactional producers rebuilt after this replica's became unusable (fenced by the
    /// broker's abort of a timed-out transaction, or in a state it cannot leave).
    pub producer_recoveries: &'static str,
}

impl MetricNames {
    /// Registers every metric's description and unit, and the counters at 0.
    pub(crate) fn describe(&self) {
        describe_counter!(self.consumed, "Input records consumed and committed.");
        describe_counter!(
            self.produced,
            "Records written to the output topics, by type."
        );
        describe_counter!(
            self.dead_letters,
            "Unusable input records written to the dead-letter topic, by reason."
        );
        describe_gauge!(
            self.lag,
            "Records between this consumer's position and the partition end, by partition."
        );
        describe_gauge!(
            self.assigned_partitions,
            "Input partitions assigned to this replica."
        );
        describe_gauge!(self.keys_in_memory, "Keys with state in memory.");
        describe_counter!(
            self.rebalances,
            "Partition assignments and revocations seen."
        );
        describe_counter!(self.batches, "Batches committed or aborted, by outcome.");
        describe_counter!(
            self.producer_recoveries,
            "Transactional producers rebuilt after this replica's became unusable."
        );
        describe_histogram!(
            self.commit_seconds,
            Unit::Seconds,
            "Time to commit a batch."
        );
        describe_histogram!(
            self.processing_seconds,
            Unit::Seconds,
            "Time to take, decode, apply and enqueue a batch's records."
        );
        describe_histogram!(
            self.end_to_end_seconds,
            Unit::Seconds,
            "From an input's Kafka timestamp to its outputs being committed."
        );
        describe_histogram!(
            self.input_wait_seconds,
            Unit::Seconds,
            "From a batch's oldest input's Kafka timestamp to the batch's processing starting."
        );
        describe_histogram!(
            self.restore_seconds,
            Unit::Seconds,
            "Time to restore a partition's state from the changelog."
        );
        for kind in self.output_kinds {
            counter!(self.produced, "type" => *kind).absolute(0);
        }
        counter!(self.consumed).absolute(0);
        counter!(self.rebalances).absolute(0);
        counter!(self.producer_recoveries).absolute(0);
    }

    /// Publishes the assignment's size and the keys held.
    pub(crate) fn set_state(&self, assigned: usize, keys: usize) {
        gauge!(self.assigned_partitions).set(assigned as f64);
        gauge!(self.keys_in_memory).set(keys as f64);
    }

    /// Publishes the lag of one partition.
    pub(crate) fn set_lag(&self, partition: i32, lag: i64) {
        gauge!(self.lag, "partition" => partition.to_string()).set(lag as f64);
    }
}

/// The wall clock in milliseconds since the epoch, as Kafka timestamps are.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What one batch did, published when it is committed.
#[derive(Debug, Default)]
pub(crate) struct BatchTally {
    /// Records consumed.
    pub consumed: u64,
    /// Outputs by kind (a handful of kinds: a vector beats a map).
    pub produced: Vec<(&'static str, u64)>,
    /// Dead letters by reason.
    pub dead_letters: Vec<(&'static str, u64)>,
    /// Kafka timestamps (ms) of the batch's records.
    pub timestamps_ms: Vec<i64>,
}

/// Adds `n` to `kind`'s count.
pub(crate) fn add(counts: &mut Vec<(&'static str, u64)>, kind: &'static str, n: u64) {
    match counts.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, count)) => *count += n,
        None => counts.push((kind, n)),
    }
}

impl BatchTally {
    /// Forgets everything, keeping the buffers.
    pub fn clear(&mut self) {
        self.consumed = 0;
        self.produced.clear();
        self.dead_letters.clear();
        self.timestamps_ms.clear();
    }

    /// Publishes a committed batch.
    pub fn committed(&self, names: &MetricNames) {
        counter!(names.consumed).increment(self.consumed);
        for (kind, n) in &self.produced {
            counter!(names.produced, "type" => *kind).increment(*n);
        }
        for (reason, n) in &self.dead_letters {
            counter!(names.dead_letters, "reason" => *reason).increment(*n);
        }
        counter!(names.batches, "outcome" => "committed").increment(1);
        let now_ms = now_ms();
        let latency = histogram!(names.end_to_end_seconds);
        for ts in &self.timestamps_ms {
            latency.record((now_ms - ts).max(0) as f64 / 1000.0);
        }
    }
}
