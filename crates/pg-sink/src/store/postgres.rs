//! PostgreSQL: connecting, migrating (`migrations/postgres/`, under an advisory lock), reading
//! where each partition stands, and writing a batch as one transaction of multi-row
//! `INSERT … SELECT * FROM UNNEST(…)` statements (rows, sensors, offsets and a NOTIFY commit
//! together).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use super::{Partitions, Written, announcement, take_new};
use crate::rows::Rows;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// Key of the advisory lock held while migrating, so that replicas (and the dashboard)
/// starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x7069_7065_6c69_6e65; // "pipeline"

/// A connection, with the statements a batch needs.
pub struct PgStore {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

/// Where a configuration points, without the password: for logs.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "PostgreSQL {}:{} database {}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("(user's)")
    )
}

impl PgStore {
    /// Connects once.
    pub async fn connect(mut config: tokio_postgres::Config) -> anyhow::Result<Self> {
        if config.get_application_name().is_none() {
            config.application_name("pg-sink");
        }
        config.connect_timeout(Duration::from_secs(5));
        let (client, connection) = config.connect(NoTls).await?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "database connection closed");
            }
        });
        Ok(Self { client, connection })
    }

    /// Whether the connection is gone (then a new one is needed).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Applies the versioned migrations in `migrations/postgres/` not yet applied, under an advisory
    /// lock. Returns the versions applied now.
    pub async fn migrate(&mut self) -> anyhow::Result<Vec<i32>> {
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .context("taking the migration lock")?;
        let report = embedded::migrations::runner()
            .run_async(&mut self.client)
            .await;
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .context("releasing the migration lock")?;
        let report = report.context("applying the schema migrations")?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.version())
            .collect())
    }

    /// The next offset to write per partition of `topic`, for the partitions the database
    /// knows.
    pub async fn positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let rows = self
            .client
            .query(
                "SELECT kafka_partition, next_offset FROM consumed_offsets \
                 WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3)",
                &[&group, &topic, &partitions],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Writes a batch in one transaction: the rows of `records` (per topic), the sensors they
    /// change, the new positions and a notification. Records below the partition's stored position were written before (by
    /// this sink before a crash, or by another replica) and are skipped: the position is read
    /// with `FOR UPDATE`, so two sinks holding one partition for a moment serialize here and
    /// never write a record twice.
    pub async fn write(
        &mut self,
        group: &str,
        notify_channel: &str,
        records: &[(String, Partitions)],
    ) -> anyhow::Result<Written> {
        let tx = self.client.transaction().await?;
        let mut rows = Rows::default();
        let mut skipped = 0;
        let mut moves = Vec::new();
        // Topics, then partitions, in a fixed order: the order the position rows are locked in.
        for (topic, partitions) in records {
            let ids: Vec<i32> = partitions.keys().copied().collect();
            tx.execute(
                "INSERT INTO consumed_offsets (consumer_group, topic, kafka_partition, next_offset) \
                 SELECT $1, $2, p, 0 FROM UNNEST($3::int4[]) AS p ON CONFLICT DO NOTHING",
                &[&group, &topic.as_str(), &ids],
            )
            .await?;
            let stored: BTreeMap<i32, i64> = tx
                .query(
                    "SELECT kafka_partition, next_offset FROM consumed_offsets \
                     WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3) \
                     ORDER BY kafka_partition FOR UPDATE",
                    &[&group, &topic.as_str(), &ids],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let (topic_skipped, topic_moves) = take_new(partitions, &stored, &mut rows);
            skipped += topic_skipped;
            moves.push((topic.as_str(), topic_moves));
        }

        let mut written = Written {
            skipped,
            ..Written::default()
        };
        let a = &rows.alerts;
        if !a.offset.is_empty() {
            written.rows += tx
                .execute(
                    "INSERT INTO temperature_alerts \
                     (kafka_partition, kafka_offset, sensor_id, seq, temperature, threshold, event_time) \
                     SELECT * FROM UNNEST($1::int4[], $2::int8[], $3::text[], $4::int8[], \
                     $5::float8[], $6::float8[], $7::timestamptz[])",
                    &[
                        &a.partition,
                        &a.offset,
                        &a.sensor_id,
                        &a.seq,
                        &a.temperature,
                        &a.threshold,
                        &a.event_time,
                    ],
                )
                .await?;
        }
        let v = &rows.averages;
        if !v.offset.is_empty() {
            written.rows += tx
                .execute(
                    "INSERT INTO temperature_averages \
                     (kafka_partition, kafka_offset, sensor_id, seq, average, window_size, event_time) \
                     SELECT * FROM UNNEST($1::int4[], $2::int8[], $3::text[], $4::int8[], \
                     $5::float8[], $6::int4[], $7::timestamptz[])",
                    &[
                        &v.partition,
                        &v.offset,
                        &v.sensor_id,
                        &v.seq,
                        &v.average,
                        &v.window_size,
                        &v.event_time,
                    ],
                )
                .await?;
        }
        let c = &rows.ip_counts;
        if !c.offset.is_empty() {
            let inserted = tx
                .execute(
                    "INSERT INTO ip_counts \
                     (window_start, window_end, ip, count, kafka_partition, kafka_offset) \
                     SELECT * FROM UNNEST($1::timestamptz[], $2::timestamptz[], $3::inet[], \
                     $4::int8[], $5::int4[], $6::int8[]) \
                     ON CONFLICT (window_start, ip) DO NOTHING",
                    &[
                        &c.window_start,
                        &c.window_end,
                        &c.ip,
                        &c.count,
                        &c.partition,
                        &c.offset,
                    ],
                )
                .await?;
            written.rows += inserted;
            written.duplicate_counts = c.offset.len() as u64 - inserted;
        }
        let m = &rows.anomalies;
        if !m.offset.is_empty() {
            written.rows += tx
                .execute(
                    "INSERT INTO sensor_anomalies (kafka_partition, kafka_offset, sensor_id, seq, \
                     kind, score, temperature, expected, low, high, event_time) \
                     SELECT * FROM UNNEST($1::int4[], $2::int8[], $3::text[], $4::int8[], \
                     $5::text[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], \
                     $10::float8[], $11::timestamptz[])",
                    &[
                        &m.partition,
                        &m.offset,
                        &m.sensor_id,
                        &m.seq,
                        &m.kind,
                        &m.score,
                        &m.temperature,
                        &m.expected,
                        &m.low,
                        &m.high,
                        &m.event_time,
                    ],
                )
                .await?;
        }
        let p = &rows.predictions;
        if !p.offset.is_empty() {
            written.rows += tx
                .execute(
                    "INSERT INTO sensor_predictions (kafka_partition, kafka_offset, sensor_id, \
                     seq, expected, low, high, event_time, temperature) \
                     SELECT * FROM UNNEST($1::int4[], $2::int8[], $3::text[], $4::int8[], \
                     $5::float8[], $6::float8[], $7::float8[], $8::timestamptz[], $9::float8[])",
                    &[
                        &p.partition,
                        &p.offset,
                        &p.sensor_id,
                        &p.seq,
                        &p.expected,
                        &p.low,
                        &p.high,
                        &p.event_time,
                        &p.temperature,
                    ],
                )
                .await?;
        }
        if !rows.sensors.is_empty() {
            let mut ids = Vec::with_capacity(rows.sensors.len());
            let (mut seq, mut time) = (Vec::new(), Vec::new());
            let (mut avg, mut avg_seq) = (Vec::new(), Vec::new());
            let (mut alert, mut alert_seq) = (Vec::new(), Vec::new());
            let (mut alerts, mut averages) = (Vec::new(), Vec::new());
            for (id, s) in &rows.sensors {
                ids.push(id.as_str());
                seq.push(s.last_seq);
                time.push(s.last_event_time);
                avg.push(s.last_average.map(|(_, a)| a));
                avg_seq.push(s.last_average.map(|(q, _)| q));
                alert.push(s.last_alert.map(|(_, t)| t));
                alert_seq.push(s.last_alert.map(|(q, _)| q));
                alerts.push(s.alerts);
                averages.push(s.averages);
            }
            // A sensor's events are all on one partition and batches of a partition are
            // written in offset order, so the batch's last values are the newest.
            tx.execute(
                "INSERT INTO sensors AS s (sensor_id, last_seq, last_event_time, last_average, \
                 last_average_seq, last_alert_temperature, last_alert_seq, alert_count, average_count) \
                 SELECT * FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::float8[], \
                 $5::int8[], $6::float8[], $7::int8[], $8::int8[], $9::int8[]) \
                 ON CONFLICT (sensor_id) DO UPDATE SET \
                 last_seq = EXCLUDED.last_seq, last_event_time = EXCLUDED.last_event_time, \
                 last_average = COALESCE(EXCLUDED.last_average, s.last_average), \
                 last_average_seq = COALESCE(EXCLUDED.last_average_seq, s.last_average_seq), \
                 last_alert_temperature = COALESCE(EXCLUDED.last_alert_temperature, s.last_alert_temperature), \
                 last_alert_seq = COALESCE(EXCLUDED.last_alert_seq, s.last_alert_seq), \
                 alert_count = s.alert_count + EXCLUDED.alert_count, \
                 average_count = s.average_count + EXCLUDED.average_count",
                &[
                    &ids, &seq, &time, &avg, &avg_seq, &alert, &alert_seq, &alerts, &averages,
                ],
            )
            .await?;
        }
        for (topic, moved) in &moves {
            if moved.partitions.is_empty() {
                continue;
            }
            tx.execute(
                "UPDATE consumed_offsets AS c SET next_offset = u.next, updated_at = now() \
                 FROM UNNEST($3::int4[], $4::int8[]) AS u(p, next) \
                 WHERE c.consumer_group = $1 AND c.topic = $2 AND c.kafka_partition = u.p",
                &[&group, topic, &moved.partitions, &moved.next],
            )
            .await?;
        }
        if written.rows > 0 && !notify_channel.is_empty() {
            let payload = announcement(&rows, written.duplicate_counts);
            // Delivered to listeners when (and only if) the transaction commits.
            tx.execute("SELECT pg_notify($1, $2)", &[&notify_channel, &payload])
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
