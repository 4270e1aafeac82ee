//! The simulator's settings: `[simulator]`, plus the shared `[kafka]` and `[telemetry]`.

use std::time::Duration;

use clap::Parser;
use pipeline_runtime::cli::CommonArgs;
use pipeline_runtime::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;
use serde_with::{DurationSecondsWithFrac, serde_as};

use crate::{FaultKind, FaultSettings, Profile};

/// Everything the simulator reads from a configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka.
    pub kafka: KafkaSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// The simulator itself.
    pub simulator: SimulatorSettings,
}

impl pipeline_runtime::settings::Sections for Config {
    const OWN: &'static [&'static str] = &["kafka", "telemetry", "simulator"];
}

/// The `[simulator]` section.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Topic the readings are published to.
    pub topic: String,
    /// Number of sensors, with ids `sensor-0000`, `sensor-0001`, ...
    pub sensors: u32,
    /// Readings per second, all sensors together; 0 sends as fast as the broker takes them.
    pub rate: f64,
    /// Stop after this many readings; 0 runs until stopped.
    pub count: u64,
    /// Seed of the random stream: the same seed gives the same readings in the same order.
    /// Unset picks a random seed and logs it.
    pub seed: Option<u64>,
    /// `realistic` (each sensor wanders around its own base with noise and rare spikes over
    /// 40 °C) or `uniform` (the original example: uniform 0–50 °C).
    pub profile: Profile,
    /// Time between progress lines (the key is in seconds, fractions allowed).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub progress_interval_secs: Duration,
    /// Address of the HTTP endpoints `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub http_address: String,
    /// Labelled faults injected into the readings (`[simulator.faults]`); off by default.
    pub faults: FaultSettings,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            topic: "temperature-readings".to_owned(),
            sensors: 100,
            rate: 10.0,
            count: 0,
            seed: None,
            profile: Profile::Realistic,
            progress_interval_secs: Duration::from_secs(5),
            http_address: "0.0.0.0:9101".to_owned(),
            faults: FaultSettings::default(),
        }
    }
}

/// Publishes JSON temperature readings (message contract v1) to Kafka.
///
/// Settings come from, in increasing priority: built-in defaults, the file given by
/// --config, PIPELINE__* environment variables (PIPELINE__SIMULATOR__RATE=100,
/// PIPELINE__KAFKA__BROKERS=kafka:9092), and these flags.
#[derive(Debug, Parser, Default)]
#[command(name = "sensor-simulator", version)]
pub struct Cli {
    /// The flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Topic to publish to. [default: temperature-readings]
    #[arg(long)]
    pub topic: Option<String>,
    /// Number of sensors (ids sensor-0000, sensor-0001, ...). [default: 100]
    #[arg(long, value_name = "N")]
    pub sensors: Option<u32>,
    /// Readings per second in total; 0 = as fast as the broker takes them. [default: 10]
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Stop after C readings; 0 = run until stopped. [default: 0]
    #[arg(long, value_name = "C")]
    pub count: Option<u64>,
    /// Seed: the same seed publishes the same readings in the same order. [default: random]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// realistic, or uniform (the original 0–50 °C generator). [default: realistic]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Seconds between progress lines. [default: 5]
    #[arg(long, value_name = "SECS")]
    pub progress_interval: Option<f64>,
    /// Address of /metrics, /healthz and /readyz; "" for none. [default: 0.0.0.0:9101]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_address: Option<String>,
    /// Labelled faults started per 1000 readings of a sensor; 0 = none. [default: 0]
    #[arg(long, value_name = "R")]
    pub fault_rate: Option<f64>,
    /// The fault kinds drawn from, comma-separated: spike, level_shift, drift, stuck, noise,
    /// dropout. [default: all]
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub fault_kinds: Option<Vec<String>>,
    /// Write the readings to stdout as JSON lines, with their fault labels, instead of
    /// publishing them (no Kafka needed): `{"reading":{…},"fault":"spike"|null,"fault_id":…}`.
    /// For training a model offline (models/train.py).
    #[arg(long)]
    pub print: bool,
}

impl Cli {
    /// Loads and checks the settings: defaults, file, environment, then these flags.
    pub fn load(&self) -> Result<Config, SettingsError> {
        let overrides = self
            .common
            .overrides()
            .set("simulator.topic", self.topic.clone())
            .set("simulator.sensors", self.sensors.map(u64::from))
            .set("simulator.rate", self.rate)
            .set("simulator.count", self.count)
            .set("simulator.seed", self.seed)
            .set("simulator.profile", self.profile.clone())
            .set("simulator.progress_interval_secs", self.progress_interval)
            .set("simulator.http_address", self.http_address.clone())
            .set("simulator.faults.rate", self.fault_rate)
            .set("simulator.faults.kinds", self.fault_kinds.clone());
        let config: Config = self.common.load(overrides)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.kafka.validate()?;
        let s = &self.simulator;
        if s.topic.is_empty() {
            return Err(SettingsError::invalid(
                "simulator.topic",
                "must not be empty",
            ));
        }
        if s.sensors == 0 || s.sensors > 10_000_000 {
            return Err(SettingsError::invalid(
                "simulator.sensors",
                "must be between 1 and 10000000",
            ));
        }
        if !s.rate.is_finite() || s.rate < 0.0 {
            return Err(SettingsError::invalid(
                "simulator.rate",
                "must be a number ≥ 0 (0 = unlimited)",
            ));
        }
        if !s.faults.rate.is_finite() || !(0.0..=1_000.0).contains(&s.faults.rate) {
            return Err(SettingsError::invalid(
                "simulator.faults.rate",
                "must be a number from 0 to 1000 (faults per 1000 readings of a sensor)",
            ));
        }
        if s.faults.rate > 0.0 && s.faults.kinds.is_empty() {
            return Err(SettingsError::invalid(
                "simulator.faults.kinds",
                format!(
                    "must name at least one kind when faults.rate > 0: {}",
                    FaultKind::ALL.map(FaultKind::name).join(", ")
                ),
            ));
        }
        if s.progress_interval_secs.is_zero() {
            return Err(SettingsError::invalid(
                "simulator.progress_interval_secs",
                "must be > 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_and_name_the_key() {
        let cli = Cli::parse_from(["sensor-simulator", "--rate=-1"]);
        assert_eq!(
            cli.load().unwrap_err().to_string(),
            "configuration key `simulator.rate`: must be a number ≥ 0 (0 = unlimited)"
        );
        let cli = Cli::parse_from(["sensor-simulator", "--profile", "gaussian"]);
        let err = cli.load().unwrap_err().to_string();
        assert!(err.contains("gaussian"), "{err}");
        assert!(err.contains("simulator.profile"), "{err}");
    }

    #[test]
    fn every_flag_reaches_its_key() {
        let cli = Cli::parse_from([
            "sensor-simulator",
            "--brokers",
            "b:1",
            "--topic",
            "t",
            "--sensors",
            "3",
            "--rate",
            "2.5",
            "--count",
            "9",
            "--seed",
            "4",
            "--profile",
            "uniform",
            "--progress-interval",
            "1.5",
            "--http-address",
            "",
        ]);
        let config = cli.load().unwrap();
        let s = config.simulator;
        assert_eq!(config.kafka.brokers, "b:1");
        assert_eq!(
            (s.topic.as_str(), s.sensors, s.rate, s.count, s.seed),
            ("t", 3, 2.5, 9, Some(4))
        );
        assert_eq!(
            (s.profile, s.progress_interval_secs, s.http_address.as_str()),
            (Profile::Uniform, Duration::from_millis(1500), "")
        );
    }

    #[test]
    fn the_shipped_default_file_equals_the_built_in_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml");
        let cli = Cli {
            common: CommonArgs {
                config: Some(path.into()),
                ..CommonArgs::default()
            },
            ..Cli::default()
        };
        assert_eq!(cli.load().unwrap(), Config::default());
    }
}
