//! `ip-counter`: both stages of the IP-count pipeline in one process, each an engine run with
//! its own consumer group and transactions.
//!
//! 1. `<group_id>-lines` reads `access-logs` and writes one record per address to the
//!    repartition topic, keyed by the address ([`crate::lines::LineJob`]).
//! 2. `<group_id>-counts` reads the repartition topic, where every record of one address is on
//!    one partition, and counts per tumbling window with its state in a changelog
//!    ([`crate::job::CountJob`]); each (window, address) count goes to `ip-counts` once, final.
//!
//! Replicas share both groups' partitions, so `--scale` scales both stages.

use std::time::Duration;

use clap::Parser;
use pipeline_runtime::cli::CommonArgs;
use pipeline_runtime::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;
use serde_with::{DurationSecondsWithFrac, serde_as};
use stream_engine::{EngineSettings, Guarantee, MetricNames};
use tokio_util::sync::CancellationToken;

use crate::job::{CountJob, WindowRules};
use crate::lines::LineJob;

/// Everything `ip-counter` reads from a configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka.
    pub kafka: KafkaSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// The job.
    pub ip_count: IpCountSettings,
}

impl pipeline_runtime::settings::Sections for Config {
    const OWN: &'static [&'static str] = &["kafka", "telemetry", "ip_count"];
}

/// The `[ip_count]` section.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpCountSettings {
    /// Prefix of the two consumer groups (`<group_id>-lines`, `<group_id>-counts`), of the
    /// transactional ids and of the changelog.
    pub group_id: String,
    /// Log lines, one per record.
    pub input_topic: String,
    /// Internal: one record per address, keyed by it.
    pub repartition_topic: String,
    /// Final counts per (window, address).
    pub output_topic: String,
    /// Unusable lines and late requests, with the reason in headers.
    pub dlq_topic: String,
    /// Tumbling window length (seconds).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub window_secs: Duration,
    /// How long after its end a window still takes records (seconds).
    #[serde_as(as = "DurationSecondsWithFrac<f64>")]
    pub lateness_secs: Duration,
    /// `exactly_once` or `at_least_once`.
    pub processing_guarantee: Guarantee,
    /// Longest a batch collects before it is committed (ms).
    pub commit_interval_ms: u64,
    /// Requests applied to a partition between two snapshots of its changed counts in the
    /// changelog; 0: every batch. A restore replays at most this many per partition.
    pub snapshot_every_records: u64,
    /// Longest between two snapshots of a partition that receives requests (ms).
    pub snapshot_interval_ms: u64,
    /// This replica's name; unset: the host name.
    pub instance_id: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub http_address: String,
}

impl Default for IpCountSettings {
    fn default() -> Self {
        Self {
            group_id: "ip-count".to_owned(),
            input_topic: "access-logs".to_owned(),
            repartition_topic: "ip-count-requests".to_owned(),
            output_topic: "ip-counts".to_owned(),
            dlq_topic: "access-logs-dlq".to_owned(),
            window_secs: Duration::from_secs(60),
            lateness_secs: Duration::from_secs(10),
            processing_guarantee: Guarantee::ExactlyOnce,
            commit_interval_ms: 100,
            snapshot_every_records: 50_000,
            snapshot_interval_ms: 30_000,
            instance_id: None,
            http_address: "0.0.0.0:9103".to_owned(),
        }
    }
}

/// Counts requests per IP address per tumbling window of event time, exactly once: log lines
/// from `access-logs` in, final counts to `ip-counts`.
///
/// Settings come from, in increasing priority: built-in defaults, the file given by --config,
/// PIPELINE__* environment variables (PIPELINE__IP_COUNT__WINDOW_SECS=30), and these flags.
#[derive(Debug, Parser, Default)]
#[command(name = "ip-counter", version)]
pub struct Cli {
    /// The flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Log-line topic. [default: access-logs]
    #[arg(long)]
    pub input_topic: Option<String>,
    /// Repartition topic. [default: ip-count-requests]
    #[arg(long)]
    pub repartition_topic: Option<String>,
    /// Counts topic. [default: ip-counts]
    #[arg(long)]
    pub output_topic: Option<String>,
    /// Dead-letter topic. [default: access-logs-dlq]
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Group id prefix. [default: ip-count]
    #[arg(long)]
    pub group_id: Option<String>,
    /// Window length in seconds. [default: 60]
    #[arg(long, value_name = "SECS")]
    pub window: Option<f64>,
    /// Allowed lateness in seconds. [default: 10]
    #[arg(long, value_name = "SECS")]
    pub lateness: Option<f64>,
    /// exactly_once or at_least_once. [default: exactly_once]
    #[arg(long, value_name = "GUARANTEE")]
    pub processing_guarantee: Option<String>,
    /// This replica's name in its transactional ids; unique per replica, stable across its
    /// restarts. [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub instance_id: Option<String>,
    /// Address of /metrics, /healthz and /readyz; "" for none. [default: 0.0.0.0:9103]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_address: Option<String>,
}

impl Cli {
    /// Loads and checks the settings: defaults, file, environment, then these flags.
    pub fn load(&self) -> Result<Config, SettingsError> {
        let overrides = self
            .common
            .overrides()
            .set("ip_count.input_topic", self.input_topic.clone())
            .set("ip_count.repartition_topic", self.repartition_topic.clone())
            .set("ip_count.output_topic", self.output_topic.clone())
            .set("ip_count.dlq_topic", self.dlq_topic.clone())
            .set("ip_count.group_id", self.group_id.clone())
            .set("ip_count.window_secs", self.window)
            .set("ip_count.lateness_secs", self.lateness)
            .set(
                "ip_count.processing_guarantee",
                self.processing_guarantee.clone(),
            )
            .set("ip_count.instance_id", self.instance_id.clone())
            .set("ip_count.http_address", self.http_address.clone());
        let config: Config = self.common.load(overrides)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.kafka.validate()?;
        let s = &self.ip_count;
        for (key, value) in [
            ("ip_count.group_id", &s.group_id),
            ("ip_count.input_topic", &s.input_topic),
            ("ip_count.repartition_topic", &s.repartition_topic),
            ("ip_count.output_topic", &s.output_topic),
            ("ip_count.dlq_topic", &s.dlq_topic),
        ] {
            if value.is_empty() {
                return Err(SettingsError::invalid(key, "must not be empty"));
            }
        }
        if s.window_secs.as_millis() == 0 {
            return Err(SettingsError::invalid(
                "ip_count.window_secs",
                "must be at least 1 ms",
            ));
        }
        for (key, value) in [
            ("ip_count.commit_interval_ms", s.commit_interval_ms),
            ("ip_count.snapshot_interval_ms", s.snapshot_interval_ms),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "must be > 0"));
            }
        }
        Ok(())
    }

    /// The windows.
    pub fn rules(&self) -> WindowRules {
        WindowRules {
            size_ms: self.ip_count.window_secs.as_millis() as i64,
            lateness_ms: self.ip_count.lateness_secs.as_millis() as i64,
        }
    }

    fn instance_id(&self) -> String {
        self.ip_count
            .instance_id
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("{:08x}", std::process::id()))
    }

    fn engine(
        &self,
        stage: &str,
        input: &str,
        output: &str,
        metrics: MetricNames,
        http: &str,
    ) -> EngineSettings {
        let s = &self.ip_count;
        let group_id = format!("{}-{stage}", s.group_id);
        EngineSettings {
            client_name: format!("ip-counter-{stage}"),
            state_topic: format!("{group_id}-state"),
            group_id,
            input_topic: input.to_owned(),
            output_topics: vec![output.to_owned()],
            dlq_topic: s.dlq_topic.clone(),
            guarantee: s.processing_guarantee,
            batch_max_records: 10_000,
            commit_interval: Duration::from_millis(s.commit_interval_ms),
            snapshot_every_records: s.snapshot_every_records,
            snapshot_interval: Duration::from_millis(s.snapshot_interval_ms),
            transaction_timeout: Duration::from_secs(10),
            instance_id: self.instance_id(),
            http_address: http.to_owned(),
            http_address_file: if http.is_empty() {
                None
            } else {
                self.telemetry.http_address_file.clone()
            },
            kind_header: None,
            metrics,
        }
    }

    /// Stage 1's engine settings: lines to the repartition topic. It serves the endpoints
    /// (the recorder is shared, so `/metrics` shows both stages).
    pub fn lines_engine(&self) -> EngineSettings {
        let s = &self.ip_count;
        self.engine(
            "lines",
            &s.input_topic,
            &s.repartition_topic,
            crate::metrics::LINES,
            &s.http_address,
        )
    }

    /// Stage 2's engine settings: the repartition topic to counts.
    pub fn counts_engine(&self) -> EngineSettings {
        let s = &self.ip_count;
        self.engine(
            "counts",
            &s.repartition_topic,
            &s.output_topic,
            crate::metrics::COUNTS,
            "",
        )
    }
}

/// Runs both stages until `shutdown` or the first error (which stops the other).
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let rules = config.rules();
    tracing::info!(
        window_ms = rules.size_ms,
        lateness_ms = rules.lateness_ms,
        "ip-count job"
    );
    // One recorder for both stages, before either registers its metrics.
    pipeline_runtime::endpoints::metrics_recorder()?;
    let stop = shutdown.child_token();
    let kafka = &config.kafka;
    let (lines, counts) = (config.lines_engine(), config.counts_engine());
    let stage = |result: anyhow::Result<()>| {
        if result.is_err() {
            stop.cancel();
        }
        result
    };
    let (a, b) = tokio::join!(
        async { stage(stream_engine::run(LineJob, kafka, &lines, stop.clone()).await) },
        async {
            stage(stream_engine::run(CountJob::new(rules), kafka, &counts, stop.clone()).await)
        },
    );
    a.and(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_states_the_defaults_and_bad_values_name_their_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml");
        let config: Config =
            pipeline_runtime::settings::load(Some(std::path::Path::new(path)), Default::default())
                .expect("config/default.toml loads");
        assert_eq!(config.ip_count, IpCountSettings::default());
        let error = Cli::parse_from(["ip-counter", "--window", "0"])
            .load()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("configuration key `ip_count.window_secs`"),
            "{error}"
        );
        let error = Cli::parse_from(["ip-counter", "--processing-guarantee", "maybe"])
            .load()
            .unwrap_err();
        assert!(error.to_string().contains("maybe"), "{error}");
    }

    #[test]
    fn the_stages_have_their_own_groups_and_only_the_second_keeps_state() {
        let config = Cli::parse_from(["ip-counter", "--group-id", "g"])
            .load()
            .expect("valid");
        let (lines, counts) = (config.lines_engine(), config.counts_engine());
        assert_eq!(
            (lines.group_id.as_str(), counts.group_id.as_str()),
            ("g-lines", "g-counts")
        );
        assert_eq!(
            lines.output_topics,
            std::slice::from_ref(&counts.input_topic)
        );
        assert_eq!(counts.state_topic, "g-counts-state");
        assert_eq!(counts.http_address, "", "one set of endpoints per process");
        assert_eq!(
            config.rules(),
            WindowRules {
                size_ms: 60_000,
                lateness_ms: 10_000
            }
        );
    }
}
