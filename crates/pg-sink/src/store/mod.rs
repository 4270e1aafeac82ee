//! The results store: one interface, two databases.
//!
//! [`Store`] is what the sink writes through and [`read::Reader`] what the dashboard reads
//! through. Each is **PostgreSQL** ([`postgres`]: production, several sinks and dashboards on
//! one server) or **SQLite** ([`sqlite`]: embedded, one file, nothing to install), chosen by
//! the connection string alone ([`Location::parse`]): `postgres://…` or `sqlite:///path/file.db`.
//!
//! The guarantee is the same on both, and the part that makes it lives here, not in the
//! backends: a batch is one database transaction that first reads the stored positions of its
//! partitions with the write lock held (`SELECT … FOR UPDATE` in PostgreSQL, `BEGIN IMMEDIATE`
//! in SQLite, which takes the file's write lock at once), then [`take_new`] keeps the records
//! at or past them, and the rows and the new positions commit together. Two sinks holding a
//! partition for a moment serialize on that lock; a sink killed between the commit and Kafka's
//! offset commit finds the positions in the database when it comes back.
//!
//! Migrations: `migrations/postgres/` and `migrations/sqlite/`, the same versions with each
//! database's types, embedded in the binary and applied at start by refinery (under
//! PostgreSQL's advisory lock, or a lock file beside the SQLite file), whichever of the sink
//! and the dashboard starts first.

pub mod postgres;
pub mod read;
pub mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pipeline_runtime::secret::Secret;

use crate::rows::{Row, Rows};

/// Where the results live, from a connection string.
#[derive(Debug, Clone)]
pub enum Location {
    /// A PostgreSQL server (`postgres://…`, `postgresql://…` or `key=value …`).
    Postgres(Box<tokio_postgres::Config>),
    /// An SQLite file (`sqlite:///absolute/path.db`, `sqlite://relative/path.db`), created if
    /// it does not exist; its directory must.
    Sqlite(PathBuf),
}

impl Location {
    /// Reads a connection string. The error never quotes it (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(
                    "an SQLite connection string needs a file: sqlite:///path/to/results.db"
                        .to_owned(),
                );
            }
            if path.contains('?') {
                return Err("an SQLite connection string takes no parameters (`?…`): the store sets WAL mode and its own timeouts".to_owned());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        url.parse::<tokio_postgres::Config>()
            .map(|config| Self::Postgres(Box::new(config)))
            .map_err(|e| {
                format!(
                    "neither a PostgreSQL connection string (postgres://user:password@host/db) \
                     nor an SQLite one (sqlite:///path/to/results.db): {e}"
                )
            })
    }
}

/// Where a connection string points, without the password: for logs.
pub fn describe(url: &Secret) -> String {
    match Location::parse(url.expose()) {
        Ok(Location::Sqlite(path)) => format!("SQLite file {}", path.display()),
        Ok(Location::Postgres(config)) => postgres::describe(&config),
        Err(_) => "(unparsable connection string)".to_owned(),
    }
}

/// One topic's records in a batch: per partition, in offset order, each with its row (`None`
/// for a dead-lettered record, which still moves the partition's position).
pub type Partitions = BTreeMap<i32, Vec<(i64, Option<Row>)>>;

/// What a transaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows inserted into the three row tables.
    pub rows: u64,
    /// Counts already in `ip_counts` for their (window, address) (an upstream duplicate, only
    /// possible when the job runs at least once): not inserted.
    pub duplicate_counts: u64,
    /// Records the database already held (read again after a crash or a rebalance): skipped.
    pub skipped: u64,
}

/// The new positions of one topic's partitions after a batch: partitions and next offsets,
/// side by side.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moves {
    /// Partitions whose position moves.
    pub partitions: Vec<i32>,
    /// Their next offsets.
    pub next: Vec<i64>,
}

/// The heart of the guarantee: given one topic's records in a batch and the positions the
/// database holds (read inside the transaction, under its write lock), adds the rows of the
/// records at or past them to `rows` and returns how many were skipped (written before) and
/// the positions that move.
pub fn take_new(
    partitions: &Partitions,
    stored: &BTreeMap<i32, i64>,
    rows: &mut Rows,
) -> (u64, Moves) {
    let mut skipped = 0;
    let mut moves = Moves::default();
    for (partition, list) in partitions {
        let from = stored.get(partition).copied().unwrap_or(0);
        let mut next = from;
        skipped += list.iter().filter(|(offset, _)| *offset < from).count() as u64;
        for (offset, row) in list.iter().filter(|(offset, _)| *offset >= from) {
            if let Some(row) = row {
                rows.add(*partition, *offset, row.clone());
            }
            next = offset + 1;
        }
        if next > from {
            moves.partitions.push(*partition);
            moves.next.push(next);
        }
    }
    (skipped, moves)
}

/// What a transaction that wrote rows announces to the dashboards: how many of each it wrote.
pub fn announcement(rows: &Rows, duplicate_counts: u64) -> String {
    format!(
        r#"{{"alerts":{},"averages":{},"ip_counts":{}}}"#,
        rows.alerts.offset.len(),
        rows.averages.offset.len(),
        rows.ip_counts.offset.len() as u64 - duplicate_counts
    )
}

/// A connection to the results store, for the sink's batches.
pub enum Store {
    /// PostgreSQL.
    Postgres(postgres::PgStore),
    /// SQLite.
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Connects (or opens the file) once.
    pub async fn connect(url: &Secret) -> anyhow::Result<Self> {
        match Location::parse(url.expose()).map_err(anyhow::Error::msg)? {
            Location::Postgres(config) => {
                Ok(Self::Postgres(postgres::PgStore::connect(*config).await?))
            }
            Location::Sqlite(path) => Ok(Self::Sqlite(sqlite::SqliteStore::open(path).await?)),
        }
    }

    /// Connects, retrying with back-off (1 s doubling to 30 s) and a log line per attempt,
    /// until it works or `cancel` fires (then `None`).
    pub async fn connect_until(
        url: &Secret,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Option<Self> {
        let mut wait = Duration::from_secs(1);
        loop {
            match Self::connect(url).await {
                Ok(store) => return Some(store),
                Err(error) => {
                    metrics::counter!(crate::metrics::DB_ERRORS).increment(1);
                    tracing::warn!(
                        database = %describe(url),
                        "database unreachable, retrying in {} s: {error:#}",
                        wait.as_secs()
                    );
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return None,
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Whether the connection is gone (then a new one is needed). A file never is.
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Postgres(store) => store.is_closed(),
            Self::Sqlite(_) => false,
        }
    }

    /// Applies the migrations not yet applied; returns the versions applied now.
    pub async fn migrate(&mut self) -> anyhow::Result<Vec<i32>> {
        match self {
            Self::Postgres(store) => store.migrate().await,
            Self::Sqlite(store) => store.migrate().await,
        }
    }

    /// The next offset to write per partition of `topic`, for the partitions the database
    /// knows.
    pub async fn positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> anyhow::Result<BTreeMap<i32, i64>> {
        match self {
            Self::Postgres(store) => store.positions(group, topic, partitions).await,
            Self::Sqlite(store) => store.positions(group, topic, partitions).await,
        }
    }

    /// Writes a batch in one transaction: the rows of the records past the stored positions
    /// (per topic), the sensors they change, the new positions, and an announcement to the
    /// dashboards (on `notify_channel` for PostgreSQL; a `sink_commits` row for SQLite).
    pub async fn write(
        &mut self,
        group: &str,
        notify_channel: &str,
        records: &[(String, Partitions)],
    ) -> anyhow::Result<Written> {
        match self {
            Self::Postgres(store) => store.write(group, notify_channel, records).await,
            Self::Sqlite(store) => store.write(group, records).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::CountRow;

    #[test]
    fn connection_strings_choose_the_database() {
        assert!(matches!(
            Location::parse("sqlite:///var/lib/pipeline/results.db"),
            Ok(Location::Sqlite(p)) if p == std::path::Path::new("/var/lib/pipeline/results.db")
        ));
        assert!(matches!(
            Location::parse("sqlite://results.db"),
            Ok(Location::Sqlite(p)) if p == std::path::Path::new("results.db")
        ));
        assert!(matches!(
            Location::parse("postgres://u:p@db:5432/pipeline"),
            Ok(Location::Postgres(_))
        ));
        assert!(matches!(
            Location::parse("host=db user=u dbname=pipeline"),
            Ok(Location::Postgres(_))
        ));
        for bad in [
            "sqlite://",
            "sqlite:///x.db?mode=ro",
            "postgres://u:secret@h:port/db",
        ] {
            let error = Location::parse(bad).unwrap_err();
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn records_below_the_stored_positions_are_skipped_and_positions_move_past_the_rest() {
        let count = |n| {
            Some(Row::Count(CountRow {
                window_start: time::OffsetDateTime::UNIX_EPOCH,
                window_end: time::OffsetDateTime::UNIX_EPOCH,
                ip: std::net::IpAddr::from([10, 0, 0, n]),
                count: 1,
            }))
        };
        let partitions: Partitions = [
            (0, vec![(5, count(1)), (6, count(2)), (7, None)]),
            (1, vec![(3, count(3))]),
            (2, vec![(9, count(4))]),
        ]
        .into_iter()
        .collect();
        let stored = [(0, 6), (1, 4)].into_iter().collect();
        let mut rows = Rows::default();
        let (skipped, moves) = take_new(&partitions, &stored, &mut rows);
        assert_eq!(skipped, 2);
        assert_eq!(rows.ip_counts.offset, [6, 9]);
        assert_eq!(rows.ip_counts.partition, [0, 2]);
        assert_eq!(
            moves,
            Moves {
                partitions: vec![0, 2],
                next: vec![8, 10]
            }
        );
    }
}
