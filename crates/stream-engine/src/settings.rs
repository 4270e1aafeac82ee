//! What the engine needs to know to run a job: topics, group, guarantee, batching.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::metrics::MetricNames;

/// The delivery guarantee of a job's outputs, and how a batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Kafka transactions: the batch's outputs, state changes and input offsets commit
    /// together; `read_committed` readers see every output exactly once.
    #[default]
    ExactlyOnce,
    /// The batch's outputs are acknowledged, then its state, before its offsets are stored
    /// for commit: after a crash outputs may repeat, never go missing, and state never applies
    /// an input twice.
    AtLeastOnce,
}

/// How the engine runs a job.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Prefix of the Kafka client ids and of the log lines (`processor`).
    pub client_name: String,
    /// Consumer group; replicas with the same group share the input partitions.
    pub group_id: String,
    /// The input topic.
    pub input_topic: String,
    /// The output topics, by the index a job emits to.
    pub output_topics: Vec<String>,
    /// Where unusable input goes, with the reason in headers.
    pub dlq_topic: String,
    /// The compacted state changelog, co-partitioned with the input; created if missing.
    pub state_topic: String,
    /// The delivery guarantee.
    pub guarantee: Guarantee,
    /// Most records per batch.
    pub batch_max_records: usize,
    /// Longest a batch collects records.
    pub commit_interval: Duration,
    /// Records applied to a partition between two snapshots of its changed keys in the
    /// changelog (each batch writes a checkpoint only); 0: every batch. At most this many
    /// records per partition are replayed on restore.
    pub snapshot_every_records: u64,
    /// Longest between two snapshots of a partition that has records.
    pub snapshot_interval: Duration,
    /// Longest a transaction may stay open before the broker aborts it.
    pub transaction_timeout: Duration,
    /// This replica's stable name; the transactional id is `<group_id>-<instance_id>`.
    pub instance_id: String,
    /// Address of `/metrics`, `/healthz` and `/readyz`; empty: none.
    pub http_address: String,
    /// File the bound HTTP address is written to, if any.
    pub http_address_file: Option<PathBuf>,
    /// Header naming each output's kind (`event-type`), if any.
    pub kind_header: Option<&'static str>,
    /// The metric names the engine publishes under.
    pub metrics: MetricNames,
}

impl EngineSettings {
    /// The transactional id: `<group_id>-<instance_id>`, one per replica, fenced by the group
    /// generation (KIP-447).
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id)
    }

    /// The Kafka client id: `<client_name>-<instance_id>`.
    pub fn client_id(&self) -> String {
        format!("{}-{}", self.client_name, self.instance_id)
    }
}
