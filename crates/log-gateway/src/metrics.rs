//! The gateway's metric names.

/// Connections accepted.
pub const CONNECTIONS_ACCEPTED: &str = "log_gateway_connections_accepted_total";
/// TLS handshakes that failed (an untrusted or missing client certificate, plaintext on the
/// TLS port, a client that stalled): the connection is closed.
pub const TLS_HANDSHAKE_FAILURES: &str = "log_gateway_tls_handshake_failures_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "log_gateway_connections_open";
/// Connections refused because `max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "log_gateway_connections_refused_total";
/// Requests to the HTTP endpoint answered, by status (label `status`).
pub const HTTP_REQUESTS: &str = "log_gateway_http_requests_total";
/// Lines read from the connections (oversize ones included).
pub const LINES_RECEIVED: &str = "log_gateway_lines_received_total";
/// Bytes read from the connections.
pub const BYTES_RECEIVED: &str = "log_gateway_bytes_received_total";
/// Lines Kafka acknowledged on the lines topic.
pub const LINES_PRODUCED: &str = "log_gateway_lines_produced_total";
/// Empty lines, skipped (not produced).
pub const EMPTY_LINES: &str = "log_gateway_empty_lines_total";
/// Frames on the syslog listener that are not syslog messages (no `<PRI>`, a bad RFC 5424
/// header): dead-lettered.
pub const NOT_SYSLOG: &str = "log_gateway_not_syslog_total";
/// Lines longer than `max_line_bytes`.
pub const OVERSIZE_LINES: &str = "log_gateway_oversize_lines_total";
/// Dead letters Kafka acknowledged.
pub const DEAD_LETTERS_PRODUCED: &str = "log_gateway_dead_letters_produced_total";
/// Records that could not be delivered (lost).
pub const PRODUCE_FAILURES: &str = "log_gateway_produce_failures_total";
/// Records handed to the producer and not yet acknowledged (the producer's queue).
pub const IN_FLIGHT: &str = "log_gateway_producer_in_flight";

/// Registers the descriptions and starts the counters at 0, so they exist before the first
/// event.
pub fn describe() {
    use metrics::{counter, describe_counter, describe_gauge, gauge};
    for (name, help) in [
        (CONNECTIONS_ACCEPTED, "Connections accepted."),
        (
            TLS_HANDSHAKE_FAILURES,
            "TLS handshakes that failed; the connection was closed.",
        ),
        (
            CONNECTIONS_REFUSED,
            "Connections refused at the max_connections limit.",
        ),
        (
            LINES_RECEIVED,
            "Lines read from the connections, oversize ones included.",
        ),
        (BYTES_RECEIVED, "Bytes read from the connections."),
        (LINES_PRODUCED, "Lines acknowledged by Kafka."),
        (EMPTY_LINES, "Empty lines, skipped (not produced)."),
        (
            NOT_SYSLOG,
            "Frames on the syslog listener that are not syslog messages, dead-lettered.",
        ),
        (
            OVERSIZE_LINES,
            "Lines longer than max_line_bytes, dead-lettered.",
        ),
        (DEAD_LETTERS_PRODUCED, "Dead letters acknowledged by Kafka."),
        (PRODUCE_FAILURES, "Records that could not be delivered."),
    ] {
        describe_counter!(name, help);
        counter!(name).absolute(0);
    }
    describe_counter!(
        HTTP_REQUESTS,
        "Requests to POST /v1/logs answered, by status."
    );
    describe_gauge!(CONNECTIONS_OPEN, "Connections open.");
    describe_gauge!(
        IN_FLIGHT,
        "Records produced and not yet acknowledged by Kafka."
    );
    gauge!(CONNECTIONS_OPEN).set(0.0);
    gauge!(IN_FLIGHT).set(0.0);
}
