//! The processor's Prometheus metrics: names, descriptions, and how a batch is counted.
//!
//! Counters move only when a batch is committed (`exactly_once`) or acknowledged
//! (`at_least_once`), so an aborted batch is never counted twice.

use std::collections::HashMap;
use std::time::SystemTime;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Input records consumed and committed.
pub const READINGS_CONSUMED: &str = "sensor_readings_consumed_total";
/// Events written, by `type` (`alert`, `average`).
pub const EVENTS_PRODUCED: &str = "sensor_events_produced_total";
/// Dead letters written, by `reason` (the `error.kind`).
pub const DEAD_LETTERS: &str = "sensor_dead_letters_total";
/// Records the input partition's end is ahead of this consumer, by `partition`.
pub const CONSUMER_LAG: &str = "sensor_consumer_lag";
/// Input partitions assigned to this replica.
pub const ASSIGNED_PARTITIONS: &str = "sensor_assigned_partitions";
/// Sensors with a window in memory.
pub const SENSORS_IN_MEMORY: &str = "sensor_sensors_in_memory";
/// Partition assignments and revocations seen.
pub const REBALANCES: &str = "sensor_rebalances_total";
/// Batches committed or aborted, by `outcome`.
pub const BATCHES: &str = "sensor_batches_total";
/// Time to commit a batch (the transaction, or the acknowledgements and offset store).
pub const COMMIT_SECONDS: &str = "sensor_commit_duration_seconds";
/// Time to decode, apply and enqueue a batch.
pub const PROCESSING_SECONDS: &str = "sensor_batch_processing_duration_seconds";
/// From a reading's Kafka timestamp to its outputs being committed.
pub const END_TO_END_SECONDS: &str = "sensor_end_to_end_latency_seconds";
/// Time to restore a partition's windows.
pub const RESTORE_SECONDS: &str = "sensor_restore_duration_seconds";

/// Registers every metric's description and unit.
pub fn describe() {
    describe_counter!(READINGS_CONSUMED, "Input records consumed and committed.");
    describe_counter!(
        EVENTS_PRODUCED,
        "Events written to the output topic, by type."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Unusable input records written to the dead-letter topic, by reason."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records between this consumer's position and the partition end, by partition."
    );
    describe_gauge!(
        ASSIGNED_PARTITIONS,
        "Input partitions assigned to this replica."
    );
    describe_gauge!(SENSORS_IN_MEMORY, "Sensors with a window in memory.");
    describe_counter!(REBALANCES, "Partition assignments and revocations seen.");
    describe_counter!(BATCHES, "Batches committed or aborted, by outcome.");
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Time to commit a batch.");
    describe_histogram!(
        PROCESSING_SECONDS,
        Unit::Seconds,
        "Time to decode, apply and enqueue a batch."
    );
    describe_histogram!(
        END_TO_END_SECONDS,
        Unit::Seconds,
        "From a reading's Kafka timestamp to its outputs being committed."
    );
    describe_histogram!(
        RESTORE_SECONDS,
        Unit::Seconds,
        "Time to restore a partition's windows from the changelog."
    );
    for kind in ["alert", "average"] {
        counter!(EVENTS_PRODUCED, "type" => kind).absolute(0);
    }
    counter!(READINGS_CONSUMED).absolute(0);
    counter!(REBALANCES).absolute(0);
}

/// What one batch did, published when it is committed.
#[derive(Debug, Default)]
pub struct BatchTally {
    /// Records consumed.
    pub consumed: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Averages written.
    pub averages: u64,
    /// Dead letters by reason.
    pub dead_letters: HashMap<&'static str, u64>,
    /// Kafka timestamps (ms) of the batch's records.
    pub timestamps_ms: Vec<i64>,
}

impl BatchTally {
    /// Publishes a committed batch.
    pub fn committed(&self) {
        counter!(READINGS_CONSUMED).increment(self.consumed);
        counter!(EVENTS_PRODUCED, "type" => "alert").increment(self.alerts);
        counter!(EVENTS_PRODUCED, "type" => "average").increment(self.averages);
        for (reason, n) in &self.dead_letters {
            counter!(DEAD_LETTERS, "reason" => *reason).increment(*n);
        }
        counter!(BATCHES, "outcome" => "committed").increment(1);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let latency = histogram!(END_TO_END_SECONDS);
        for ts in &self.timestamps_ms {
            latency.record((now_ms - ts).max(0) as f64 / 1000.0);
        }
    }

    /// Counts an aborted batch.
    pub fn aborted() {
        counter!(BATCHES, "outcome" => "aborted").increment(1);
    }
}

/// Publishes the assignment's size and the sensors held.
pub fn set_state(assigned: usize, sensors: usize) {
    gauge!(ASSIGNED_PARTITIONS).set(assigned as f64);
    gauge!(SENSORS_IN_MEMORY).set(sensors as f64);
}

/// Publishes the lag of one partition.
pub fn set_lag(partition: i32, lag: i64) {
    gauge!(CONSUMER_LAG, "partition" => partition.to_string()).set(lag as f64);
}
