//! The sink's settings: `[pg_sink]`, plus the shared `[kafka]` and `[telemetry]`.

use std::time::Duration;

use clap::Parser;
use pipeline_runtime::cli::CommonArgs;
use pipeline_runtime::secret::Secret;
use pipeline_runtime::settings::{KafkaSettings, Sections, SettingsError, TelemetrySettings};
use serde::Deserialize;
use serde_with::{DurationMilliSeconds, DurationSecondsWithFrac, serde_as};

/// Everything the sink reads from a configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka.
    pub kafka: KafkaSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// The sink itself.
    pub pg_sink: SinkSettings,
}

impl Sections for Config {
    const OWN: &'static [&'static str] = &["kafka", "telemetry", "pg_sink"];
}

/// The `[pg_sink]` section.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// Where the results go: `sqlite:///path/file.db` or a PostgreSQL connection string (URL
    /// or `key=value` form, which may hold the password, so it is never logged).
    pub database_url: Secret,
    /// Consumer group; also the group the database's offsets table is kept under.
    pub group_id: String,
    /// The temperature pipeline's output; empty: not consumed.
    pub events_topic: String,
    /// The IP-count job's output; empty: not consumed.
    pub ip_counts_topic: String,
    /// The sensors' models' anomalies and predictions (`processor.anomalies.topic`); empty
    /// (the default, as the model is off by default): not consumed.
    pub anomalies_topic: String,
    /// Records that cannot become rows, with the reason in headers.
    pub dlq_topic: String,
    /// Rows written per transaction, at most.
    pub batch_max_records: usize,
    /// How long a batch waits for more records before it is written (ms).
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub batch_linger_ms: Duration,
    /// Channel notified (PostgreSQL NOTIFY) in each transaction that wrote rows; the dashboard
    /// listens on it. Empty: no notification.
    pub notify_channel: String,
    /// On SIGTERM: time to write the batch in hand and stop (seconds).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub shutdown_grace_secs: Duration,
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub http_address: String,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            database_url: Secret::new("sqlite://results.db"),
            group_id: "pg-sink".to_owned(),
            events_topic: "temperature-events".to_owned(),
            ip_counts_topic: "ip-counts".to_owned(),
            anomalies_topic: String::new(),
            dlq_topic: "pg-sink-dlq".to_owned(),
            batch_max_records: 5_000,
            batch_linger_ms: Duration::from_millis(100),
            notify_channel: "pipeline_results".to_owned(),
            shutdown_grace_secs: Duration::from_secs(20),
            http_address: "0.0.0.0:9104".to_owned(),
        }
    }
}

/// Writes the pipelines' results (temperature-events, ip-counts) to an SQLite file or to
/// PostgreSQL: every batch is one database transaction holding the rows and the consumed offsets, so each record becomes
/// exactly one row across crashes, restarts and rebalances.
///
/// Settings come from, in increasing priority: built-in defaults, the file given by
/// --config, PIPELINE__* environment variables (PIPELINE__PG_SINK__DATABASE_URL=postgres://...,
/// PIPELINE__KAFKA__BROKERS=kafka:9092), and these flags.
#[derive(Debug, Parser, Default)]
#[command(name = "pg-sink", version)]
pub struct Cli {
    /// The flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// sqlite:///path/to/results.db, or a PostgreSQL connection string (prefer
    /// PIPELINE__PG_SINK__DATABASE_URL for one with a password: ps does not show it).
    /// [default: sqlite://results.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Consumer group (and the key of the offsets kept in the database). [default: pg-sink]
    #[arg(long)]
    pub group_id: Option<String>,
    /// Events topic to write; "" for none. [default: temperature-events]
    #[arg(long)]
    pub events_topic: Option<String>,
    /// IP-counts topic to write; "" for none. [default: ip-counts]
    #[arg(long)]
    pub ip_counts_topic: Option<String>,
    /// Anomalies topic to write; "" for none. [default: ""]
    #[arg(long)]
    pub anomalies_topic: Option<String>,
    /// Dead-letter topic. [default: pg-sink-dlq]
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Records per transaction at most. [default: 5000]
    #[arg(long, value_name = "N")]
    pub batch_max_records: Option<u64>,
    /// Milliseconds a batch waits for more records. [default: 100]
    #[arg(long, value_name = "MS")]
    pub batch_linger_ms: Option<u64>,
    /// Address of /metrics, /healthz and /readyz; "" for none. [default: 0.0.0.0:9104]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_address: Option<String>,
}

impl Cli {
    /// Loads and checks the settings: defaults, file, environment, then these flags.
    pub fn load(&self) -> Result<Config, SettingsError> {
        let overrides = self
            .common
            .overrides()
            .set("pg_sink.database_url", self.database_url.clone())
            .set("pg_sink.group_id", self.group_id.clone())
            .set("pg_sink.events_topic", self.events_topic.clone())
            .set("pg_sink.ip_counts_topic", self.ip_counts_topic.clone())
            .set("pg_sink.anomalies_topic", self.anomalies_topic.clone())
            .set("pg_sink.dlq_topic", self.dlq_topic.clone())
            .set("pg_sink.batch_max_records", self.batch_max_records)
            .set("pg_sink.batch_linger_ms", self.batch_linger_ms)
            .set("pg_sink.http_address", self.http_address.clone());
        let config: Config = self.common.load(overrides)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.kafka.validate()?;
        let s = &self.pg_sink;
        // The message never quotes the string, so no password leaks here.
        crate::store::Location::parse(s.database_url.expose())
            .map_err(|e| SettingsError::invalid("pg_sink.database_url", e))?;
        for (key, value) in [
            ("pg_sink.group_id", &s.group_id),
            ("pg_sink.dlq_topic", &s.dlq_topic),
        ] {
            if value.is_empty() {
                return Err(SettingsError::invalid(key, "must not be empty"));
            }
        }
        if s.events_topic.is_empty() && s.ip_counts_topic.is_empty() {
            return Err(SettingsError::invalid(
                "pg_sink.events_topic",
                "nothing to consume: set pg_sink.events_topic or pg_sink.ip_counts_topic",
            ));
        }
        if s.events_topic == s.ip_counts_topic {
            return Err(SettingsError::invalid(
                "pg_sink.ip_counts_topic",
                "must differ from pg_sink.events_topic",
            ));
        }
        if !s.anomalies_topic.is_empty()
            && [&s.events_topic, &s.ip_counts_topic].contains(&&s.anomalies_topic)
        {
            return Err(SettingsError::invalid(
                "pg_sink.anomalies_topic",
                "must differ from pg_sink.events_topic and pg_sink.ip_counts_topic",
            ));
        }
        if s.batch_max_records == 0 || s.batch_max_records > 100_000 {
            return Err(SettingsError::invalid(
                "pg_sink.batch_max_records",
                "must be between 1 and 100000",
            ));
        }
        if !s
            .notify_channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(SettingsError::invalid(
                "pg_sink.notify_channel",
                "letters, digits and _ only",
            ));
        }
        Ok(())
    }

    /// The topics consumed.
    pub fn topics(&self) -> Vec<&str> {
        [
            &self.pg_sink.events_topic,
            &self.pg_sink.ip_counts_topic,
            &self.pg_sink.anomalies_topic,
        ]
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(String::as_str)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        for (flag, key) in [
            (
                "--database-url=postgres://x:y@h:notaport/db",
                "pg_sink.database_url",
            ),
            ("--database-url=sqlite://", "pg_sink.database_url"),
            ("--group-id=", "pg_sink.group_id"),
            ("--anomalies-topic=ip-counts", "pg_sink.anomalies_topic"),
            ("--batch-max-records=0", "pg_sink.batch_max_records"),
            (
                "--ip-counts-topic=temperature-events",
                "pg_sink.ip_counts_topic",
            ),
        ] {
            let error = Cli::parse_from(["pg-sink", flag])
                .load()
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("configuration key `{key}`")),
                "{flag}: {error}"
            );
            assert!(!error.contains("x:y"), "the password shows: {error}");
        }
    }

    #[test]
    fn the_shared_file_states_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml");
        let from_file = pipeline_runtime::settings::load::<Config>(
            Some(std::path::Path::new(path)),
            Default::default(),
        )
        .expect("config/default.toml loads");
        assert_eq!(from_file.pg_sink, SinkSettings::default());
    }
}
