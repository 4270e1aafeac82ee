//! The pipeline's topics, named uniquely per test: created through the admin API, or by the
//! script compose runs (`PipelineTopics::create_with_script`).

use std::process::Command;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::{repo_root, unique};

/// The topic and group names of one pipeline under test.
#[derive(Debug, Clone)]
pub struct PipelineTopics {
    /// Readings.
    pub input: String,
    /// Alerts and averages.
    pub output: String,
    /// Dead letters.
    pub dlq: String,
    /// The processors' consumer group.
    pub group: String,
}

impl PipelineTopics {
    /// Fresh names for a test called `test`.
    pub fn unique(test: &str) -> Self {
        let id = unique(test);
        Self {
            input: format!("{id}-readings"),
            output: format!("{id}-events"),
            dlq: format!("{id}-dlq"),
            group: format!("{id}-processor"),
        }
    }

    /// Creates the readings and events topics with `partitions` each and the dead-letter topic
    /// with 3, as `scripts/create-topics.sh` lays them out, through the admin API
    /// ([`create_topics`]).
    pub fn create(&self, bootstrap: &str, partitions: u32) {
        create_topics(
            bootstrap,
            &[
                (&self.input, partitions),
                (&self.output, partitions),
                (&self.dlq, 3),
            ],
        );
    }

    /// Creates the topics on `bootstrap` with `scripts/create-topics.sh`, as compose does.
    pub fn create_with_script(&self, bootstrap: &str, partitions: u32) {
        let root = repo_root();
        let output = Command::new(root.join("scripts/create-topics.sh"))
            .arg(bootstrap)
            .env(
                "KAFKA_TOPICS_CMD",
                format!("{} topics", root.join("scripts/kafka.sh").display()),
            )
            .env("INPUT_TOPIC", &self.input)
            .env("OUTPUT_TOPIC", &self.output)
            .env("DLQ_TOPIC", &self.dlq)
            .env("PARTITIONS", partitions.to_string())
            .env("LAYOUT", "temperature")
            .output()
            .expect("running scripts/create-topics.sh");
        assert!(
            output.status.success(),
            "scripts/create-topics.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Command-line flags that point a processor at these topics.
    pub fn processor_args(&self, bootstrap: &str) -> Vec<String> {
        [
            ("--brokers", bootstrap),
            ("--input-topic", &self.input),
            ("--output-topic", &self.output),
            ("--dlq-topic", &self.dlq),
            ("--group-id", &self.group),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
    }
}

/// Creates `topics` (name, partitions) on `bootstrap` in one `CreateTopics` request, with the
/// cluster's default replication (1 on a single broker, 3 on `scripts/kafka.sh cluster`).
///
/// Through the admin API rather than `kafka-topics.sh`: each of that tool's calls starts a JVM
/// (about a CPU-second and two seconds of wall time), and the suite creates some 150 topics.
/// [`PipelineTopics::create_with_script`] keeps `scripts/create-topics.sh` itself under test.
pub fn create_topics(bootstrap: &str, topics: &[(&str, u32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("test admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| {
            let partitions = i32::try_from(*partitions).expect("a partition count");
            NewTopic::new(name, partitions, TopicReplication::Fixed(-1))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics(&new, &options))
        .expect("the CreateTopics request");
    for result in results {
        if let Err((name, code)) = result {
            panic!("creating {name}: {code}");
        }
    }
}

/// The topic and group names of one network-log pipeline under test.
#[derive(Debug, Clone)]
pub struct LogTopics {
    /// Access-log lines, as the gateway writes them.
    pub logs: String,
    /// The first stage's repartitioned requests.
    pub requests: String,
    /// The IP counts.
    pub counts: String,
    /// Dead letters of the gateway and both stages.
    pub dlq: String,
    /// The IP counter's group (its stages add `-lines` and `-counts`).
    pub group: String,
}

impl LogTopics {
    /// Fresh names for a test called `test`.
    pub fn unique(test: &str) -> Self {
        let id = unique(test);
        Self {
            logs: format!("{id}-access-logs"),
            requests: format!("{id}-requests"),
            counts: format!("{id}-ip-counts"),
            dlq: format!("{id}-dlq"),
            group: format!("{id}-job"),
        }
    }

    /// Creates the lines, requests and counts topics with `partitions` each (in that order)
    /// and a one-partition dead-letter topic.
    pub fn create(&self, bootstrap: &str, partitions: [u32; 3]) {
        create_topics(
            bootstrap,
            &[
                (&self.logs, partitions[0]),
                (&self.requests, partitions[1]),
                (&self.counts, partitions[2]),
                (&self.dlq, 1),
            ],
        );
    }

    /// Command-line flags that point the gateway at these topics.
    pub fn gateway_args(&self, bootstrap: &str) -> Vec<String> {
        [
            "--brokers",
            bootstrap,
            "--topic",
            &self.logs,
            "--dlq-topic",
            &self.dlq,
        ]
        .map(String::from)
        .to_vec()
    }

    /// Command-line flags that point `ip-counter` (and `ip-audit`) at these topics, with
    /// 10 s windows and 2 s of allowed lateness.
    pub fn ip_counter_args(&self, bootstrap: &str) -> Vec<String> {
        [
            "--brokers",
            bootstrap,
            "--input-topic",
            &self.logs,
            "--repartition-topic",
            &self.requests,
            "--output-topic",
            &self.counts,
            "--dlq-topic",
            &self.dlq,
            "--group-id",
            &self.group,
            "--window",
            "10",
            "--lateness",
            "2",
        ]
        .map(String::from)
        .to_vec()
    }
}
