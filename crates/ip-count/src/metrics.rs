//! The IP-count stages' metric names.

use stream_engine::MetricNames;

/// Stage 1: lines in, one request per address out.
pub const LINES: MetricNames = MetricNames {
    consumed: "ip_count_lines_consumed_total",
    produced: "ip_count_requests_produced_total",
    output_kinds: &["request"],
    dead_letters: "ip_count_lines_dead_letters_total",
    lag: "ip_count_lines_consumer_lag",
    assigned_partitions: "ip_count_lines_assigned_partitions",
    keys_in_memory: "ip_count_lines_keys_in_memory",
    rebalances: "ip_count_lines_rebalances_total",
    batches: "ip_count_lines_batches_total",
    commit_seconds: "ip_count_lines_commit_duration_seconds",
    processing_seconds: "ip_count_lines_batch_processing_duration_seconds",
    end_to_end_seconds: "ip_count_lines_end_to_end_latency_seconds",
    input_wait_seconds: "ip_count_lines_input_wait_seconds",
    restore_seconds: "ip_count_lines_restore_duration_seconds",
    producer_recoveries: "ip_count_lines_producer_recoveries_total",
};

/// Stage 2: requests in, final counts out.
pub const COUNTS: MetricNames = MetricNames {
    consumed: "ip_count_requests_consumed_total",
    produced: "ip_count_counts_produced_total",
    output_kinds: &["count"],
    dead_letters: "ip_count_late_requests_total",
    lag: "ip_count_requests_consumer_lag",
    assigned_partitions: "ip_count_requests_assigned_partitions",
    keys_in_memory: "ip_count_addresses_in_memory",
    rebalances: "ip_count_requests_rebalances_total",
    batches: "ip_count_requests_batches_total",
    commit_seconds: "ip_count_requests_commit_duration_seconds",
    processing_seconds: "ip_count_requests_batch_processing_duration_seconds",
    end_to_end_seconds: "ip_count_requests_end_to_end_latency_seconds",
    input_wait_seconds: "ip_count_requests_input_wait_seconds",
    restore_seconds: "ip_count_requests_restore_duration_seconds",
    producer_recoveries: "ip_count_requests_producer_recoveries_total",
};
