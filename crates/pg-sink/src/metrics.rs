//! The sink's metric names.

/// Records consumed, by topic.
pub const CONSUMED: &str = "pg_sink_records_consumed_total";
/// Rows inserted, by table.
pub const ROWS: &str = "pg_sink_rows_written_total";
/// Records skipped because the database already held them (re-read after a crash or a
/// rebalance), by topic.
pub const SKIPPED: &str = "pg_sink_records_already_written_total";
/// Counts not inserted because their (window, address) already had one.
pub const DUPLICATE_COUNTS: &str = "pg_sink_duplicate_counts_total";
/// Records dead-lettered, by kind of error.
pub const DEAD_LETTERS: &str = "pg_sink_dead_letters_total";
/// Transactions committed.
pub const TRANSACTIONS: &str = "pg_sink_transactions_total";
/// Transaction duration, seconds.
pub const TRANSACTION_SECONDS: &str = "pg_sink_transaction_duration_seconds";
/// Failed connection attempts and failed transactions.
pub const DB_ERRORS: &str = "pg_sink_database_errors_total";
/// Partitions assigned.
pub const ASSIGNED: &str = "pg_sink_assigned_partitions";
