//! The temperature job's metric names: the engine publishes its metrics under them.

use stream_engine::MetricNames;

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
/// Time to take, decode, apply and enqueue a batch's records.
pub const PROCESSING_SECONDS: &str = "sensor_batch_processing_duration_seconds";
/// From a reading's Kafka timestamp to its outputs being committed.
pub const END_TO_END_SECONDS: &str = "sensor_end_to_end_latency_seconds";
/// From a batch's oldest reading's Kafka timestamp to the batch's processing starting.
pub const INPUT_WAIT_SECONDS: &str = "sensor_input_wait_seconds";
/// Time to restore a partition's windows.
pub const RESTORE_SECONDS: &str = "sensor_restore_duration_seconds";

/// Transactional producers rebuilt after this replica's became unusable.
pub const PRODUCER_RECOVERIES: &str = "sensor_producer_recoveries_total";
/// Readings the ONNX model failed on (logged at WARN; they judge nothing).
pub const ONNX_ERRORS: &str = "sensor_onnx_errors_total";

/// All of them, for the engine.
pub const NAMES: MetricNames = MetricNames {
    consumed: READINGS_CONSUMED,
    produced: EVENTS_PRODUCED,
    output_kinds: &["alert", "average"],
    dead_letters: DEAD_LETTERS,
    lag: CONSUMER_LAG,
    assigned_partitions: ASSIGNED_PARTITIONS,
    keys_in_memory: SENSORS_IN_MEMORY,
    rebalances: REBALANCES,
    batches: BATCHES,
    commit_seconds: COMMIT_SECONDS,
    processing_seconds: PROCESSING_SECONDS,
    end_to_end_seconds: END_TO_END_SECONDS,
    input_wait_seconds: INPUT_WAIT_SECONDS,
    restore_seconds: RESTORE_SECONDS,
    producer_recoveries: PRODUCER_RECOVERIES,
};
