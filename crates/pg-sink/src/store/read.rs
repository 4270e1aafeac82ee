//! The read side of the results store, for the dashboard's API: the same questions, answered
//! the same way (same order, same ties, same precision) by PostgreSQL and by SQLite.
//!
//! PostgreSQL answers through a connection pool; SQLite through a read-only connection per
//! question, opened on the blocking pool (opening a file is cheaper than a pool's bookkeeping,
//! and WAL mode lets readers run beside the sink's writes).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{OpenFlags, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Location;
use super::sqlite::{address_of, time_of};

/// A time as the API shows it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A sensor's latest state and trend (its last averages, oldest first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorView {
    pub sensor_id: String,
    pub last_seq: i64,
    pub last_event_time: String,
    pub last_average: Option<f64>,
    pub last_alert_temperature: Option<f64>,
    pub alert_count: i64,
    pub average_count: i64,
    pub trend: Vec<f64>,
}

/// One average of a sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AverageView {
    pub seq: i64,
    pub average: f64,
    pub window_size: i32,
    pub timestamp: String,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub sensor_id: String,
    pub seq: i64,
    pub temperature: f64,
    pub threshold: f64,
    pub timestamp: String,
}

/// A window with counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    pub window_start: String,
    pub window_end: String,
    pub addresses: i64,
    pub requests: i64,
}

/// An address and its requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Talker {
    pub ip: String,
    pub count: i64,
}

/// An anomaly a sensor's model raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyView {
    pub sensor_id: String,
    pub seq: i64,
    pub kind: String,
    pub score: f64,
    pub temperature: f64,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    pub timestamp: String,
}

/// A sensor model's forecast of the reading after `seq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionView {
    pub seq: i64,
    /// The reading the forecast was made after (null for events written before it was sent).
    pub temperature: Option<f64>,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    pub timestamp: String,
}

/// The stored address in column `index` (see [`super::sqlite::address_bytes`]).
fn address_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<IpAddr> {
    let bytes: Vec<u8> = row.get(index)?;
    address_of(&bytes).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(index, "ip".to_owned(), rusqlite::types::Type::Blob)
    })
}

/// Where the dashboard reads the results.
#[derive(Clone)]
pub enum Reader {
    /// A pool of PostgreSQL connections.
    Postgres(deadpool_postgres::Pool),
    /// An SQLite file.
    Sqlite(PathBuf),
}

/// Runs `work` on a read-only connection to `path`, on the blocking pool.
async fn on_file<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let connection = rusqlite::Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the SQLite file {}", path.display()))?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(work(&connection)?)
    })
    .await
    .context("the database call panicked")?
}

impl Reader {
    /// A reader for `url`: a pool of at most `max_connections` for PostgreSQL.
    pub fn new(url: &str, max_connections: usize) -> anyhow::Result<Self> {
        match Location::parse(url).map_err(anyhow::Error::msg)? {
            Location::Postgres(config) => {
                let manager = deadpool_postgres::Manager::from_config(
                    *config,
                    tokio_postgres::NoTls,
                    deadpool_postgres::ManagerConfig {
                        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                    },
                );
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(max_connections)
                    .build()
                    .context("building the connection pool")?;
                Ok(Self::Postgres(pool))
            }
            Location::Sqlite(path) => Ok(Self::Sqlite(path)),
        }
    }

    /// Sensors by id, a page of them, each with its last `trend` averages; and how many there
    /// are.
    pub async fn sensors(
        &self,
        limit: i64,
        offset: i64,
        trend: i64,
    ) -> anyhow::Result<(i64, Vec<SensorView>)> {
        match self {
            Self::Postgres(pool) => {
                let db = pool.get().await?;
                let total: i64 = db
                    .query_one("SELECT count(*) FROM sensors", &[])
                    .await?
                    .get(0);
                let rows = db
                    .query(
                        "SELECT s.sensor_id, s.last_seq, s.last_event_time, s.last_average, \
                         s.last_alert_temperature, s.alert_count, s.average_count, \
                         ARRAY(SELECT average FROM (SELECT average, kafka_offset \
                               FROM temperature_averages a WHERE a.sensor_id = s.sensor_id \
                               ORDER BY kafka_offset DESC LIMIT $3) t ORDER BY kafka_offset) \
                         FROM sensors s ORDER BY s.sensor_id LIMIT $1 OFFSET $2",
                        &[&limit, &offset, &trend],
                    )
                    .await?;
                let sensors = rows
                    .iter()
                    .map(|r| SensorView {
                        sensor_id: r.get(0),
                        last_seq: r.get(1),
                        last_event_time: rfc3339(r.get(2)),
                        last_average: r.get(3),
                        last_alert_temperature: r.get(4),
                        alert_count: r.get(5),
                        average_count: r.get(6),
                        trend: r.get(7),
                    })
                    .collect();
                Ok((total, sensors))
            }
            Self::Sqlite(path) => {
                on_file(path, move |db| {
                    let total = db.query_row("SELECT count(*) FROM sensors", [], |r| r.get(0))?;
                    let mut list = db.prepare(
                        "SELECT sensor_id, last_seq, last_event_time, last_average, \
                         last_alert_temperature, alert_count, average_count \
                         FROM sensors ORDER BY sensor_id LIMIT ?1 OFFSET ?2",
                    )?;
                    // The newest `trend` through the (sensor_id, kafka_offset DESC) index.
                    let mut averages = db.prepare(
                        "SELECT average FROM (SELECT average, kafka_offset \
                         FROM temperature_averages WHERE sensor_id = ?1 \
                         ORDER BY kafka_offset DESC LIMIT ?2) ORDER BY kafka_offset",
                    )?;
                    let mut sensors: Vec<SensorView> = list
                        .query_map(params![limit, offset], |r| {
                            Ok(SensorView {
                                sensor_id: r.get(0)?,
                                last_seq: r.get(1)?,
                                last_event_time: rfc3339(time_of(r.get(2)?)),
                                last_average: r.get(3)?,
                                last_alert_temperature: r.get(4)?,
                                alert_count: r.get(5)?,
                                average_count: r.get(6)?,
                                trend: Vec::new(),
                            })
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    for sensor in &mut sensors {
                        sensor.trend = averages
                            .query_map(params![sensor.sensor_id, trend], |r| r.get(0))?
                            .collect::<rusqlite::Result<_>>()?;
                    }
                    Ok((total, sensors))
                })
                .await
            }
        }
    }

    /// One sensor's averages, newest first; `None` for a sensor never seen.
    pub async fn sensor_averages(
        &self,
        sensor_id: &str,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Option<Vec<AverageView>>> {
        match self {
            Self::Postgres(pool) => {
                let db = pool.get().await?;
                let known = db
                    .query_opt("SELECT 1 FROM sensors WHERE sensor_id = $1", &[&sensor_id])
                    .await?;
                if known.is_none() {
                    return Ok(None);
                }
                let rows = db
                    .query(
                        "SELECT seq, average, window_size, event_time FROM temperature_averages \
                         WHERE sensor_id = $1 ORDER BY kafka_offset DESC LIMIT $2 OFFSET $3",
                        &[&sensor_id, &limit, &offset],
                    )
                    .await?;
                Ok(Some(
                    rows.iter()
                        .map(|r| AverageView {
                            seq: r.get(0),
                            average: r.get(1),
                            window_size: r.get(2),
                            timestamp: rfc3339(r.get(3)),
                        })
                        .collect(),
                ))
            }
            Self::Sqlite(path) => {
                let sensor_id = sensor_id.to_owned();
                on_file(path, move |db| {
                    let known: Option<i64> = db
                        .query_row(
                            "SELECT 1 FROM sensors WHERE sensor_id = ?1",
                            [&sensor_id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if known.is_none() {
                        return Ok(None);
                    }
                    let mut statement = db.prepare(
                        "SELECT seq, average, window_size, event_time FROM temperature_averages \
                         WHERE sensor_id = ?1 ORDER BY kafka_offset DESC LIMIT ?2 OFFSET ?3",
                    )?;
                    let averages = statement
                        .query_map(params![sensor_id, limit, offset], |r| {
                            Ok(AverageView {
                                seq: r.get(0)?,
                                average: r.get(1)?,
                                window_size: r.get(2)?,
                                timestamp: rfc3339(time_of(r.get(3)?)),
                            })
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(Some(averages))
                })
                .await
            }
        }
    }

    /// Alerts, newest event time first (then partition and offset, descending); of one sensor
    /// if `sensor` is given.
    pub async fn alerts(
        &self,
        limit: i64,
        offset: i64,
        sensor: Option<String>,
    ) -> anyhow::Result<Vec<AlertView>> {
        match self {
            Self::Postgres(pool) => {
                let rows = pool
                    .get()
                    .await?
                    .query(
                        "SELECT sensor_id, seq, temperature, threshold, event_time \
                         FROM temperature_alerts WHERE $3::text IS NULL OR sensor_id = $3 \
                         ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC \
                         LIMIT $1 OFFSET $2",
                        &[&limit, &offset, &sensor],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| AlertView {
                        sensor_id: r.get(0),
                        seq: r.get(1),
                        temperature: r.get(2),
                        threshold: r.get(3),
                        timestamp: rfc3339(r.get(4)),
                    })
                    .collect())
            }
            Self::Sqlite(path) => {
                on_file(path, move |db| {
                    let mut statement = db.prepare(
                        "SELECT sensor_id, seq, temperature, threshold, event_time \
                         FROM temperature_alerts WHERE ?3 IS NULL OR sensor_id = ?3 \
                         ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC \
                         LIMIT ?1 OFFSET ?2",
                    )?;
                    statement
                        .query_map(params![limit, offset, sensor], |r| {
                            Ok(AlertView {
                                sensor_id: r.get(0)?,
                                seq: r.get(1)?,
                                temperature: r.get(2)?,
                                threshold: r.get(3)?,
                                timestamp: rfc3339(time_of(r.get(4)?)),
                            })
                        })?
                        .collect()
                })
                .await
            }
        }
    }

    /// The models' anomalies, newest event time first; of one sensor if `sensor` is given.
    pub async fn anomalies(
        &self,
        limit: i64,
        offset: i64,
        sensor: Option<String>,
    ) -> anyhow::Result<Vec<AnomalyView>> {
        const COLUMNS: &str = "SELECT sensor_id, seq, kind, score, temperature, expected, low, \
             high, event_time FROM sensor_anomalies";
        match self {
            Self::Postgres(pool) => {
                let rows = pool
                    .get()
                    .await?
                    .query(
                        &format!(
                            "{COLUMNS} WHERE $3::text IS NULL OR sensor_id = $3 \
                             ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC \
                             LIMIT $1 OFFSET $2"
                        ),
                        &[&limit, &offset, &sensor],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| AnomalyView {
                        sensor_id: r.get(0),
                        seq: r.get(1),
                        kind: r.get(2),
                        score: r.get(3),
                        temperature: r.get(4),
                        expected: r.get(5),
                        low: r.get(6),
                        high: r.get(7),
                        timestamp: rfc3339(r.get(8)),
                    })
                    .collect())
            }
            Self::Sqlite(path) => {
                on_file(path, move |db| {
                    let mut statement = db.prepare(&format!(
                        "{COLUMNS} WHERE ?3 IS NULL OR sensor_id = ?3 \
                         ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC \
                         LIMIT ?1 OFFSET ?2"
                    ))?;
                    statement
                        .query_map(params![limit, offset, sensor], |r| {
                            Ok(AnomalyView {
                                sensor_id: r.get(0)?,
                                seq: r.get(1)?,
                                kind: r.get(2)?,
                                score: r.get(3)?,
                                temperature: r.get(4)?,
                                expected: r.get(5)?,
                                low: r.get(6)?,
                                high: r.get(7)?,
                                timestamp: rfc3339(time_of(r.get(8)?)),
                            })
                        })?
                        .collect()
                })
                .await
            }
        }
    }

    /// One sensor's predictions, newest first.
    pub async fn predictions(
        &self,
        sensor_id: &str,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Vec<PredictionView>> {
        const QUERY: &str = "SELECT seq, expected, low, high, event_time, temperature \
             FROM sensor_predictions \
             WHERE sensor_id = $1 ORDER BY kafka_offset DESC LIMIT $2 OFFSET $3";
        match self {
            Self::Postgres(pool) => {
                let rows = pool
                    .get()
                    .await?
                    .query(QUERY, &[&sensor_id, &limit, &offset])
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| PredictionView {
                        seq: r.get(0),
                        expected: r.get(1),
                        low: r.get(2),
                        high: r.get(3),
                        timestamp: rfc3339(r.get(4)),
                        temperature: r.get(5),
                    })
                    .collect())
            }
            Self::Sqlite(path) => {
                let sensor_id = sensor_id.to_owned();
                on_file(path, move |db| {
                    // SQLite takes PostgreSQL's $n parameters as they are.
                    let mut statement = db.prepare(QUERY)?;
                    statement
                        .query_map(params![sensor_id, limit, offset], |r| {
                            Ok(PredictionView {
                                seq: r.get(0)?,
                                expected: r.get(1)?,
                                low: r.get(2)?,
                                high: r.get(3)?,
                                timestamp: rfc3339(time_of(r.get(4)?)),
                                temperature: r.get(5)?,
                            })
                        })?
                        .collect()
                })
                .await
            }
        }
    }

    /// The latest windows with counts, newest first.
    pub async fn ip_windows(&self, limit: i64, offset: i64) -> anyhow::Result<Vec<WindowView>> {
        // DISTINCT over the (window_start DESC, ...) index stops after `limit + offset`
        // windows, in both databases.
        match self {
            Self::Postgres(pool) => {
                let rows = pool
                    .get()
                    .await?
                    .query(
                        "WITH w AS (SELECT DISTINCT window_start FROM ip_counts \
                                    ORDER BY window_start DESC LIMIT $1 OFFSET $2) \
                         SELECT w.window_start, max(c.window_end), count(*), sum(c.count)::int8 \
                         FROM w JOIN ip_counts c ON c.window_start = w.window_start \
                         GROUP BY w.window_start ORDER BY w.window_start DESC",
                        &[&limit, &offset],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| WindowView {
                        window_start: rfc3339(r.get(0)),
                        window_end: rfc3339(r.get(1)),
                        addresses: r.get(2),
                        requests: r.get(3),
                    })
                    .collect())
            }
            Self::Sqlite(path) => {
                on_file(path, move |db| {
                    let mut statement = db.prepare(
                        "WITH w AS (SELECT DISTINCT window_start FROM ip_counts \
                                    ORDER BY window_start DESC LIMIT ?1 OFFSET ?2) \
                         SELECT w.window_start, max(c.window_end), count(*), sum(c.count) \
                         FROM w JOIN ip_counts c ON c.window_start = w.window_start \
                         GROUP BY w.window_start ORDER BY w.window_start DESC",
                    )?;
                    statement
                        .query_map(params![limit, offset], |r| {
                            Ok(WindowView {
                                window_start: rfc3339(time_of(r.get(0)?)),
                                window_end: rfc3339(time_of(r.get(1)?)),
                                addresses: r.get(2)?,
                                requests: r.get(3)?,
                            })
                        })?
                        .collect()
                })
                .await
            }
        }
    }

    /// The start of the newest window with counts.
    pub async fn latest_window(&self) -> anyhow::Result<Option<OffsetDateTime>> {
        match self {
            Self::Postgres(pool) => Ok(pool
                .get()
                .await?
                .query_one("SELECT max(window_start) FROM ip_counts", &[])
                .await?
                .get(0)),
            Self::Sqlite(path) => {
                on_file(path, |db| {
                    let latest: Option<i64> =
                        db.query_row("SELECT max(window_start) FROM ip_counts", [], |r| r.get(0))?;
                    Ok(latest.map(time_of))
                })
                .await
            }
        }
    }

    /// The `n` addresses with the most requests in the window starting at `window` (ties by
    /// address, IPv4 first), and the window's end; `None` if it has no counts.
    pub async fn ip_top(
        &self,
        window: OffsetDateTime,
        n: i64,
    ) -> anyhow::Result<Option<(OffsetDateTime, Vec<Talker>)>> {
        let rows: Vec<(IpAddr, i64, OffsetDateTime)> = match self {
            Self::Postgres(pool) => pool
                .get()
                .await?
                .query(
                    "SELECT ip, count, window_end FROM ip_counts WHERE window_start = $1 \
                     ORDER BY count DESC, ip LIMIT $2",
                    &[&window, &n],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
            Self::Sqlite(path) => {
                let start = super::sqlite::micros(window);
                on_file(path, move |db| {
                    let mut statement = db.prepare(
                        "SELECT ip, count, window_end FROM ip_counts WHERE window_start = ?1 \
                         ORDER BY count DESC, ip LIMIT ?2",
                    )?;
                    statement
                        .query_map(params![start, n], |r| {
                            Ok((address_column(r, 0)?, r.get(1)?, time_of(r.get(2)?)))
                        })?
                        .collect()
                })
                .await?
            }
        };
        let Some(end) = rows.first().map(|r| r.2) else {
            return Ok(None);
        };
        let top = rows
            .into_iter()
            .map(|(ip, count, _)| Talker {
                ip: ip.to_string(),
                count,
            })
            .collect();
        Ok(Some((end, top)))
    }

    /// The `n` addresses with the most requests summed over the latest `windows` windows.
    pub async fn ip_top_recent(&self, windows: i64, n: i64) -> anyhow::Result<Vec<Talker>> {
        let rows: Vec<(IpAddr, i64)> = match self {
            Self::Postgres(pool) => pool
                .get()
                .await?
                .query(
                    "WITH w AS (SELECT DISTINCT window_start FROM ip_counts \
                                ORDER BY window_start DESC LIMIT $1) \
                     SELECT ip, sum(count)::int8 AS requests FROM ip_counts \
                     WHERE window_start IN (SELECT window_start FROM w) \
                     GROUP BY ip ORDER BY requests DESC, ip LIMIT $2",
                    &[&windows, &n],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Self::Sqlite(path) => {
                on_file(path, move |db| {
                    let mut statement = db.prepare(
                        "WITH w AS (SELECT DISTINCT window_start FROM ip_counts \
                                    ORDER BY window_start DESC LIMIT ?1) \
                         SELECT ip, sum(count) AS requests FROM ip_counts \
                         WHERE window_start IN (SELECT window_start FROM w) \
                         GROUP BY ip ORDER BY requests DESC, ip LIMIT ?2",
                    )?;
                    statement
                        .query_map(params![windows, n], |r| {
                            Ok((address_column(r, 0)?, r.get(1)?))
                        })?
                        .collect()
                })
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(ip, count)| Talker {
                ip: ip.to_string(),
                count,
            })
            .collect())
    }

    /// SQLite only: the `sink_commits` announcements after `id` (the JSON payload PostgreSQL's
    /// NOTIFY would carry), oldest first, with their ids; `after: None` gives the newest id and
    /// no announcement.
    pub async fn announcements(
        path: &Path,
        after: Option<i64>,
    ) -> anyhow::Result<(i64, Vec<String>)> {
        on_file(path, move |db| {
            let Some(after) = after else {
                let newest =
                    db.query_row("SELECT coalesce(max(id), 0) FROM sink_commits", [], |r| {
                        r.get(0)
                    })?;
                return Ok((newest, Vec::new()));
            };
            let mut statement = db.prepare(
                "SELECT id, alerts, averages, ip_counts FROM sink_commits \
                 WHERE id > ?1 ORDER BY id",
            )?;
            let mut last = after;
            let payloads = statement
                .query_map([after], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        format!(
                            r#"{{"alerts":{},"averages":{},"ip_counts":{}}}"#,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?
                        ),
                    ))
                })?
                .map(|row| {
                    row.map(|(id, payload)| {
                        last = last.max(id);
                        payload
                    })
                })
                .collect::<rusqlite::Result<_>>()?;
            Ok((last, payloads))
        })
        .await
    }
}
