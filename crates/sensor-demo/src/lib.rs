//! The no-install demo of the whole system, in one process on an in-process mock Kafka cluster
//! (librdkafka's, through `rdkafka::mocking`):
//!
//! - the temperature pipeline: the simulator (with a few labelled faults injected) and several
//!   processor replicas in one group, each sensor's online model on (anomalies and
//!   predictions);
//! - the network-log pipeline: the log gateway on a local TCP port, a log simulator sending to
//!   it, and the IP-count job (short windows, so that counts show within seconds);
//! - the results: the sink into an SQLite file in a directory of the caller's, and the
//!   dashboard (page, API, live updates) on a local address.
//!
//! A demo on a mock broker: the tests prove behaviour on the real one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use pipeline_runtime::kafka::{Override, TracingContext, client_config};
use pipeline_runtime::rebootstrap::CreateRebootstrapping;
use pipeline_runtime::secret::Secret;
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use sensor_contract::Event;
use sensor_contract::model::ModelEvent;
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
    /// Seed of both simulators.
    pub seed: u64,
    /// Log lines per second the log simulator sends; 0: none (the gateway still listens).
    pub log_rate: f64,
    /// The IP-count job's window.
    pub window: Duration,
    /// The dashboard's address.
    pub dashboard: SocketAddr,
    /// The log gateway's address.
    pub gateway: SocketAddr,
    /// Where the SQLite file goes (the directory must exist).
    pub data_dir: PathBuf,
}

const READINGS: &str = "temperature-readings";
const EVENTS: &str = "temperature-events";
const DEAD_LETTERS: &str = "temperature-readings-dlq";
const ANOMALIES: &str = "temperature-anomalies";

/// What the demo shows in the terminal: an alert or an average, or an anomaly the sensors'
/// models raised.
#[derive(Debug)]
pub enum Seen<'a> {
    /// On `temperature-events`.
    Event(Event<'a>),
    /// An anomaly on `temperature-anomalies` (predictions are on the page only).
    Anomaly(ModelEvent<'a>),
}

/// Fails with a clear message, naming the flag, when `address` cannot be listened on.
pub fn check_free(address: SocketAddr, flag: &str) -> anyhow::Result<()> {
    std::net::TcpListener::bind(address)
        .map(drop)
        .with_context(|| {
            format!(
                "cannot listen on {address} (is it taken?): choose another with {flag} HOST:PORT"
            )
        })
}

/// The SQLite file the demo's results go to.
pub fn database_file(options: &DemoOptions) -> PathBuf {
    options.data_dir.join("results.db")
}

/// Runs the demo until `shutdown` fires (or a part of it fails), handing every alert, average
/// and anomaly the replicas write to `on_seen`.
pub async fn run(
    options: &DemoOptions,
    shutdown: CancellationToken,
    mut on_seen: impl FnMut(&Seen<'_>),
) -> anyhow::Result<()> {
    check_free(options.dashboard, "--dashboard")?;
    check_free(options.gateway, "--gateway")?;
    let cluster = MockCluster::new(1).context("starting the mock Kafka cluster")?;
    let ip_defaults = ip_count::service::IpCountSettings::default();
    let sink_defaults = pg_sink::settings::SinkSettings::default();
    // The mock cluster has no CreateTopics: the jobs' changelogs are made here too.
    let processor_state = processor::ProcessorSettings::default().state_topic();
    let counts_state = format!("{}-counts-state", ip_defaults.group_id);
    for (topic, partitions) in [
        (READINGS, 6),
        (EVENTS, 6),
        (DEAD_LETTERS, 3),
        (ANOMALIES, 6),
        (processor_state.as_str(), 6),
        (ip_defaults.input_topic.as_str(), 3),
        (ip_defaults.repartition_topic.as_str(), 3),
        (counts_state.as_str(), 3),
        (ip_defaults.output_topic.as_str(), 3),
        (ip_defaults.dlq_topic.as_str(), 1),
        (sink_defaults.dlq_topic.as_str(), 1),
    ] {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("creating {topic}"))?;
    }
    let kafka = KafkaSettings {
        brokers: cluster.bootstrap_servers(),
        ..KafkaSettings::default()
    };
    // Several services in one process: none serves /metrics of its own (the dashboard's
    // address is the only one).
    let none = String::new;

    let mut tasks = tokio::task::JoinSet::new();
    for replica in 0..options.replicas {
        let mut config = processor::Config {
            kafka: kafka.clone(),
            ..Default::default()
        };
        // One transactional id per replica, or they would fence each other.
        config.processor.instance_id = Some(format!("demo-{replica}"));
        config.processor.http_address = none();
        config.processor.anomalies.enabled = true;
        // A forecast after every reading, so that the page draws each reading against the band.
        config.processor.anomalies.prediction_every = 1;
        let stop = shutdown.clone();
        tasks.spawn(async move { processor::run(&config, stop).await.context("a processor") });
    }
    let mut simulator = sensor_simulator::Config {
        kafka: kafka.clone(),
        ..Default::default()
    };
    simulator.simulator.sensors = options.sensors;
    simulator.simulator.rate = options.rate;
    simulator.simulator.seed = Some(options.seed);
    simulator.simulator.progress_interval_secs = Duration::from_secs(3600);
    simulator.simulator.http_address = none();
    // A few labelled faults, so that the models have something to find: about one per sensor
    // every 25 s at the default rate.
    simulator.simulator.faults.rate = 4.0;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        sensor_simulator::run(&simulator, stop)
            .await
            .map(|_| ())
            .context("the sensor simulator")
    });

    let mut gateway = log_gateway::Config {
        kafka: kafka.clone(),
        ..Default::default()
    };
    gateway.gateway.listen_address = options.gateway.to_string();
    gateway.gateway.http_address = none();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        log_gateway::run(&gateway, stop)
            .await
            .map(|_| ())
            .context("the log gateway")
    });
    let mut counter = ip_count::service::Config {
        kafka: kafka.clone(),
        ..Default::default()
    };
    counter.ip_count.window_secs = options.window;
    counter.ip_count.lateness_secs = Duration::from_secs(1);
    counter.ip_count.instance_id = Some("demo".to_owned());
    counter.ip_count.http_address = none();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        ip_count::service::run(&counter, stop)
            .await
            .context("the IP counter")
    });

    let database_url = Secret::new(format!("sqlite://{}", database_file(options).display()));
    let mut sink = pg_sink::Config {
        kafka: kafka.clone(),
        ..Default::default()
    };
    sink.pg_sink.database_url = database_url.clone();
    sink.pg_sink.http_address = none();
    sink.pg_sink.anomalies_topic = ANOMALIES.to_owned();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        pg_sink::run(&sink, stop)
            .await
            .map(|_| ())
            .context("the results sink")
    });
    let mut board = dashboard::Config::default();
    board.dashboard.database_url = database_url;
    board.dashboard.http_address = options.dashboard.to_string();
    let stop = shutdown.clone();
    tasks.spawn(async move { dashboard::run(&board, stop).await.context("the dashboard") });

    if options.log_rate > 0.0 {
        let (gateway, rate, seed) = (options.gateway, options.log_rate, options.seed);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            send_logs(gateway, rate, seed, stop)
                .await
                .context("the log simulator")
        });
    }

    let viewer: StreamConsumer<TracingContext> = client_config(
        &kafka,
        "demo-viewer",
        &[
            ("group.id", "demo-viewer", Override::Guarded),
            ("auto.offset.reset", "earliest", Override::Allowed),
            ("enable.auto.commit", "false", Override::Guarded),
        ],
    )?
    .create_rebootstrapping(TracingContext::default())
    .context("creating the viewer")?;
    viewer
        .subscribe(&[EVENTS, ANOMALIES])
        .context("subscribing the viewer")?;
    let mut failure = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // A part that ends before the stop failed: stop the rest and say which.
            Some(ended) = tasks.join_next() => {
                let error = match ended {
                    Ok(Ok(())) => anyhow::anyhow!("a part of the demo stopped early"),
                    Ok(Err(error)) => error,
                    Err(panic) => anyhow::anyhow!("a part of the demo panicked: {panic}"),
                };
                failure = Some(error);
                shutdown.cancel();
                break;
            }
            message = viewer.recv() => match message {
                Ok(m) => {
                    let payload = m.payload().unwrap_or_default();
                    if m.topic() == ANOMALIES {
                        if let Ok(event @ ModelEvent::Anomaly { .. }) = serde_json::from_slice(payload) {
                            on_seen(&Seen::Anomaly(event));
                        }
                    } else if let Ok(event) = serde_json::from_slice::<Event>(payload) {
                        on_seen(&Seen::Event(event));
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
        let outcome = result.context("a demo task panicked").and_then(|r| r);
        if let (Err(error), None) = (outcome, &failure) {
            failure = Some(error);
        }
    }
    // Every client is gone: only now may the cluster they talk to go away.
    drop(cluster);
    failure.map_or(Ok(()), Err)
}

/// Sends seeded access-log lines, timed now, to the gateway until `stop`.
async fn send_logs(
    gateway: SocketAddr,
    rate: f64,
    seed: u64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut generator = log_simulator::Generator::new(
        seed,
        log_simulator::Shape::new(200, 0.01, now_ms, 1000.0 / rate),
    )?;
    // The gateway starts beside this task: wait for it to listen.
    let mut tries = 0;
    while tokio::net::TcpStream::connect(gateway).await.is_err() {
        tries += 1;
        anyhow::ensure!(tries < 100, "the gateway at {gateway} never listened");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = stop.cancelled() => return Ok(()),
        }
    }
    let sending = log_simulator::Sending {
        gateway: gateway.to_string(),
        rate,
        count: 0,
        connections: 2,
        syslog: false,
    };
    log_simulator::send(&mut generator, &sending, &stop).await?;
    Ok(())
}

/// One line for the terminal.
pub fn describe(seen: &Seen<'_>) -> String {
    let event = match seen {
        Seen::Event(event) => event,
        Seen::Anomaly(ModelEvent::Anomaly {
            sensor_id,
            seq,
            kind,
            score,
            temperature,
            expected,
            low,
            high,
            ..
        }) => {
            return format!(
                "ANOMALY  {sensor_id:<12} seq {seq:>5}  {temperature:>6.2} °C  {kind}, score {score:.1} (expected {expected:.2}, {low:.2} to {high:.2})"
            );
        }
        Seen::Anomaly(other) => return format!("{other:?}"),
    };
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
        let dir = tempfile::tempdir().expect("a temporary directory");
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
        };
        let options = DemoOptions {
            sensors: 8,
            rate: 400.0,
            replicas: 3,
            seed: 1,
            log_rate: 0.0,
            window: Duration::from_secs(5),
            dashboard: free(),
            gateway: free(),
            data_dir: dir.path().to_owned(),
        };
        // Until enough is seen, or a minute: a busy machine (the whole suite beside it) starts
        // the demo's many parts slower than an idle one.
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stop.cancel();
        });
        let (mut alerts, mut averages) = (0, 0);
        let enough = shutdown.clone();
        run(&options, shutdown, |seen| {
            match seen {
                Seen::Event(Event::Alert(_)) => alerts += 1,
                Seen::Event(Event::Average(_)) => averages += 1,
                Seen::Anomaly(_) => {}
            }
            if averages > 100 && alerts > 0 {
                enough.cancel();
            }
        })
        .await
        .expect("the demo runs");
        assert!(averages > 100, "{averages} averages");
        assert!(alerts > 0, "{alerts} alerts");
    }

    #[test]
    fn lines_are_readable() {
        let line = describe(&Seen::Event(Event::Alert(sensor_contract::Alert {
            sensor_id: "sensor-0001".into(),
            seq: 7,
            temperature: 41.5,
            threshold: 40.0,
            timestamp: "2026-11-22T01:02:03.456Z".into(),
        })));
        assert_eq!(
            line,
            "ALERT    sensor-0001  seq     7   41.50 °C  > 40 °C  at 2026-11-22T01:02:03.456Z"
        );
        let line = describe(&Seen::Anomaly(ModelEvent::Anomaly {
            sensor_id: "sensor-0002".into(),
            seq: 120,
            kind: "outlier".into(),
            score: 7.25,
            temperature: 33.1,
            expected: 21.05,
            low: 18.5,
            high: 23.6,
            timestamp: "2026-11-22T01:02:03.456Z".into(),
        }));
        assert_eq!(
            line,
            "ANOMALY  sensor-0002  seq   120   33.10 °C  outlier, score 7.2 (expected 21.05, 18.50 to 23.60)"
        );
    }
}
