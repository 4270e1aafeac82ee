//! The processor's settings: `[processor]`, plus the shared `[kafka]` and `[telemetry]`.

use std::time::Duration;

use clap::Parser;
use pipeline_runtime::cli::CommonArgs;
use pipeline_runtime::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use sensor_contract::model::{ModelSettings, Seasonality};
use sensor_contract::{DecodeOptions, MAX_SENSOR_ID_BYTES, ProcessingRules};
use serde::Deserialize;
use serde_with::{DurationMilliSeconds, serde_as};
use stream_engine::{EngineSettings, Guarantee};

use crate::job::EVENT_TYPE_HEADER;

/// Everything the processor reads from a configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka.
    pub kafka: KafkaSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// The processor itself.
    pub processor: ProcessorSettings,
}

impl pipeline_runtime::settings::Sections for Config {
    const OWN: &'static [&'static str] = &["kafka", "telemetry", "processor"];
}

/// The `[processor]` section.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorSettings {
    /// Consumer group; replicas with the same group share the input partitions.
    pub group_id: String,
    /// Topic the readings are consumed from.
    pub input_topic: String,
    /// Topic alerts and averages are written to.
    pub output_topic: String,
    /// Topic unusable input records are written to, with the reason in headers.
    pub dlq_topic: String,
    /// Readings per sensor window; an average is emitted for each full window.
    pub window_size: usize,
    /// Readings strictly above this temperature (°C) raise an alert.
    pub threshold: f64,
    /// Sensor id for records with neither a `sensor_id` field nor a key (the original Python
    /// producer's records).
    pub default_sensor_id: String,
    /// Largest accepted record value in bytes; larger ones go to the dead-letter topic.
    pub max_record_bytes: usize,
    /// Most records processed and committed together.
    pub batch_max_records: usize,
    /// Longest a batch collects records before it is processed and committed (the key is
    /// in milliseconds).
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub commit_interval_ms: Duration,
    /// `exactly_once` (default): each batch's outputs, window-state changes and input offsets
    /// commit in one Kafka transaction. `at_least_once`: outputs are acknowledged before
    /// offsets are committed; a crash may repeat outputs.
    pub processing_guarantee: Guarantee,
    /// Readings applied to a partition between two snapshots of its changed windows in the
    /// changelog (every batch writes only a checkpoint); 0: every batch. A restore replays at
    /// most this many readings per partition, without emitting them again.
    pub snapshot_every_records: u64,
    /// Longest between two snapshots of a partition that receives readings (the key is in
    /// milliseconds).
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub snapshot_interval_ms: Duration,
    /// This replica's stable name, part of its transactional id
    /// (`<group_id>-<instance_id>`). A replica restarted under the same name fences its
    /// previous incarnation and aborts its open transaction at once. Default: the host name
    /// (the container's, under compose; the pod's, under Kubernetes), else a random name.
    pub instance_id: Option<String>,
    /// Compacted changelog topic holding each sensor's window, co-partitioned with the input.
    /// Default: `<group_id>-window-state`. Created if missing.
    pub state_topic: Option<String>,
    /// Longest a transaction may stay open before the broker aborts it (the key is in
    /// milliseconds). Bounds how long a crashed replica's open transaction can hold back
    /// `read_committed` readers.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub transaction_timeout_ms: Duration,
    /// Address of the HTTP endpoints `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub http_address: String,
    /// Prediction and anomaly detection per sensor (`[processor.anomalies]`); off by default.
    pub anomalies: AnomalySettings,
}

/// The `[processor.anomalies]` section: each sensor's online model
/// ([`sensor_contract::model`]), its state in the changelog beside the window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalySettings {
    /// Whether the model runs.
    pub enabled: bool,
    /// Topic the `anomaly` and `prediction` events are written to (in the same transactions
    /// as the alerts and averages).
    pub topic: String,
    /// A `prediction` event after every this many readings of a sensor; 0: none.
    pub prediction_every: u32,
    /// Half-width of the forecast's interval, in σ: a reading outside is an outlier.
    pub sensitivity: f64,
    /// Readings a sensor's model learns from before it judges.
    pub warmup: u32,
    /// Identical values in a row that make a stuck sensor.
    pub stuck_after: u32,
    /// Holt's level smoothing, in (0, 1].
    pub alpha: f64,
    /// Holt's trend smoothing, in [0, 1].
    pub beta: f64,
    /// `off`, or `daily`: an offset per hour of the day (UTC) in the forecast, for sensors read
    /// every few minutes or more sparsely.
    pub seasonality: Seasonality,
    /// Seasonal smoothing, in (0, 1].
    pub gamma: f64,
    /// An ONNX model that also scores each sensor's full window ([`crate::scorer`]); empty:
    /// none. Needs a processor built with the `onnx` feature.
    pub onnx_model: String,
    /// The score at or over which the ONNX model's verdict is an `onnx` anomaly.
    pub onnx_threshold: f64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        let model = ModelSettings::default();
        Self {
            enabled: false,
            topic: "temperature-anomalies".to_owned(),
            prediction_every: 10,
            sensitivity: model.sensitivity,
            warmup: model.warmup,
            stuck_after: model.stuck_after,
            alpha: model.alpha,
            beta: model.beta,
            seasonality: model.seasonality,
            gamma: model.gamma,
            onnx_model: String::new(),
            onnx_threshold: 0.5,
        }
    }
}

impl AnomalySettings {
    /// The model's parameters.
    pub fn model(&self) -> ModelSettings {
        ModelSettings {
            sensitivity: self.sensitivity,
            warmup: self.warmup,
            stuck_after: self.stuck_after,
            alpha: self.alpha,
            beta: self.beta,
            seasonality: self.seasonality,
            gamma: self.gamma,
            ..ModelSettings::default()
        }
    }
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            group_id: "temperature-processor".to_owned(),
            input_topic: "temperature-readings".to_owned(),
            output_topic: "temperature-events".to_owned(),
            dlq_topic: "temperature-readings-dlq".to_owned(),
            window_size: 10,
            threshold: 40.0,
            default_sensor_id: "default".to_owned(),
            max_record_bytes: 64 * 1024,
            batch_max_records: 50_000,
            commit_interval_ms: Duration::from_millis(100),
            processing_guarantee: Guarantee::ExactlyOnce,
            snapshot_every_records: 50_000,
            snapshot_interval_ms: Duration::from_secs(30),
            instance_id: None,
            state_topic: None,
            transaction_timeout_ms: Duration::from_secs(10),
            http_address: "0.0.0.0:9100".to_owned(),
            anomalies: AnomalySettings::default(),
        }
    }
}

impl ProcessorSettings {
    /// The window and threshold as the pure logic takes them.
    pub fn rules(&self) -> ProcessingRules {
        ProcessingRules {
            window_size: self.window_size,
            threshold: self.threshold,
        }
    }

    /// The changelog topic's name.
    pub fn state_topic(&self) -> String {
        self.state_topic
            .clone()
            .unwrap_or_else(|| format!("{}-window-state", self.group_id))
    }

    /// This replica's name: the configured one, else the host name, else a random one.
    pub fn instance_id(&self) -> String {
        self.instance_id
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("{:08x}", rand_suffix()))
    }

    /// How input records are decoded.
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            default_sensor_id: self.default_sensor_id.clone(),
            max_record_bytes: self.max_record_bytes,
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Consumes temperature readings in a consumer group, keeps a sliding window per sensor and
/// writes averages and alerts to the output topic, unusable records to the dead-letter topic.
///
/// Settings come from, in increasing priority: built-in defaults, the file given by
/// --config, PIPELINE__* environment variables (PIPELINE__PROCESSOR__THRESHOLD=45,
/// PIPELINE__KAFKA__BROKERS=kafka:9092), and these flags.
#[derive(Debug, Parser, Default)]
#[command(name = "processor", version)]
pub struct Cli {
    /// The flags every service has.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Consumer group of the replicas. [default: temperature-processor]
    #[arg(long)]
    pub group_id: Option<String>,
    /// Topic to consume readings from. [default: temperature-readings]
    #[arg(long)]
    pub input_topic: Option<String>,
    /// Topic for alerts and averages. [default: temperature-events]
    #[arg(long)]
    pub output_topic: Option<String>,
    /// Topic for unusable input records. [default: temperature-readings-dlq]
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Readings per sensor window. [default: 10]
    #[arg(long, value_name = "N")]
    pub window_size: Option<u64>,
    /// Alert when a temperature is strictly above this (°C). [default: 40.0]
    #[arg(long, value_name = "CELSIUS", allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// Sensor id for records without sensor_id and key. [default: default]
    #[arg(long, value_name = "ID")]
    pub default_sensor_id: Option<String>,
    /// Largest accepted record value in bytes. [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_record_bytes: Option<u64>,
    /// Most records per processed and committed batch. [default: 50000]
    #[arg(long, value_name = "N")]
    pub batch_max_records: Option<u64>,
    /// Longest a batch collects records before it is committed, ms. [default: 100]
    #[arg(long, value_name = "MS")]
    pub commit_interval_ms: Option<u64>,
    /// exactly_once or at_least_once. [default: exactly_once]
    #[arg(long, value_name = "GUARANTEE")]
    pub processing_guarantee: Option<String>,
    /// Readings per partition between window snapshots in the changelog; 0: every batch.
    /// [default: 50000]
    #[arg(long, value_name = "N")]
    pub snapshot_every_records: Option<u64>,
    /// Longest between two window snapshots of a partition, ms. [default: 30000]
    #[arg(long, value_name = "MS")]
    pub snapshot_interval_ms: Option<u64>,
    /// Stable replica name for the transactional id. [default: host name]
    #[arg(long, value_name = "NAME")]
    pub instance_id: Option<String>,
    /// Window-state changelog topic. [default: <group-id>-window-state]
    #[arg(long)]
    pub state_topic: Option<String>,
    /// Transaction timeout, ms. [default: 10000]
    #[arg(long, value_name = "MS")]
    pub transaction_timeout_ms: Option<u64>,
    /// Address of /metrics, /healthz and /readyz; "" for none. [default: 0.0.0.0:9100]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_address: Option<String>,
    /// Run each sensor's online model: anomaly and prediction events.
    #[arg(long)]
    pub anomalies: bool,
    /// Topic for anomaly and prediction events. [default: temperature-anomalies]
    #[arg(long, value_name = "TOPIC")]
    pub anomalies_topic: Option<String>,
    /// Interval half-width in σ; outside is an outlier. [default: 4.5]
    #[arg(long, value_name = "SIGMAS")]
    pub anomaly_sensitivity: Option<f64>,
    /// Readings a sensor's model learns from before it judges. [default: 30]
    #[arg(long, value_name = "N")]
    pub anomaly_warmup: Option<u64>,
    /// A prediction event every N readings of a sensor; 0: none. [default: 10]
    #[arg(long, value_name = "N")]
    pub prediction_every: Option<u64>,
    /// off, or daily: an offset per hour of the day in the forecast. [default: off]
    #[arg(long, value_name = "SEASONALITY")]
    pub seasonality: Option<String>,
    /// An ONNX model that scores each sensor's window too (with --anomalies). [default: none]
    #[arg(long, value_name = "PATH")]
    pub onnx_model: Option<String>,
    /// Score at or over which the ONNX model flags a reading. [default: 0.5]
    #[arg(long, value_name = "SCORE")]
    pub onnx_threshold: Option<f64>,
}

impl Cli {
    /// Loads and checks the settings: defaults, file, environment, then these flags.
    pub fn load(&self) -> Result<Config, SettingsError> {
        let overrides = self
            .common
            .overrides()
            .set("processor.group_id", self.group_id.clone())
            .set("processor.input_topic", self.input_topic.clone())
            .set("processor.output_topic", self.output_topic.clone())
            .set("processor.dlq_topic", self.dlq_topic.clone())
            .set("processor.window_size", self.window_size)
            .set("processor.threshold", self.threshold)
            .set(
                "processor.default_sensor_id",
                self.default_sensor_id.clone(),
            )
            .set("processor.max_record_bytes", self.max_record_bytes)
            .set("processor.batch_max_records", self.batch_max_records)
            .set("processor.commit_interval_ms", self.commit_interval_ms)
            .set(
                "processor.processing_guarantee",
                self.processing_guarantee.clone(),
            )
            .set(
                "processor.snapshot_every_records",
                self.snapshot_every_records,
            )
            .set("processor.snapshot_interval_ms", self.snapshot_interval_ms)
            .set("processor.instance_id", self.instance_id.clone())
            .set("processor.state_topic", self.state_topic.clone())
            .set(
                "processor.transaction_timeout_ms",
                self.transaction_timeout_ms,
            )
            .set("processor.http_address", self.http_address.clone())
            .set(
                "processor.anomalies.enabled",
                self.anomalies.then_some(true),
            )
            .set("processor.anomalies.topic", self.anomalies_topic.clone())
            .set("processor.anomalies.sensitivity", self.anomaly_sensitivity)
            .set("processor.anomalies.warmup", self.anomaly_warmup)
            .set(
                "processor.anomalies.prediction_every",
                self.prediction_every,
            )
            .set("processor.anomalies.seasonality", self.seasonality.clone())
            .set("processor.anomalies.onnx_model", self.onnx_model.clone())
            .set("processor.anomalies.onnx_threshold", self.onnx_threshold);
        let config: Config = self.common.load(overrides)?;
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Checks the values that deserialization cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.kafka.validate()?;
        let p = &self.processor;
        for (key, value) in [
            ("processor.group_id", &p.group_id),
            ("processor.input_topic", &p.input_topic),
            ("processor.output_topic", &p.output_topic),
            ("processor.dlq_topic", &p.dlq_topic),
        ] {
            if value.is_empty() {
                return Err(SettingsError::invalid(key, "must not be empty"));
            }
        }
        if p.input_topic == p.output_topic || p.input_topic == p.dlq_topic {
            return Err(SettingsError::invalid(
                "processor.input_topic",
                "must differ from processor.output_topic and processor.dlq_topic",
            ));
        }
        if p.window_size == 0 || p.window_size > 100_000 {
            return Err(SettingsError::invalid(
                "processor.window_size",
                "must be between 1 and 100000",
            ));
        }
        if !p.threshold.is_finite() {
            return Err(SettingsError::invalid(
                "processor.threshold",
                "must be a finite number",
            ));
        }
        if p.default_sensor_id.is_empty() || p.default_sensor_id.len() > MAX_SENSOR_ID_BYTES {
            return Err(SettingsError::invalid(
                "processor.default_sensor_id",
                "must be 1 to 128 bytes long",
            ));
        }
        if p.max_record_bytes == 0 {
            return Err(SettingsError::invalid(
                "processor.max_record_bytes",
                "must be > 0",
            ));
        }
        if p.batch_max_records == 0 {
            return Err(SettingsError::invalid(
                "processor.batch_max_records",
                "must be > 0",
            ));
        }
        if p.instance_id.as_deref() == Some("") {
            return Err(SettingsError::invalid(
                "processor.instance_id",
                "must not be empty",
            ));
        }
        let state_topic = p.state_topic();
        if state_topic.is_empty()
            || [&p.input_topic, &p.output_topic, &p.dlq_topic].contains(&&state_topic)
        {
            return Err(SettingsError::invalid(
                "processor.state_topic",
                "must be a topic of its own, not the input, output or dead-letter topic",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(900)).contains(&p.transaction_timeout_ms)
        {
            return Err(SettingsError::invalid(
                "processor.transaction_timeout_ms",
                "must be between 1000 and 900000",
            ));
        }
        if p.commit_interval_ms.is_zero() || p.commit_interval_ms > Duration::from_secs(60) {
            return Err(SettingsError::invalid(
                "processor.commit_interval_ms",
                "must be between 1 and 60000",
            ));
        }
        if p.snapshot_interval_ms.is_zero() {
            return Err(SettingsError::invalid(
                "processor.snapshot_interval_ms",
                "must be > 0",
            ));
        }
        let a = &p.anomalies;
        if a.enabled
            && (a.topic.is_empty()
                || [&p.input_topic, &p.output_topic, &p.dlq_topic, &state_topic]
                    .contains(&&a.topic))
        {
            return Err(SettingsError::invalid(
                "processor.anomalies.topic",
                "must be a topic of its own, not the input, output, dead-letter or state topic",
            ));
        }
        if !a.onnx_model.is_empty() && !a.enabled {
            return Err(SettingsError::invalid(
                "processor.anomalies.onnx_model",
                "needs processor.anomalies.enabled = true (its events go to the anomalies topic)",
            ));
        }
        if !a.onnx_threshold.is_finite() {
            return Err(SettingsError::invalid(
                "processor.anomalies.onnx_threshold",
                "must be a finite number",
            ));
        }
        if let Err((name, message)) = a.model().check() {
            return Err(SettingsError::invalid(
                format!("processor.anomalies.{name}"),
                message,
            ));
        }
        // kafka.properties must leave what the guarantees depend on alone.
        stream_engine::clients::check(&self.kafka, &self.engine())
    }

    /// The engine's settings for the temperature job.
    pub fn engine(&self) -> EngineSettings {
        let p = &self.processor;
        EngineSettings {
            client_name: "processor".to_owned(),
            group_id: p.group_id.clone(),
            input_topic: p.input_topic.clone(),
            output_topics: if p.anomalies.enabled {
                vec![p.output_topic.clone(), p.anomalies.topic.clone()]
            } else {
                vec![p.output_topic.clone()]
            },
            dlq_topic: p.dlq_topic.clone(),
            state_topic: p.state_topic(),
            guarantee: p.processing_guarantee,
            batch_max_records: p.batch_max_records,
            commit_interval: p.commit_interval_ms,
            snapshot_every_records: p.snapshot_every_records,
            snapshot_interval: p.snapshot_interval_ms,
            transaction_timeout: p.transaction_timeout_ms,
            instance_id: p.instance_id(),
            http_address: p.http_address.clone(),
            http_address_file: self.telemetry.http_address_file.clone(),
            kind_header: Some(EVENT_TYPE_HEADER),
            metrics: crate::metrics::NAMES,
        }
    }
}

#[cfg(test)]
mod tests;
