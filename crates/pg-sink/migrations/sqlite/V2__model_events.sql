-- The sensors' models' output, as in migrations/postgres/V2__model_events.sql (times in
-- microseconds since the epoch).

CREATE TABLE sensor_anomalies (
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    sensor_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    score           REAL    NOT NULL,
    temperature     REAL    NOT NULL,
    expected        REAL    NOT NULL,
    low             REAL    NOT NULL,
    high            REAL    NOT NULL,
    event_time      INTEGER NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
) STRICT;
CREATE INDEX sensor_anomalies_recent ON sensor_anomalies (event_time DESC, kafka_partition DESC, kafka_offset DESC);
CREATE INDEX sensor_anomalies_by_sensor ON sensor_anomalies (sensor_id, kafka_offset DESC);

CREATE TABLE sensor_predictions (
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL,
    sensor_id       TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    expected        REAL    NOT NULL,
    low             REAL    NOT NULL,
    high            REAL    NOT NULL,
    event_time      INTEGER NOT NULL,
    PRIMARY KEY (kafka_partition, kafka_offset)
) STRICT;
CREATE INDEX sensor_predictions_by_sensor ON sensor_predictions (sensor_id, kafka_offset DESC);
