-- The pipelines' results in an SQLite file: the same tables, keys and indexes as
-- `migrations/postgres/V1__results.sql`, in SQLite's types (STRICT tables: a value of the wrong
-- type is an error, as in PostgreSQL). Two representations differ, chosen so that every query
-- orders and compares exactly as PostgreSQL's does:
--   - times are INTEGER microseconds since the Unix epoch, UTC (timestamptz's precision);
--   - addresses are BLOBs: one byte for the family (4 or 6), then the address's 4 or 16 bytes,
--     so that byte order is inet's order (IPv4 before IPv6, then by address).

CREATE TABLE consumed_offsets (
    consumer_group  TEXT    NOT NULL,
    topic           TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
) STRICT, WITHOUT ROWID;

CREATE TABLE temperature_alerts (
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    sensor_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    temperature     REAL    NOT NULL,
    threshold       REAL    NOT NULL,
    event_time      INTEGER NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
) STRICT;
CREATE INDEX temperature_alerts_recent ON temperature_alerts (event_time DESC, kafka_partition DESC, kafka_offset DESC);
CREATE INDEX temperature_alerts_by_sensor ON temperature_alerts (sensor_id, kafka_offset DESC);

CREATE TABLE temperature_averages (
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    sensor_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    average         REAL    NOT NULL,
    window_size     INTEGER NOT NULL,
    event_time      INTEGER NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
) STRICT;
CREATE INDEX temperature_averages_by_sensor ON temperature_averages (sensor_id, kafka_offset DESC);

CREATE TABLE sensors (
    sensor_id        TEXT PRIMARY KEY,
    last_seq         INTEGER NOT NULL,
    last_event_time  INTEGER NOT NULL,
    last_average     REAL,
    last_average_seq INTEGER,
    last_alert_temperature REAL,
    last_alert_seq   INTEGER,
    alert_count      INTEGER NOT NULL DEFAULT 0,
    average_count    INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

CREATE TABLE ip_counts (
    window_start    INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    ip              BLOB    NOT NULL,
    count           INTEGER NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    PRIMARY KEY (window_start, ip),
    UNIQUE (kafka_partition, kafka_offset)
) STRICT;
CREATE INDEX ip_counts_top ON ip_counts (window_start DESC, count DESC, ip);

-- PostgreSQL's NOTIFY, for a file: each transaction that wrote rows appends one line here (in
-- that transaction), and the dashboard reads the lines after the last one it saw. The sink
-- keeps the newest thousand.
CREATE TABLE sink_commits (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alerts    INTEGER NOT NULL,
    averages  INTEGER NOT NULL,
    ip_counts INTEGER NOT NULL
) STRICT;
