//! The no-install demo: an in-process mock Kafka cluster (librdkafka's, through
//! `rdkafka::mocking`), the simulator and several processor replicas, with a live view of the
//! events. A demo on a mock broker: the tests prove behaviour on the real one.

use std::time::Duration;

use anyhow::Context as _;
use pipeline_runtime::kafka::{Override, TracingContext, client_config};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use sensor_contract::Event;
use tokio_util::sync::CancellationToken;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Sensors simulated.
    pub sensors: u32,
    /// Readings per second in total.
    pub rate: f64,
    /// Processor replicas in the consumer group.
    pub replicas: usize,
    /// Seed of the simulator.
    pub seed: u64,
}

const READINGS: &str = "temperature-readings";
const EVENTS: &str = "temperature-events";
const DEAD_LETTERS: &str = "temperature-readings-dlq";

/// Runs the demo until `shutdown` fires, handing every event the replicas write to `on_event`.
pub async fn run(
    options: &DemoOptions,
    shutdown: CancellationToken,
    mut on_event: impl FnMut(&Event),
) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("starting the mock Kafka cluster")?;
    // The mock cluster has no CreateTopics: the processors' changelog is made here too.
    let state_topic = processor::ProcessorSettings::default().state_topic();
    for (topic, partitions) in [
        (READINGS, 6),
        (EVENTS, 6),
        (DEAD_LETTERS, 3),
        (state_topic.as_str(), 6),
    ] {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("creating {topic}"))?;
    }
    let kafka = KafkaSettings {
        brokers: cluster.bootstrap_servers(),
        ..KafkaSettings::default()
    };

    let mut tasks = tokio::task::JoinSet::new();
    for replica in 0..options.replicas {
        let mut config = processor::Config {
            kafka: kafka.clone(),
            ..Default::default()
        };
        // One transactional id per replica, or they would fence each other.
        config.processor.instance_id = Some(format!("demo-{replica}"));
        // Several replicas in one process: no HTTP endpoints.
        config.processor.http_address = String::new();
        let stop = shutdown.clone();
        tasks.spawn(async move { processor::run(&config, stop).await });
    }
    let mut simulator = sensor_simulator::Config {
        kafka: kafka.clone(),
        ..Default::default()
    };
    simulator.simulator.sensors = options.sensors;
    simulator.simulator.rate = options.rate;
    simulator.simulator.seed = Some(options.seed);
    simulator.simulator.progress_interval_secs = Duration::from_secs(3600);
    simulator.simulator.http_address = String::new();
    let stop = shutdown.clone();
    tasks.spawn(async move { sensor_simulator::run(&simulator, stop).await.map(|_| ()) });

    let viewer: StreamConsumer<TracingContext> = client_config(
        &kafka,
        "demo-viewer",
        &[
            ("group.id", "demo-viewer", Override::Guarded),
            ("auto.offset.reset", "earliest", Override::Allowed),
            ("enable.auto.commit", "false", Override::Guarded),
        ],
    )?
    .create_with_context(TracingContext)
    .context("creating the viewer")?;
    viewer
        .subscribe(&[EVENTS])
        .context("subscribing the viewer")?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            message = viewer.recv() => match message {
                Ok(m) => {
                    if let Some(Ok(event)) = m.payload().map(serde_json::from_slice::<Event>) {
                        on_event(&event);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "viewer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(viewer);
    while let Some(result) = tasks.join_next().await {
        result.context("a demo task panicked")??;
    }
    // Every client is gone: only now may the cluster they talk to go away.
    drop(cluster);
    Ok(())
}

/// One line for the terminal.
pub fn describe(event: &Event) -> String {
    match event {
        Event::Alert(a) => format!(
            "ALERT    {:<12} seq {:>5}  {:>6.2} °C  > {} °C  at {}",
            a.sensor_id, a.seq, a.temperature, a.threshold, a.timestamp
        ),
        Event::Average(a) => format!(
            "average  {:<12} seq {:>5}  {:>6.2} °C  over the last {} readings",
            a.sensor_id, a.seq, a.average, a.window_size
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_demo_shows_alerts_and_averages() {
        let options = DemoOptions {
            sensors: 8,
            rate: 400.0,
            replicas: 3,
            seed: 1,
        };
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(8)).await;
            stop.cancel();
        });
        let (mut alerts, mut averages) = (0, 0);
        run(&options, shutdown, |event| match event {
            Event::Alert(_) => alerts += 1,
            Event::Average(_) => averages += 1,
        })
        .await
        .expect("the demo runs");
        assert!(averages > 100, "{averages} averages");
        assert!(alerts > 0, "{alerts} alerts");
    }

    #[test]
    fn lines_are_readable() {
        let line = describe(&Event::Alert(sensor_contract::Alert {
            sensor_id: "sensor-0001".into(),
            seq: 7,
            temperature: 41.5,
            threshold: 40.0,
            timestamp: "2026-11-22T01:02:03.456Z".into(),
        }));
        assert_eq!(
            line,
            "ALERT    sensor-0001  seq     7   41.50 °C  > 40 °C  at 2026-11-22T01:02:03.456Z"
        );
    }
}
