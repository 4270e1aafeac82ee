//! Layered settings: compiled defaults, then an optional TOML file, then `PIPELINE__`
//! environment variables, then command-line flags. Later layers win.
//!
//! A file holds sections: `[kafka]` and `[telemetry]` for every service, and one section per
//! service (`[processor]`, `[pg_sink]`, ...), so one file can configure a whole deployment. A
//! service reads the sections its [`Sections::OWN`] lists and skips the other services' ones;
//! a section no service knows is an error (a misspelt `[procesor]` must not be ignored).
//! Environment variables name a key with `__` between the parts:
//! `PIPELINE__PROCESSOR__WINDOW_SIZE=5`, `PIPELINE__KAFKA__BROKERS=kafka:9092`. Unknown keys
//! and bad values are errors that name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::security::{SaslSettings, Security, SecurityProtocol, TlsSettings};

/// Prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "PIPELINE";

/// Every section a settings file may hold, across the services.
pub const KNOWN_SECTIONS: &[&str] = &[
    "kafka",
    "telemetry",
    "simulator",
    "processor",
    "gateway",
    "ip_count",
    "pg_sink",
    "dashboard",
];

/// A service's settings type: which of [`KNOWN_SECTIONS`] it reads.
pub trait Sections {
    /// The sections deserialized into this type; the other known ones are skipped.
    const OWN: &'static [&'static str];
}

/// Why settings could not be loaded. Every variant names the key or the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file is missing, unreadable or not TOML.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A key is unknown or its value has the wrong type.
    #[error("configuration: {0}")]
    Parse(String),
    /// A value has the right type but is not allowed.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key, such as `processor.window_size`.
        key: String,
        /// What is wrong with its value.
        message: String,
    },
}

impl SettingsError {
    /// An error about the value of one key.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The loaded settings, or the process ends: the error, prefixed with `program`, on stderr
/// and exit code 2. For `main` functions, before telemetry is set up.
pub fn load_or_exit<T>(program: &str, loaded: Result<T, SettingsError>) -> T {
    loaded.unwrap_or_else(|error| {
        eprintln!("{program}: {error}");
        std::process::exit(crate::EXIT_BAD_CONFIG)
    })
}

/// Overrides from command-line flags, as dotted keys and values.
#[derive(Debug, Default)]
pub struct Overrides(Vec<(String, config::Value)>);

impl Overrides {
    /// Sets `key` to `value` when the flag was given.
    pub fn set<V: Into<config::Value>>(mut self, key: &str, value: Option<V>) -> Self {
        if let Some(value) = value {
            self.0.push((key.to_owned(), value.into()));
        }
        self
    }
}

/// Loads settings of type `T` from the layers. `file` is the optional TOML file.
pub fn load<T: DeserializeOwned + Sections>(
    file: Option<&Path>,
    overrides: Overrides,
) -> Result<T, SettingsError> {
    load_with_env(file, overrides, std::env::vars())
}

/// As [`load`], with the environment given explicitly (for tests).
pub fn load_with_env<T: DeserializeOwned + Sections>(
    file: Option<&Path>,
    overrides: Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, SettingsError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    for (key, value) in overrides.0 {
        builder = builder
            .set_override(key.as_str(), value)
            .map_err(|e| SettingsError::Parse(e.to_string()))?;
    }
    let merged = builder.build().map_err(|e| match (file, e) {
        (Some(path), config::ConfigError::FileParse { cause, .. }) => SettingsError::File {
            path: path.to_owned(),
            message: cause.to_string(),
        },
        (_, e) => SettingsError::Parse(e.to_string()),
    })?;
    let sections: config::Map<String, config::Value> = merged
        .try_deserialize()
        .map_err(|e| SettingsError::Parse(e.to_string()))?;
    let mut own = config::Map::new();
    for (name, value) in sections {
        if T::OWN.contains(&name.as_str()) {
            own.insert(name, value);
        } else if !KNOWN_SECTIONS.contains(&name.as_str()) {
            return Err(SettingsError::Parse(format!(
                "unknown section `{name}`, expected one of {}",
                KNOWN_SECTIONS.join(", ")
            )));
        }
    }
    config::Value::new(None, config::ValueKind::Table(own))
        .try_deserialize()
        .map_err(|e| SettingsError::Parse(e.to_string()))
}

/// The `[kafka]` section: how to reach the cluster.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port` pairs.
    pub brokers: String,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// SASL authentication (`[kafka.sasl]`).
    pub sasl: SaslSettings,
    /// TLS (`[kafka.tls]`).
    pub tls: TlsSettings,
    /// Extra librdkafka properties passed to every client as they are (tuning, and security
    /// options beyond the settings above). See librdkafka's CONFIGURATION.md.
    pub properties: BTreeMap<String, String>,
    /// The topics a service creates itself, as the processors' changelogs
    /// (`[kafka.topics]`).
    pub topics: TopicSettings,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".to_owned(),
            security_protocol: SecurityProtocol::default(),
            sasl: SaslSettings::default(),
            tls: TlsSettings::default(),
            properties: BTreeMap::new(),
            topics: TopicSettings::default(),
        }
    }
}

/// The `[kafka.topics]` section: how a service creates the topics it creates itself.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicSettings {
    /// Replication factor; -1: the cluster's `default.replication.factor`.
    pub replication_factor: i32,
    /// The topic's `min.insync.replicas`; 0: the cluster's.
    pub min_insync_replicas: u32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            replication_factor: -1,
            min_insync_replicas: 0,
        }
    }
}

/// Property values whose key looks secret are shown as `***`: settings end up in panic
/// messages and debug logs.
impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "jaas", "token"]
                    .iter()
                    .any(|s| k.contains(s));
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl", &self.sasl)
            .field("tls", &self.tls)
            .field("properties", &properties)
            .field("topics", &self.topics)
            .finish()
    }
}

impl KafkaSettings {
    /// Checks the values that deserialization cannot, the security settings' files included.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(SettingsError::invalid(
                "kafka.brokers",
                "must list one or more host:port pairs, separated by commas",
            ));
        }
        let topics = self.topics;
        if topics.replication_factor == 0 || topics.replication_factor < -1 {
            return Err(SettingsError::invalid(
                "kafka.topics.replication_factor",
                "must be -1 (the cluster's default) or at least 1",
            ));
        }
        if topics.replication_factor > 0
            && topics.min_insync_replicas > topics.replication_factor as u32
        {
            return Err(SettingsError::invalid(
                "kafka.topics.min_insync_replicas",
                "must not exceed kafka.topics.replication_factor: no write could succeed",
            ));
        }
        self.security().validate(self.properties.keys())
    }

    /// The security settings.
    pub fn security(&self) -> Security<'_> {
        Security {
            protocol: self.security_protocol,
            sasl: &self.sasl,
            tls: &self.tls,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `[telemetry]` section: how the service reports on itself. The log level comes from
/// `RUST_LOG` (default `info`).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Once the HTTP endpoints listen, their bound address is written to this file (for an
    /// address on port 0). Unset: not written.
    pub http_address_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        window_size: usize,
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Root {
        kafka: KafkaSettings,
        processor: Section,
    }

    impl Sections for Root {
        const OWN: &'static [&'static str] = &["kafka", "processor"];
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_file_env_and_flags_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"file:1\"\n[processor]\nwindow_size = 3\nname = \"file\"\n",
        )
        .unwrap();
        let root: Root = load_with_env(
            Some(&path),
            Overrides::default().set("processor.name", Some("flag")),
            env(&[
                ("PIPELINE__PROCESSOR__WINDOW_SIZE", "7"),
                ("PIPELINE__PROCESSOR__NAME", "env"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(root.kafka.brokers, "file:1");
        assert_eq!(root.processor.window_size, 7);
        assert_eq!(root.processor.name, "flag");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = load_with_env::<Root>(
            None,
            Overrides::default(),
            env(&[("PIPELINE__PROCESSOR__WINDOWSIZE", "7")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("windowsize"), "{err}");
        let err = load_with_env::<Root>(
            None,
            Overrides::default(),
            env(&[("PIPELINE__PROCESSOR__WINDOW_SIZE", "ten")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("processor.window_size"), "{err}");
        let err = load_with_env::<Root>(
            None,
            Overrides::default(),
            env(&[("PIPELINE__KAFKA__BROKER", "x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("broker"), "{err}");
    }

    #[test]
    fn other_services_sections_are_skipped_and_unknown_sections_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[processor]\nwindow_size = 3\n[pg_sink]\nanything = 1\n[dashboard]\nx = \"y\"\n",
        )
        .unwrap();
        let root: Root = load_with_env(Some(&path), Overrides::default(), env(&[])).unwrap();
        assert_eq!(root.processor.window_size, 3);

        let err = load_with_env::<Root>(
            None,
            Overrides::default(),
            env(&[("PIPELINE__PROCESOR__WINDOW_SIZE", "7")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown section `procesor`"), "{err}");
    }

    #[test]
    fn a_missing_or_broken_file_names_the_file() {
        let err = load_with_env::<Root>(
            Some(Path::new("/nonexistent.toml")),
            Overrides::default(),
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("configuration file /nonexistent.toml:"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[processor\n").unwrap();
        let err = load_with_env::<Root>(Some(&path), Overrides::default(), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.toml"), "{err}");
    }

    #[test]
    fn empty_broker_list_is_invalid() {
        let kafka = KafkaSettings {
            brokers: "a:1,,b:2".into(),
            ..Default::default()
        };
        assert_eq!(
            kafka.validate().unwrap_err().to_string(),
            "configuration key `kafka.brokers`: must list one or more host:port pairs, separated by commas"
        );
    }

    #[test]
    fn topic_settings_are_checked_and_name_the_key() {
        let with = |replication_factor, min_insync_replicas| KafkaSettings {
            topics: TopicSettings {
                replication_factor,
                min_insync_replicas,
            },
            ..Default::default()
        };
        assert!(with(-1, 0).validate().is_ok());
        assert!(with(3, 2).validate().is_ok());
        assert_eq!(
            with(0, 0).validate().unwrap_err().to_string(),
            "configuration key `kafka.topics.replication_factor`: must be -1 (the cluster's default) or at least 1"
        );
        assert_eq!(
            with(1, 2).validate().unwrap_err().to_string(),
            "configuration key `kafka.topics.min_insync_replicas`: must not exceed kafka.topics.replication_factor: no write could succeed"
        );
    }
}
