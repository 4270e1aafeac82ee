//! SQLite: the results in one file (rusqlite, with SQLite compiled in: nothing to install).
//!
//! Why rusqlite and not sqlx's SQLite driver: the PostgreSQL side is tokio-postgres, refinery
//! migrates both (it has a rusqlite driver, not an sqlx one), and SQLite is a library called in
//! place, so an async driver would only hide the same blocking calls behind a thread of its
//! own. Here each call runs on tokio's blocking pool ([`tokio::task::spawn_blocking`]).
//!
//! The file is in WAL mode: the dashboard reads while the sink writes, and a writer waits for
//! another (`busy_timeout`) instead of failing. `synchronous = NORMAL`: a power cut can lose
//! the last transactions, but rows and positions are in the same transactions, so they are lost
//! together and read again from Kafka; a process crash loses nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use time::OffsetDateTime;

use super::{Partitions, Written, take_new};
use crate::rows::Rows;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// How long a statement waits for another process's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `sink_commits` rows kept for the dashboards.
const ANNOUNCEMENTS_KEPT: i64 = 1_000;

/// Opens `path` for reading and writing, creating the file (not its directory), with the
/// settings every connection needs.
pub fn open(path: &Path, flags: OpenFlags) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        anyhow::bail!(
            "the directory of the SQLite file {} does not exist",
            path.display()
        );
    }
    let connection = Connection::open_with_flags(path, flags)
        .with_context(|| format!("opening the SQLite file {}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .with_context(|| format!("setting WAL mode on {}", path.display()))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}

/// A time as stored: microseconds since the Unix epoch (PostgreSQL's precision).
pub fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// A stored time back.
pub fn time_of(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An address as stored: the family (4 or 6), then its bytes; byte order is inet's order.
pub fn address_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => [&[4u8][..], &v4.octets()].concat(),
        IpAddr::V6(v6) => [&[6u8][..], &v6.octets()].concat(),
    }
}

/// A stored address back.
pub fn address_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes {
        [4, rest @ ..] => <[u8; 4]>::try_from(rest).ok().map(IpAddr::from),
        [6, rest @ ..] => <[u8; 16]>::try_from(rest).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The sink's connection to the file.
pub struct SqliteStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (or creates) the file.
    pub async fn open(path: PathBuf) -> anyhow::Result<Self> {
        let opened = path.clone();
        let connection = tokio::task::spawn_blocking(move || {
            open(
                &opened,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })
        .await??;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection, on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .context("the database call panicked")?
    }

    /// Applies the migrations of `migrations/sqlite/` not yet applied, holding a lock file
    /// beside the database (`<file>-migrate.lock`) so that a sink and a dashboard starting
    /// together apply each once. Returns the versions applied now.
    pub async fn migrate(&mut self) -> anyhow::Result<Vec<i32>> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push("-migrate.lock");
        self.call(move |connection| {
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("opening {}", Path::new(&lock_path).display()))?;
            lock.lock().context("taking the migration lock")?;
            let report = embedded::migrations::runner()
                .run(connection)
                .context("applying the schema migrations")?;
            Ok(report
                .applied_migrations()
                .iter()
                .map(|m| m.version())
                .collect())
        })
        .await
    }

    /// The next offset to write per partition of `topic`, for the partitions the file knows.
    pub async fn positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        let (group, topic, wanted) = (group.to_owned(), topic.to_owned(), partitions.to_vec());
        self.call(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT kafka_partition, next_offset FROM consumed_offsets \
                 WHERE consumer_group = ?1 AND topic = ?2",
            )?;
            let rows = statement.query_map(params![group, topic], |r| {
                Ok((r.get::<_, i32>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut stored = BTreeMap::new();
            for row in rows {
                let (partition, next) = row?;
                if wanted.contains(&partition) {
                    stored.insert(partition, next);
                }
            }
            Ok(stored)
        })
        .await
    }

    /// Writes a batch in one transaction, begun `IMMEDIATE` (the file's write lock taken
    /// before the positions are read): the rows of the records past the stored positions, the
    /// sensors they change, the new positions and a `sink_commits` row.
    pub async fn write(
        &mut self,
        group: &str,
        records: &[(String, Partitions)],
    ) -> anyhow::Result<Written> {
        let (group, records) = (group.to_owned(), records.to_vec());
        self.call(move |connection| write(connection, &group, &records))
            .await
    }
}

fn write(
    connection: &mut Connection,
    group: &str,
    records: &[(String, Partitions)],
) -> anyhow::Result<Written> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rows = Rows::default();
    let mut written = Written::default();
    let mut moves = Vec::new();
    for (topic, partitions) in records {
        let mut stored = BTreeMap::new();
        {
            let mut create = tx.prepare_cached(
                "INSERT INTO consumed_offsets (consumer_group, topic, kafka_partition, next_offset) \
                 VALUES (?1, ?2, ?3, 0) ON CONFLICT DO NOTHING",
            )?;
            let mut read = tx.prepare_cached(
                "SELECT next_offset FROM consumed_offsets \
                 WHERE consumer_group = ?1 AND topic = ?2 AND kafka_partition = ?3",
            )?;
            for partition in partitions.keys() {
                create.execute(params![group, topic, partition])?;
                let next: i64 = read.query_row(params![group, topic, partition], |r| r.get(0))?;
                stored.insert(*partition, next);
            }
        }
        let (skipped, topic_moves) = take_new(partitions, &stored, &mut rows);
        written.skipped += skipped;
        moves.push((topic, topic_moves));
    }

    {
        let a = &rows.alerts;
        let mut insert = tx.prepare_cached(
            "INSERT INTO temperature_alerts (kafka_partition, kafka_offset, sensor_id, seq, \
             temperature, threshold, event_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for i in 0..a.offset.len() {
            written.rows += insert.execute(params![
                a.partition[i],
                a.offset[i],
                a.sensor_id[i],
                a.seq[i],
                a.temperature[i],
                a.threshold[i],
                micros(a.event_time[i]),
            ])? as u64;
        }
        let v = &rows.averages;
        let mut insert = tx.prepare_cached(
            "INSERT INTO temperature_averages (kafka_partition, kafka_offset, sensor_id, seq, \
             average, window_size, event_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for i in 0..v.offset.len() {
            written.rows += insert.execute(params![
                v.partition[i],
                v.offset[i],
                v.sensor_id[i],
                v.seq[i],
                v.average[i],
                v.window_size[i],
                micros(v.event_time[i]),
            ])? as u64;
        }
        let c = &rows.ip_counts;
        let mut insert = tx.prepare_cached(
            "INSERT INTO ip_counts (window_start, window_end, ip, count, kafka_partition, \
             kafka_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (window_start, ip) DO NOTHING",
        )?;
        let mut inserted = 0;
        for i in 0..c.offset.len() {
            inserted += insert.execute(params![
                micros(c.window_start[i]),
                micros(c.window_end[i]),
                address_bytes(c.ip[i]),
                c.count[i],
                c.partition[i],
                c.offset[i],
            ])? as u64;
        }
        written.rows += inserted;
        written.duplicate_counts = c.offset.len() as u64 - inserted;

        let m = &rows.anomalies;
        let mut insert = tx.prepare_cached(
            "INSERT INTO sensor_anomalies (kafka_partition, kafka_offset, sensor_id, seq, kind, \
             score, temperature, expected, low, high, event_time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for i in 0..m.offset.len() {
            written.rows += insert.execute(params![
                m.partition[i],
                m.offset[i],
                m.sensor_id[i],
                m.seq[i],
                m.kind[i],
                m.score[i],
                m.temperature[i],
                m.expected[i],
                m.low[i],
                m.high[i],
                micros(m.event_time[i]),
            ])? as u64;
        }
        let p = &rows.predictions;
        let mut insert = tx.prepare_cached(
            "INSERT INTO sensor_predictions (kafka_partition, kafka_offset, sensor_id, seq, \
             expected, low, high, event_time, temperature) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for i in 0..p.offset.len() {
            written.rows += insert.execute(params![
                p.partition[i],
                p.offset[i],
                p.sensor_id[i],
                p.seq[i],
                p.expected[i],
                p.low[i],
                p.high[i],
                micros(p.event_time[i]),
                p.temperature[i],
            ])? as u64;
        }

        // A sensor's events are all on one partition and batches of a partition are written in
        // offset order, so the batch's last values are the newest.
        let mut upsert = tx.prepare_cached(
            "INSERT INTO sensors AS s (sensor_id, last_seq, last_event_time, last_average, \
             last_average_seq, last_alert_temperature, last_alert_seq, alert_count, average_count) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (sensor_id) DO UPDATE SET \
             last_seq = excluded.last_seq, last_event_time = excluded.last_event_time, \
             last_average = COALESCE(excluded.last_average, s.last_average), \
             last_average_seq = COALESCE(excluded.last_average_seq, s.last_average_seq), \
             last_alert_temperature = COALESCE(excluded.last_alert_temperature, s.last_alert_temperature), \
             last_alert_seq = COALESCE(excluded.last_alert_seq, s.last_alert_seq), \
             alert_count = s.alert_count + excluded.alert_count, \
             average_count = s.average_count + excluded.average_count",
        )?;
        for (id, s) in &rows.sensors {
            upsert.execute(params![
                id,
                s.last_seq,
                s.last_event_time.map(micros),
                s.last_average.map(|(_, a)| a),
                s.last_average.map(|(q, _)| q),
                s.last_alert.map(|(_, t)| t),
                s.last_alert.map(|(q, _)| q),
                s.alerts,
                s.averages,
            ])?;
        }

        let mut advance = tx.prepare_cached(
            "UPDATE consumed_offsets SET next_offset = ?4, \
             updated_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) \
             WHERE consumer_group = ?1 AND topic = ?2 AND kafka_partition = ?3",
        )?;
        for (topic, moved) in &moves {
            for (partition, next) in moved.partitions.iter().zip(&moved.next) {
                advance.execute(params![group, topic, partition, next])?;
            }
        }
        if written.rows > 0 {
            tx.prepare_cached(
                "INSERT INTO sink_commits (alerts, averages, ip_counts) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                rows.alerts.offset.len() as i64,
                rows.averages.offset.len() as i64,
                inserted as i64
            ])?;
            let last = tx.last_insert_rowid();
            tx.prepare_cached("DELETE FROM sink_commits WHERE id <= ?1")?
                .execute(params![last - ANNOUNCEMENTS_KEPT])?;
        }
    }
    tx.commit()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_addresses_sort_as_inet_does_and_come_back() {
        let mut addresses: Vec<IpAddr> = [
            "10.0.0.10",
            "10.0.0.9",
            "::1",
            "2001:db8::7",
            "9.255.255.255",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut stored: Vec<Vec<u8>> = addresses.iter().copied().map(address_bytes).collect();
        addresses.sort();
        stored.sort();
        let back: Vec<IpAddr> = stored.iter().map(|b| address_of(b).unwrap()).collect();
        assert_eq!(back, addresses);
        assert_eq!(address_of(&[5, 1, 2, 3, 4]), None);
    }

    #[test]
    fn stored_times_keep_microseconds() {
        let t = time::macros::datetime!(2026-11-28 10:00:00.123456789 UTC);
        assert_eq!(
            time_of(micros(t)),
            time::macros::datetime!(2026-11-28 10:00:00.123456 UTC)
        );
    }
}
