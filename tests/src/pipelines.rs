//! The temperature pipeline under one guarantee, as the tests that hurt it run it: its own
//! topics, three processor replicas under a [`Replicas`] supervisor, a simulator publishing
//! throughout, and at the end `sensor-audit` over what came out (the chaos and broker-bounce
//! tests).

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::kafka_io::{committed_offsets, lag, read_topic, wait_for_group};
use crate::service::{Service, TRACE_COMMITS, binary, simulator_args};
use crate::supervisor::Replicas;
use crate::topics::PipelineTopics;
use stream_engine::codec::{CHECKPOINT_KEY, WRITER_HEADER};

/// Replicas of each pipeline.
pub const REPLICAS: usize = 3;

/// One guarantee's pipeline.
pub struct TemperaturePipeline {
    /// `exactly_once` or `at_least_once`.
    pub guarantee: &'static str,
    /// Its topics and group.
    pub topics: PipelineTopics,
    /// Its processor replicas.
    pub replicas: Replicas,
    /// Its simulator, publishing until [`TemperaturePipeline::stop_simulator`].
    pub simulator: Service,
}

/// What `sensor-audit` said of a pipeline's output.
pub struct Audit {
    /// Its JSON report.
    pub report: serde_json::Value,
    /// How it exited.
    pub status: ExitStatus,
    /// Readings in the input topic.
    pub readings: usize,
}

impl TemperaturePipeline {
    /// Creates topics named after `test` and the guarantee (6 partitions), starts the replicas,
    /// waits until all are in the group (their logs shown if not), then starts the simulator
    /// (60 sensors, `rate` readings a second, `seed`).
    pub fn start(
        bootstrap: &str,
        test: &str,
        guarantee: &'static str,
        seed: &str,
        rate: &str,
    ) -> Self {
        let topics = PipelineTopics::unique(&format!("{test}-{}", guarantee.replace('_', "-")));
        // The script compose runs, with the cluster's defaults in the bounce tests.
        topics.create_with_script(bootstrap, 6);
        let (replica_topics, replica_bootstrap) = (topics.clone(), bootstrap.to_owned());
        let mut replicas = Replicas::new(REPLICAS, move |i| {
            let mut args = replica_topics.processor_args(&replica_bootstrap);
            args.extend(["--instance-id".into(), format!("replica-{i}")]);
            args.extend(["--processing-guarantee".into(), guarantee.into()]);
            Service::processor_with_env(&args, &[("RUST_LOG", TRACE_COMMITS)])
        });
        for i in 0..REPLICAS {
            replicas.start(i);
        }
        if let Err(failure) = std::panic::catch_unwind(|| {
            wait_for_group(bootstrap, &topics.group, REPLICAS, Duration::from_secs(90))
        }) {
            for replica in replicas.all() {
                eprintln!("{}", replica.log_tail());
            }
            std::panic::resume_unwind(failure);
        }
        let simulator = Service::simulator(&simulator_args(
            bootstrap,
            &topics.input,
            &["--sensors", "60", "--rate", rate, "--seed", seed],
        ));
        Self {
            guarantee,
            topics,
            replicas,
            simulator,
        }
    }

    /// Stops the simulator, which exits 0 only when every reading it sent was acknowledged.
    pub fn stop_simulator(&mut self) {
        let (status, _) = self.simulator.terminate(Duration::from_secs(90));
        assert!(
            status.is_some_and(|s| s.success()),
            "{}: the simulator lost readings\n{}",
            self.guarantee,
            self.simulator.log_tail()
        );
    }

    /// Waits until the group has committed the whole input, restarting replicas that exit.
    pub fn wait_caught_up(&mut self, bootstrap: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while lag(bootstrap, &self.topics.group, &self.topics.input) > 0 {
            self.replicas.supervise();
            assert!(
                Instant::now() < deadline,
                "{}: the replicas did not catch up within {} s",
                self.guarantee,
                timeout.as_secs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Prints the evidence of an audit that found events missing: for each input partition
    /// of the missing events (`report["missing_events"]`), the group's committed offset and
    /// the committed checkpoints of the changelog whose input ranges come near them, with the
    /// replica and producer that wrote each. Whoever claimed the missing readings' offsets
    /// without producing their events is named there.
    pub fn print_checkpoints_near_missing(&self, bootstrap: &str, report: &serde_json::Value) {
        const AROUND: i64 = 40;
        let mut near: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
        for event in report["missing_events"].as_array().into_iter().flatten() {
            let (Some(partition), Some(offset)) =
                (event["partition"].as_i64(), event["offset"].as_i64())
            else {
                continue;
            };
            let range = near.entry(partition).or_insert((offset, offset));
            *range = (range.0.min(offset), range.1.max(offset));
        }
        if near.is_empty() {
            return;
        }
        let committed = committed_offsets(bootstrap, &self.topics.group, &self.topics.input);
        let state_topic = format!("{}-window-state", self.topics.group);
        let changelog = read_topic(bootstrap, &state_topic);
        for (&partition, &(low, high)) in &near {
            eprintln!(
                "{}: input partition {partition}: missing readings at offsets {low}..={high}, \
                 committed offset {:?}; its changelog's checkpoints near them (changelog \
                 offset, writer, checkpoint):",
                self.guarantee,
                committed.get(&(partition as i32))
            );
            let window = (low - AROUND)..=(high + AROUND);
            let mut shown = 0;
            for record in changelog
                .iter()
                .filter(|r| i64::from(r.partition) == partition)
            {
                let Some(value) = record
                    .payload
                    .as_deref()
                    .filter(|_| record.key.as_deref() == Some(CHECKPOINT_KEY))
                else {
                    continue;
                };
                let checkpoint: serde_json::Value =
                    serde_json::from_slice(value).unwrap_or_default();
                let touches = ["from_offset", "input_offset", "next_offset"]
                    .iter()
                    .filter_map(|k| checkpoint[k].as_i64())
                    .any(|o| window.contains(&o))
                    || checkpoint["snapshot"]["next_offset"]
                        .as_i64()
                        .is_some_and(|o| window.contains(&o));
                if !touches || shown >= 150 {
                    continue;
                }
                shown += 1;
                let writer = record
                    .headers
                    .iter()
                    .find(|(k, _)| k == WRITER_HEADER)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                eprintln!("  @{} {writer}: {checkpoint}", record.offset);
            }
        }
    }

    /// Runs `sensor-audit` over the pipeline's topics (`--allow-duplicates` for
    /// `at_least_once`).
    pub fn audit(&self, bootstrap: &str) -> Audit {
        let mut audit = Command::new(binary("sensor-audit"));
        audit
            .args(self.topics.processor_args(bootstrap))
            .arg("--json")
            .env_remove("PIPELINE_CONFIG");
        if self.guarantee == "at_least_once" {
            audit.arg("--allow-duplicates");
        }
        let output = audit.output().expect("running sensor-audit");
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "audit output ({e}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        Audit {
            report,
            status: output.status,
            readings: read_topic(bootstrap, &self.topics.input).len(),
        }
    }
}
