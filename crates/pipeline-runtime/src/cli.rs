//! The command-line flags every service shares, and how they become settings overrides.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::settings::{self, Overrides, SettingsError};

/// Flags of every service: where the settings file is, the brokers, and where to report the
/// HTTP endpoints' address. Flattened into each service's own `clap` parser.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// TOML configuration file (see config/default.toml).
    #[arg(long, env = "PIPELINE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers, host:port[,host:port...]. [default: localhost:9092]
    #[arg(long, value_name = "LIST")]
    pub brokers: Option<String>,
    /// Once the HTTP endpoints listen, write their address (host:port) to FILE: with an
    /// address on port 0, how a supervisor or a test learns the port picked.
    #[arg(long, value_name = "FILE")]
    pub http_address_file: Option<PathBuf>,
}

impl CommonArgs {
    /// The overrides these flags make, to which a service adds its own.
    pub fn overrides(&self) -> Overrides {
        Overrides::default()
            .set("kafka.brokers", self.brokers.clone())
            .set(
                "telemetry.http_address_file",
                self.http_address_file
                    .as_deref()
                    .map(Path::to_string_lossy)
                    .map(String::from),
            )
    }

    /// Loads settings of type `T`: defaults, the file, the environment, then `overrides`
    /// (which should start from [`CommonArgs::overrides`]).
    pub fn load<T: DeserializeOwned + settings::Sections>(
        &self,
        overrides: Overrides,
    ) -> Result<T, SettingsError> {
        settings::load(self.config.as_deref(), overrides)
    }
}
