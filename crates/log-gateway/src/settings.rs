//! The gateway's settings: `[gateway]`, plus the shared `[kafka]` and `[telemetry]`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pipeline_runtime::cli::CommonArgs;
use pipeline_runtime::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;
use serde_with::{DurationSecondsWithFrac, serde_as};

use crate::tls::ListenerTls;

/// Everything the gateway reads from a configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka.
    pub kafka: KafkaSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// The gateway itself.
    pub gateway: GatewaySettings,
}

impl pipeline_runtime::settings::Sections for Config {
    const OWN: &'static [&'static str] = &["kafka", "telemetry", "gateway"];
}

/// The `[gateway]` section.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// TCP address the log lines arrive on.
    pub listen_address: String,
    /// TCP address syslog messages arrive on (RFC 6587: octet-counted or newline-framed;
    /// RFC 5424 or RFC 3164); empty: no syslog listener. Written to `topic` like lines.
    pub syslog_listen_address: String,
    /// TCP address of the acknowledged HTTP endpoint `POST /v1/logs` (answered only once Kafka
    /// has every line of the request); empty: none.
    pub http_listen_address: String,
    /// Largest request body of the HTTP endpoint, in bytes, after gzip decompression too.
    pub max_request_bytes: usize,
    /// How long a request of the HTTP endpoint waits for Kafka to acknowledge all its lines
    /// before it is answered 503 (seconds).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub request_timeout_secs: Duration,
    /// Topic each line is written to, as one record.
    pub topic: String,
    /// Topic for lines longer than `max_line_bytes` (their first `max_line_bytes` bytes, the
    /// reason and the sender in headers).
    pub dlq_topic: String,
    /// Longest line written as a record; longer ones are dead-lettered, never cut silently.
    pub max_line_bytes: usize,
    /// Open connections at most; more are refused (closed at once), logged and counted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (seconds, fractions allowed).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub idle_timeout_secs: Duration,
    /// Lines handed to the producer and not yet acknowledged by Kafka, at most. At the bound
    /// the gateway stops reading from its connections, so TCP flow control slows the senders.
    pub max_in_flight: usize,
    /// On SIGTERM: time to read what the connections have already sent and to flush it to
    /// Kafka (seconds).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub shutdown_grace_secs: Duration,
    /// Address of the HTTP endpoints `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub http_address: String,
    /// TLS on the line listener (`[gateway.tls]`); off unless a certificate and key are set.
    pub tls: ListenerTls,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen_address: "0.0.0.0:5140".to_owned(),
            syslog_listen_address: String::new(),
            http_listen_address: String::new(),
            max_request_bytes: 10 * 1024 * 1024,
            request_timeout_secs: Duration::from_secs(30),
            topic: "access-logs".to_owned(),
            dlq_topic: "access-logs-dlq".to_owned(),
            max_line_bytes: 64 * 1024,
            max_connections: 1024,
            idle_timeout_secs: Duration::from_secs(300),
            max_in_flight: 50_000,
            shutdown_grace_secs: Duration::from_secs(20),
            http_address: "0.0.0.0:9102".to_owned(),
            tls: ListenerTls::default(),
        }
    }
}

/// Receives log lines over TCP (one record per line on the `access-logs` topic) with
/// backpressure instead of loss.
///
/// Settings come from, in increasing priority: built-in defaults, the file given by
/// --config, PIPELINE__* environment variables (PIPELINE__GATEWAY__MAX_CONNECTIONS=100,
/// PIPELINE__KAFKA__BROKERS=kafka:9092), and these flags.
#[derive(Debug, Parser, Default)]
#[command(name = "log-gateway", version)]
pub struct Cli {
    /// The flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// TCP address to receive lines on. [default: 0.0.0.0:5140]
    #[arg(long, value_name = "HOST:PORT")]
    pub listen_address: Option<String>,
    /// TCP address to receive syslog on; "" for none. [default: none]
    #[arg(long, value_name = "HOST:PORT")]
    pub syslog_listen_address: Option<String>,
    /// TCP address of the acknowledged HTTP endpoint POST /v1/logs; "" for none. [default:
    /// none]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_listen_address: Option<String>,
    /// Largest HTTP request body in bytes (after gzip too). [default: 10485760]
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<u64>,
    /// Seconds an HTTP request waits for Kafka's acknowledgements before a 503. [default: 30]
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<f64>,
    /// Topic to write lines to. [default: access-logs]
    #[arg(long)]
    pub topic: Option<String>,
    /// Topic for oversize lines. [default: access-logs-dlq]
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Longest line in bytes; longer ones are dead-lettered. [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<u64>,
    /// Open connections at most. [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,
    /// Seconds of silence after which a connection is closed. [default: 300]
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// Lines not yet acknowledged by Kafka at most, before reading stops. [default: 50000]
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u64>,
    /// Address of /metrics, /healthz and /readyz; "" for none. [default: 0.0.0.0:9102]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_address: Option<String>,
    /// PEM certificate (chain) of the line listener: TLS on, with --tls-key-file.
    #[arg(long, value_name = "FILE")]
    pub tls_certificate_file: Option<String>,
    /// PEM private key of the line listener's certificate.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<String>,
    /// PEM CAs whose client certificates are accepted: clients must present one (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<String>,
}

impl Cli {
    /// Loads and checks the settings: defaults, file, environment, then these flags.
    pub fn load(&self) -> Result<Config, SettingsError> {
        let overrides = self
            .common
            .overrides()
            .set("gateway.listen_address", self.listen_address.clone())
            .set(
                "gateway.syslog_listen_address",
                self.syslog_listen_address.clone(),
            )
            .set(
                "gateway.http_listen_address",
                self.http_listen_address.clone(),
            )
            .set("gateway.max_request_bytes", self.max_request_bytes)
            .set("gateway.request_timeout_secs", self.request_timeout)
            .set("gateway.topic", self.topic.clone())
            .set("gateway.dlq_topic", self.dlq_topic.clone())
            .set("gateway.max_line_bytes", self.max_line_bytes)
            .set("gateway.max_connections", self.max_connections)
            .set("gateway.idle_timeout_secs", self.idle_timeout)
            .set("gateway.max_in_flight", self.max_in_flight)
            .set("gateway.http_address", self.http_address.clone())
            .set(
                "gateway.tls.certificate_file",
                self.tls_certificate_file.clone(),
            )
            .set("gateway.tls.key_file", self.tls_key_file.clone())
            .set("gateway.tls.ca_file", self.tls_ca_file.clone());
        let config: Config = self.common.load(overrides)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.kafka.validate()?;
        let g = &self.gateway;
        g.listen_address.parse::<SocketAddr>().map_err(|e| {
            SettingsError::invalid("gateway.listen_address", format!("not HOST:PORT: {e}"))
        })?;
        for (key, address) in [
            ("gateway.syslog_listen_address", &g.syslog_listen_address),
            ("gateway.http_listen_address", &g.http_listen_address),
        ] {
            if !address.is_empty() {
                address
                    .parse::<SocketAddr>()
                    .map_err(|e| SettingsError::invalid(key, format!("not HOST:PORT: {e}")))?;
            }
        }
        if g.max_request_bytes == 0 || g.max_request_bytes > 1 << 30 {
            return Err(SettingsError::invalid(
                "gateway.max_request_bytes",
                "must be between 1 and 1073741824",
            ));
        }
        if g.request_timeout_secs.is_zero() {
            return Err(SettingsError::invalid(
                "gateway.request_timeout_secs",
                "must be > 0",
            ));
        }
        for (key, topic) in [
            ("gateway.topic", &g.topic),
            ("gateway.dlq_topic", &g.dlq_topic),
        ] {
            if topic.is_empty() {
                return Err(SettingsError::invalid(key, "must not be empty"));
            }
        }
        // Kafka's default message.max.bytes is about 1 MB; a record also carries headers.
        if g.max_line_bytes == 0 || g.max_line_bytes > 900_000 {
            return Err(SettingsError::invalid(
                "gateway.max_line_bytes",
                "must be between 1 and 900000 (a record must fit Kafka's default message.max.bytes)",
            ));
        }
        if g.max_connections == 0 {
            return Err(SettingsError::invalid(
                "gateway.max_connections",
                "must be > 0",
            ));
        }
        if g.max_in_flight == 0 || g.max_in_flight > 1_000_000 {
            return Err(SettingsError::invalid(
                "gateway.max_in_flight",
                "must be between 1 and 1000000 (librdkafka's queue.buffering.max.messages)",
            ));
        }
        if g.idle_timeout_secs.is_zero() {
            return Err(SettingsError::invalid(
                "gateway.idle_timeout_secs",
                "must be > 0",
            ));
        }
        g.tls.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        for (flag, key) in [
            ("--listen-address=localhost", "gateway.listen_address"),
            ("--max-line-bytes=0", "gateway.max_line_bytes"),
            ("--max-connections=0", "gateway.max_connections"),
            ("--max-in-flight=0", "gateway.max_in_flight"),
            ("--idle-timeout=0", "gateway.idle_timeout_secs"),
            ("--topic=", "gateway.topic"),
            ("--http-listen-address=:80", "gateway.http_listen_address"),
            ("--max-request-bytes=0", "gateway.max_request_bytes"),
            ("--request-timeout=0", "gateway.request_timeout_secs"),
        ] {
            let error = Cli::parse_from(["log-gateway", flag])
                .load()
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("configuration key `{key}`")),
                "{flag}: {error}"
            );
        }
    }

    #[test]
    fn flags_reach_their_keys_and_the_shared_file_loads() {
        let cli = Cli::parse_from([
            "log-gateway",
            "--listen-address",
            "127.0.0.1:7000",
            "--max-line-bytes",
            "100",
            "--idle-timeout",
            "1.5",
        ]);
        let config = cli.load().expect("valid");
        assert_eq!(config.gateway.listen_address, "127.0.0.1:7000");
        assert_eq!(config.gateway.max_line_bytes, 100);
        assert_eq!(
            config.gateway.idle_timeout_secs,
            Duration::from_millis(1500)
        );

        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml");
        let from_file = pipeline_runtime::settings::load::<Config>(
            Some(std::path::Path::new(path)),
            Default::default(),
        )
        .expect("config/default.toml loads");
        assert_eq!(
            from_file.gateway,
            GatewaySettings::default(),
            "default.toml states the defaults"
        );
    }
}
