-- The pipelines' results, written by pg-sink. Each row carries the Kafka record it came from
-- (partition, offset of its topic): that is its identity, so a record can never be two rows.

-- Where each (group, topic, partition) stands: the offset of the next record to write. Updated
-- in the same transaction as the rows, so rows and position never disagree.
CREATE TABLE consumed_offsets (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset    bigint  NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- Every alert on temperature-events.
CREATE TABLE temperature_alerts (
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    sensor_id       text    NOT NULL,
    seq             bigint  NOT NULL,
    temperature     double precision NOT NULL,
    threshold       double precision NOT NULL,
    event_time      timestamptz NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
);
CREATE INDEX temperature_alerts_recent ON temperature_alerts (event_time DESC, kafka_partition DESC, kafka_offset DESC);
CREATE INDEX temperature_alerts_by_sensor ON temperature_alerts (sensor_id, kafka_offset DESC);

-- Every average on temperature-events.
CREATE TABLE temperature_averages (
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    sensor_id       text    NOT NULL,
    seq             bigint  NOT NULL,
    average         double precision NOT NULL,
    window_size     integer NOT NULL,
    event_time      timestamptz NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
);
-- A sensor is on one partition: its offsets order its events (seq restarts with a simulator).
CREATE INDEX temperature_averages_by_sensor ON temperature_averages (sensor_id, kafka_offset DESC);

-- The latest state per sensor, folded from the events above in the same transactions.
CREATE TABLE sensors (
    sensor_id        text PRIMARY KEY,
    last_seq         bigint NOT NULL,
    last_event_time  timestamptz NOT NULL,
    last_average     double precision,
    last_average_seq bigint,
    last_alert_temperature double precision,
    last_alert_seq   bigint,
    alert_count      bigint NOT NULL DEFAULT 0,
    average_count    bigint NOT NULL DEFAULT 0
);

-- Every final count on ip-counts: one per (window, address).
CREATE TABLE ip_counts (
    window_start    timestamptz NOT NULL,
    window_end      timestamptz NOT NULL,
    ip              inet    NOT NULL,
    count           bigint  NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    PRIMARY KEY (window_start, ip),
    UNIQUE (kafka_partition, kafka_offset)
);
-- Top talkers of a window: the index is the answer, in order.
CREATE INDEX ip_counts_top ON ip_counts (window_start DESC, count DESC, ip);
