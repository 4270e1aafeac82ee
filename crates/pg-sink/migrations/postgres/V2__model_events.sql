-- The sensors' models' output (the processor's [processor.anomalies]): every anomaly and every
-- prediction on the anomalies topic, one row per record, keyed by the record.

CREATE TABLE sensor_anomalies (
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    sensor_id       text    NOT NULL,
    seq             bigint  NOT NULL,
    kind            text    NOT NULL,
    score           double precision NOT NULL,
    temperature     double precision NOT NULL,
    expected        double precision NOT NULL,
    low             double precision NOT NULL,
    high            double precision NOT NULL,
    event_time      timestamptz NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
);
CREATE INDEX sensor_anomalies_recent ON sensor_anomalies (event_time DESC, kafka_partition DESC, kafka_offset DESC);
CREATE INDEX sensor_anomalies_by_sensor ON sensor_anomalies (sensor_id, kafka_offset DESC);

CREATE TABLE sensor_predictions (
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    sensor_id       text    NOT NULL,
    seq             bigint  NOT NULL,
    expected        double precision NOT NULL,
    low             double precision NOT NULL,
    high            double precision NOT NULL,
    event_time      timestamptz NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
);
CREATE INDEX sensor_predictions_by_sensor ON sensor_predictions (sensor_id, kafka_offset DESC);
