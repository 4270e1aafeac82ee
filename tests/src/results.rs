//! The results store a test writes to: a fresh PostgreSQL database on the shared server, or a
//! fresh SQLite file in a temporary directory; the same questions asked of both (what the
//! tables hold, where each partition stands), so that a test runs against each with the same
//! assertions.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use pg_sink::store::sqlite::{address_of, time_of};
use sensor_contract::Event;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::kafka_io::Record;
use crate::postgres::{connect, fresh_database};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PostgreSQL (the shared server, `POSTGRES_URL`).
    Postgres,
    /// An SQLite file.
    Sqlite,
}

/// `temperature_alerts`: partition, offset, sensor, seq, temperature, threshold, event time.
pub type AlertRow = (i32, i64, String, i64, f64, f64, OffsetDateTime);
/// `temperature_averages`: partition, offset, sensor, seq, average, window size, event time.
pub type AverageRow = (i32, i64, String, i64, f64, i32, OffsetDateTime);
/// `ip_counts`: window start (ms), address, count, partition, offset.
pub type CountRow = (i64, String, i64, i32, i64);
/// `sensors`: id, last seq, last average, last alert temperature, alerts, averages.
pub type SensorRow = (String, i64, Option<f64>, Option<f64>, i64, i64);

/// The row tables, each in (partition, offset) order; sensors by id.
#[derive(Debug, Default, PartialEq)]
pub struct Tables {
    pub alerts: Vec<AlertRow>,
    pub averages: Vec<AverageRow>,
    pub counts: Vec<CountRow>,
    pub sensors: Vec<SensorRow>,
}

impl Tables {
    /// The rows pg-sink must write for these records of the events and ip-counts topics
    /// (undecodable records are dead letters, not rows).
    pub fn from_topics(events: &[Record], counts: &[Record]) -> Self {
        let mut t = Tables::default();
        let mut sensors: BTreeMap<String, SensorRow> = BTreeMap::new();
        for r in events {
            let Ok(event) =
                serde_json::from_slice::<Event<'_>>(r.payload.as_deref().unwrap_or(&[]))
            else {
                continue;
            };
            let time = |ts: &str| OffsetDateTime::parse(ts, &Rfc3339).unwrap();
            let s = sensors
                .entry(event.sensor_id().to_owned())
                .or_insert_with(|| (event.sensor_id().to_owned(), 0, None, None, 0, 0));
            s.1 = event.seq() as i64;
            match event {
                Event::Alert(a) => {
                    s.3 = Some(a.temperature);
                    s.4 += 1;
                    t.alerts.push((
                        r.partition,
                        r.offset,
                        a.sensor_id.to_string(),
                        a.seq as i64,
                        a.temperature,
                        a.threshold,
                        time(&a.timestamp),
                    ));
                }
                Event::Average(a) => {
                    s.2 = Some(a.average);
                    s.5 += 1;
                    t.averages.push((
                        r.partition,
                        r.offset,
                        a.sensor_id.to_string(),
                        a.seq as i64,
                        a.average,
                        a.window_size as i32,
                        time(&a.timestamp),
                    ));
                }
            }
        }
        for r in counts {
            let Ok(c) =
                serde_json::from_slice::<ip_count::Count>(r.payload.as_deref().unwrap_or(&[]))
            else {
                continue;
            };
            let Ok(ip) = c.ip.parse::<IpAddr>() else {
                continue;
            };
            t.counts.push((
                c.window_start_ms,
                ip.to_string(),
                c.count as i64,
                r.partition,
                r.offset,
            ));
        }
        t.sensors = sensors.into_values().collect();
        t.counts.sort_by_key(|c| (c.3, c.4));
        t
    }

    /// Asserts that `actual` holds exactly the rows of `self`, table by table.
    pub fn assert_equal(&self, actual: &Tables) {
        assert_eq!(self.alerts.len(), actual.alerts.len(), "alert rows");
        assert_eq!(self.averages.len(), actual.averages.len(), "average rows");
        assert_eq!(self.counts.len(), actual.counts.len(), "count rows");
        assert!(self.alerts == actual.alerts, "alert rows differ");
        assert!(self.averages == actual.averages, "average rows differ");
        assert!(self.counts == actual.counts, "count rows differ");
        assert_eq!(self.sensors, actual.sensors, "sensors");
    }
}

/// A fresh results database of a test's own.
pub struct ResultsDb {
    kind: Kind,
    url: String,
    file: Option<(tempfile::TempDir, PathBuf)>,
}

const ALERTS: &str = "SELECT kafka_partition, kafka_offset, sensor_id, seq, temperature, \
    threshold, event_time FROM temperature_alerts ORDER BY kafka_partition, kafka_offset";
const AVERAGES: &str = "SELECT kafka_partition, kafka_offset, sensor_id, seq, average, \
    window_size, event_time FROM temperature_averages ORDER BY kafka_partition, kafka_offset";
const SENSORS: &str = "SELECT sensor_id, last_seq, last_average, last_alert_temperature, \
    alert_count, average_count FROM sensors ORDER BY sensor_id";
const ROW_TOTAL: &str = "SELECT (SELECT count(*) FROM temperature_alerts) + \
    (SELECT count(*) FROM temperature_averages) + (SELECT count(*) FROM ip_counts)";
const POSITIONS: &str =
    "SELECT topic, kafka_partition, next_offset FROM consumed_offsets WHERE consumer_group = ";

impl ResultsDb {
    /// A new, empty database named after `name` (a PostgreSQL database, or a file in a
    /// directory of its own).
    pub fn fresh(kind: Kind, name: &str) -> Self {
        match kind {
            Kind::Postgres => Self {
                kind,
                url: fresh_database(name),
                file: None,
            },
            Kind::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix(name)
                    .tempdir()
                    .expect("a temporary directory");
                let path = dir.path().join("results.db");
                Self {
                    kind,
                    url: format!("sqlite://{}", path.display()),
                    file: Some((dir, path)),
                }
            }
        }
    }

    /// A PostgreSQL database that exists (a private server's).
    pub fn existing_postgres(url: &str) -> Self {
        Self {
            kind: Kind::Postgres,
            url: url.to_owned(),
            file: None,
        }
    }

    /// Which database it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The connection string the services take.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn sqlite(&self) -> Option<rusqlite::Connection> {
        let (_, path) = self.file.as_ref()?;
        let connection =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        Some(connection)
    }

    /// Rows in the three row tables; 0 before the schema exists.
    pub fn row_total(&self) -> i64 {
        match self.sqlite() {
            Some(db) => db.query_row(ROW_TOTAL, [], |r| r.get(0)).unwrap_or(0),
            None => connect(&self.url)
                .query_one(ROW_TOTAL, &[])
                .map(|r| r.get(0))
                .unwrap_or(0),
        }
    }

    /// Everything the row tables hold.
    pub fn tables(&self) -> Tables {
        let Some(db) = self.sqlite() else {
            let mut db = connect(&self.url);
            let mut rows = |sql: &str| db.query(sql, &[]).unwrap();
            return Tables {
                alerts: rows(ALERTS)
                    .iter()
                    .map(|r| {
                        (
                            r.get(0),
                            r.get(1),
                            r.get(2),
                            r.get(3),
                            r.get(4),
                            r.get(5),
                            r.get(6),
                        )
                    })
                    .collect(),
                averages: rows(AVERAGES)
                    .iter()
                    .map(|r| {
                        (
                            r.get(0),
                            r.get(1),
                            r.get(2),
                            r.get(3),
                            r.get(4),
                            r.get(5),
                            r.get(6),
                        )
                    })
                    .collect(),
                counts: rows(
                    "SELECT (extract(epoch FROM window_start) * 1000)::int8, host(ip), count, \
                     kafka_partition, kafka_offset FROM ip_counts \
                     ORDER BY kafka_partition, kafka_offset",
                )
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect(),
                sensors: rows(SENSORS)
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                    .collect(),
            };
        };
        fn all<T>(
            db: &rusqlite::Connection,
            sql: &str,
            row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        ) -> Vec<T> {
            db.prepare(sql)
                .unwrap()
                .query_map([], row)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        }
        Tables {
            alerts: all(&db, ALERTS, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    time_of(r.get(6)?),
                ))
            }),
            averages: all(&db, AVERAGES, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    time_of(r.get(6)?),
                ))
            }),
            counts: all(
                &db,
                "SELECT window_start, ip, count, kafka_partition, kafka_offset FROM ip_counts \
                 ORDER BY kafka_partition, kafka_offset",
                |r| {
                    let micros: i64 = r.get(0)?;
                    let ip: Vec<u8> = r.get(1)?;
                    Ok((
                        micros / 1_000,
                        address_of(&ip).expect("a stored address").to_string(),
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                },
            ),
            sensors: all(&db, SENSORS, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            }),
        }
    }

    /// Where each (topic, partition) of `group` stands: the next offset to write.
    pub fn positions(&self, group: &str) -> BTreeMap<(String, i32), i64> {
        match self.sqlite() {
            Some(db) => db
                .prepare(&format!("{POSITIONS}?1"))
                .unwrap()
                .query_map([group], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap(),
            None => connect(&self.url)
                .query(&format!("{POSITIONS}$1"), &[&group])
                .unwrap()
                .iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect(),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Postgres => "PostgreSQL",
            Kind::Sqlite => "SQLite",
        })
    }
}
