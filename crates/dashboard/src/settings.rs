//! The dashboard's settings: `[dashboard]`, plus the shared `[telemetry]`.

use clap::Parser;
use pipeline_runtime::cli::CommonArgs;
use pipeline_runtime::secret::Secret;
use pipeline_runtime::settings::{Sections, SettingsError, TelemetrySettings};
use serde::Deserialize;

/// Everything the dashboard reads from a configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// The dashboard itself.
    pub dashboard: DashboardSettings,
}

impl Sections for Config {
    const OWN: &'static [&'static str] = &["telemetry", "dashboard"];
}

/// The `[dashboard]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardSettings {
    /// The sink's database: `sqlite:///path/file.db` or a PostgreSQL connection string (never
    /// logged).
    pub database_url: Secret,
    /// Address of the page, the API, `/metrics`, `/healthz` and `/readyz`.
    pub http_address: String,
    /// The channel pg-sink notifies when rows commit; empty: no live updates.
    pub notify_channel: String,
    /// PostgreSQL connections at most (SQLite: a read-only connection per request).
    pub max_connections: usize,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            database_url: Secret::new("sqlite://results.db"),
            http_address: "0.0.0.0:8080".to_owned(),
            notify_channel: "pipeline_results".to_owned(),
            max_connections: 8,
        }
    }
}

/// Serves the pipelines' results from their SQLite file or PostgreSQL: a JSON API (/api/...), live updates as
/// server-sent events (/api/events) and a web page (/).
///
/// Settings come from, in increasing priority: built-in defaults, the file given by
/// --config, PIPELINE__* environment variables (PIPELINE__DASHBOARD__DATABASE_URL=postgres://...),
/// and these flags.
#[derive(Debug, Parser, Default)]
#[command(name = "dashboard", version)]
pub struct Cli {
    /// The flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// sqlite:///path/to/results.db, or a PostgreSQL connection string (prefer
    /// PIPELINE__DASHBOARD__DATABASE_URL for one with a password). [default: sqlite://results.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Address of the page, the API and the operator endpoints. [default: 0.0.0.0:8080]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_address: Option<String>,
}

impl Cli {
    /// Loads and checks the settings: defaults, file, environment, then these flags.
    pub fn load(&self) -> Result<Config, SettingsError> {
        let overrides = self
            .common
            .overrides()
            .set("dashboard.database_url", self.database_url.clone())
            .set("dashboard.http_address", self.http_address.clone());
        let config: Config = self.common.load(overrides)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let d = &self.dashboard;
        pg_sink::store::Location::parse(d.database_url.expose())
            .map_err(|e| SettingsError::invalid("dashboard.database_url", e))?;
        d.http_address
            .parse::<std::net::SocketAddr>()
            .map_err(|e| {
                SettingsError::invalid("dashboard.http_address", format!("not HOST:PORT: {e}"))
            })?;
        if d.max_connections == 0 {
            return Err(SettingsError::invalid(
                "dashboard.max_connections",
                "must be > 0",
            ));
        }
        if !d
            .notify_channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(SettingsError::invalid(
                "dashboard.notify_channel",
                "letters, digits and _ only",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key_and_the_shared_file_states_the_defaults() {
        for (flag, key) in [
            (
                "--database-url=postgres://u:secret@h:x/db",
                "dashboard.database_url",
            ),
            ("--http-address=8080", "dashboard.http_address"),
        ] {
            let error = Cli::parse_from(["dashboard", flag])
                .load()
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("configuration key `{key}`")),
                "{flag}: {error}"
            );
            assert!(!error.contains("secret"), "{error}");
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml");
        let from_file = pipeline_runtime::settings::load::<Config>(
            Some(std::path::Path::new(path)),
            Default::default(),
        )
        .expect("config/default.toml loads");
        assert_eq!(from_file.dashboard, DashboardSettings::default());
    }
}
