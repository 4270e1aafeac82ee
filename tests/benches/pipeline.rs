//! The performance benchmark, on a real broker it starts itself (`scripts/bench.sh`; not part
//! of the test command). Asserts nothing; prints one table and writes it as JSON.
//!
//! 1. Ceiling: a passthrough consumer → producer in this process, with the processor's own
//!    client configuration (`stream_engine::clients::{consumer_config, producer_config}`) and batch
//!    loop shape (a batch takes the records ready, up to 10 000; outputs acknowledged, offsets
//!    stored), copying each record to the output topic: no parsing, no windows.
//! 2. Throughput: the release processor over a pre-loaded topic (6 partitions, seeded
//!    simulator readings), from the first replica ready (assigned and restored) to zero lag,
//!    per guarantee, with 1 and 2 replicas: readings/s, CPU-seconds per million readings and
//!    peak resident memory (from /proc); start-up time apart. The ceiling counts from its
//!    first record.
//! 3. Latency: the simulator at half the measured `at_least_once` throughput; an output
//!    consumer (read_committed) takes each event's reading timestamp from the moment it
//!    receives it: p50, p99, p99.9, max, per guarantee.
//! 4. Scale of state: peak and final resident memory with 100 000 and 1 000 000 sensors.
//! 5. Hot path: decode → window → encode per reading on one core, no Kafka
//!    (`processor::hot_path`, the loop `cargo bench -p processor --bench hot_path` measures).
//!
//! 6. Kafka Streams: the same job on Kafka Streams 4.x (`bench/kafka-streams`), both
//!    guarantees, same topic, same measures.
//!
//! Throughput runs are repeated BENCH_RUNS times (3) in alternation; medians and ranges.
//! Sizes: BENCH_READINGS (3 000 000), BENCH_SENSORS (10 000), BENCH_LATENCY_SECS (15),
//! BENCH_STATE_SENSORS ("100000,1000000"); BENCH_STREAMS=0 leaves Kafka Streams out;
//! BENCH_PROCESSOR_ARGS adds processor flags; BENCH_ALSO_ARGS runs one more processor series
//! per guarantee with these flags, in the same rounds, and the latency runs once more with
//! them; BENCH_JSON names the JSON file (target/bench/pipeline.json); BENCH_LATENCY_ONLY=<readings/s>
//! runs only the latency runs, at half and a tenth of that rate (two builds compared at the same
//! rates; BENCH_LATENCY_REPLICAS replicas, default 1). BENCH_CURVE=1 (`scripts/bench.sh latency`) runs only the latency–throughput curve
//! instead ([`curve`]). BENCH_STATE_ONLY=1 runs only the scale of state (4.).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::lag;
use e2e_tests::kafka_streams::StreamsApp;
use e2e_tests::service::{Service, cpu_seconds, http_get, scrape, simulator_args, wait_ready};
use e2e_tests::topics::PipelineTopics;
use e2e_tests::{repo_root, unique};
use futures::FutureExt as _;
use processor::hot_path::{HotPath, NaiveLoop, sample_records};
use processor::{Config, Guarantee};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::BaseRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use stream_engine::clients::{consumer_config, producer_config};
use stream_engine::deliveries::{Deliveries, EngineProducer, deliver_now, enqueue};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The processor's histograms a latency run reports, by stage: the whole (a reading's Kafka
/// timestamp to its outputs committed, per reading) and its three parts (per batch): the wait
/// before processing (the batch's oldest reading), processing, and the commit.
const STAGES: [(&str, &str); 4] = [
    ("end_to_end", processor::metrics::END_TO_END_SECONDS),
    ("input_wait", processor::metrics::INPUT_WAIT_SECONDS),
    ("processing", processor::metrics::PROCESSING_SECONDS),
    ("commit", processor::metrics::COMMIT_SECONDS),
];

/// Histograms by stage: (bucket bound in s, cumulative count).
type Histograms = HashMap<&'static str, Vec<(f64, f64)>>;

/// The benchmark's broker process, for its CPU per run.
static BROKER_PID: OnceLock<u32> = OnceLock::new();

/// CPU-seconds the broker has used so far (0 if unknown).
/// Starts the benchmark's own broker and notes its pid for [`broker_cpu`].
fn start_broker() -> PrivateBroker {
    let broker = PrivateBroker::new(free_port());
    broker.start();
    if let Some(pid) = std::fs::read_to_string(broker.dir().join("pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        let _ = BROKER_PID.set(pid);
    }
    broker
}

fn broker_cpu() -> f64 {
    BROKER_PID.get().map_or(0.0, |pid| cpu_seconds(*pid))
}

/// BENCH_PROCESSOR_ARGS: more flags for every processor of the run, split on whitespace (to
/// compare settings on the same day: `--snapshot-every-records 0` writes state every batch).
fn extra_processor_args() -> Vec<String> {
    std::env::var("BENCH_PROCESSOR_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A `Vm*:` line of /proc/<pid>/status, in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "memory_gib": (mem_gib * 10.0).round() / 10.0,
    })
}

/// Pre-loads `topics.input` with `count` seeded readings from `sensors` sensors.
fn preload(bootstrap: &str, topics: &PipelineTopics, count: u64, sensors: u64) -> f64 {
    let started = Instant::now();
    let (count, sensors) = (count.to_string(), sensors.to_string());
    let args = simulator_args(
        bootstrap,
        &topics.input,
        &[
            "--count",
            &count,
            "--rate",
            "0",
            "--sensors",
            &sensors,
            "--seed",
            "1",
        ],
    );
    Service::simulator(&args).wait_success(Duration::from_secs(900));
    started.elapsed().as_secs_f64()
}

/// Waits until `group` has committed the whole input topic; `check` panics if a process of
/// the run has died.
fn wait_for_zero_lag(bootstrap: &str, group: &str, topic: &str, mut check: impl FnMut()) {
    let started = Instant::now();
    while lag(bootstrap, group, topic) > 0 {
        check();
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "did not finish in 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[derive(Debug, Clone)]
struct Run {
    name: String,
    readings: u64,
    /// From the first record processed (the processor ready: partitions assigned and
    /// restored) to zero lag.
    seconds: f64,
    /// From start to ready: process start, topic checks, group join, restore.
    startup_seconds: f64,
    cpu_seconds: f64,
    /// The broker's CPU over the same span.
    broker_cpu_seconds: f64,
    peak_mib: Option<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.readings as f64 / self.seconds
    }

    fn cpu_per_million(&self) -> f64 {
        self.cpu_seconds / (self.readings as f64 / 1e6)
    }

    fn broker_cpu_per_million(&self) -> f64 {
        self.broker_cpu_seconds / (self.readings as f64 / 1e6)
    }

    fn to_json(&self, ceiling: f64) -> Value {
        json!({
            "name": self.name,
            "readings": self.readings,
            "seconds": round(self.seconds, 2),
            "startup_seconds": round(self.startup_seconds, 2),
            "readings_per_second": self.rate().round(),
            "vs_ceiling": round(self.rate() / ceiling, 3),
            "cpu_seconds_per_million": round(self.cpu_per_million(), 2),
            "broker_cpu_seconds_per_million": round(self.broker_cpu_per_million(), 2),
            "peak_rss_mib": self.peak_mib.map(|m| round(m, 1)),
        })
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// The passthrough: the processor's client set-up and batch shape, no processing.
fn passthrough(bootstrap: &str, topics: &PipelineTopics, readings: u64) -> Run {
    let mut config = Config::default();
    config.kafka.brokers = bootstrap.to_owned();
    config.processor.group_id = unique("bench-ceiling");
    config.processor.input_topic = topics.input.clone();
    config.processor.processing_guarantee = Guarantee::AtLeastOnce;
    config.processor.instance_id = Some("passthrough".to_owned());
    let group = config.processor.group_id.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let first = Arc::new(OnceLock::new());
    let cpu_before = cpu_seconds(std::process::id());
    let broker_before = broker_cpu();
    let started = Instant::now();
    let worker = {
        let (config, stop, first, output) = (
            config.clone(),
            stop.clone(),
            first.clone(),
            topics.output.clone(),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(copy_records(&config, &output, &stop, &first));
        })
    };
    wait_for_zero_lag(bootstrap, &group, &topics.input, || {});
    let first = first.get().copied().unwrap_or(started);
    let seconds = first.elapsed().as_secs_f64();
    let cpu = cpu_seconds(std::process::id()) - cpu_before;
    let broker = broker_cpu() - broker_before;
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("passthrough thread");
    Run {
        name: "ceiling (passthrough)".into(),
        readings,
        seconds,
        startup_seconds: (first - started).as_secs_f64(),
        cpu_seconds: cpu,
        broker_cpu_seconds: broker,
        peak_mib: None,
    }
}

async fn copy_records(
    config: &Config,
    output: &str,
    stop: &AtomicBool,
    first_record: &OnceLock<Instant>,
) {
    let engine = config.engine();
    let consumer: StreamConsumer = consumer_config(&config.kafka, &engine)
        .expect("consumer settings")
        .create()
        .expect("consumer");
    // The engine's producer: delivery reports counted in its callback.
    let producer: EngineProducer = producer_config(&config.kafka, &engine)
        .expect("producer settings")
        .create_with_context(Deliveries::default())
        .expect("producer");
    consumer
        .subscribe(&[config.processor.input_topic.as_str()])
        .expect("subscribe");
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // As the processor batches: wait for a first record, take what else is ready.
        let mut next: HashMap<i32, i64> = HashMap::new();
        let Ok(first) = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await
        else {
            continue;
        };
        first_record.get_or_init(Instant::now);
        let mut message = Some(first);
        let mut taken = 0;
        while let Some(Ok(m)) = message {
            let record = BaseRecord::<[u8], [u8], ()>::to(output)
                .payload(m.payload().unwrap_or_default())
                .key(m.key().unwrap_or_default());
            enqueue(&producer, record, &mut sent, "a copy")
                .await
                .expect("enqueueing a copy");
            next.insert(m.partition(), m.offset() + 1);
            taken += 1;
            message = if taken < config.processor.batch_max_records {
                consumer.recv().now_or_never()
            } else {
                None
            };
        }
        deliver_now(&producer, sent)
            .await
            .expect("passthrough delivery failed");
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(
                &config.processor.input_topic,
                partition,
                Offset::Offset(offset),
            )
            .expect("offset list");
        }
        if list.count() > 0 {
            let _ = consumer.store_offsets(&list);
        }
    }
}

/// `replicas` release processors from the start of the topic to zero lag.
/// Starts `replicas` release processors on `topics` under `guarantee`, with the benchmark's
/// and `also`'s flags.
fn start_replicas(
    bootstrap: &str,
    topics: &PipelineTopics,
    guarantee: &str,
    replicas: usize,
    also: &[String],
) -> Vec<Service> {
    (0..replicas)
        .map(|i| {
            let mut args = topics.processor_args(bootstrap);
            args.extend(extra_processor_args());
            args.extend(also.iter().cloned());
            args.extend([
                "--processing-guarantee".into(),
                guarantee.into(),
                "--instance-id".into(),
                format!("bench-{i}"),
            ]);
            Service::processor(&args)
        })
        .collect()
}

fn throughput(
    bootstrap: &str,
    topics: &PipelineTopics,
    readings: u64,
    guarantee: &str,
    replicas: usize,
    also: &[String],
) -> Run {
    let mut run = topics.clone();
    run.group = unique(&format!("bench-{}", guarantee.replace('_', "-")));
    let broker_before = broker_cpu();
    let started = Instant::now();
    let mut processors = start_replicas(bootstrap, &run, guarantee, replicas, also);
    // Throughput counts from the first replica ready (partitions assigned and restored; no
    // record is processed before), so start-up is reported apart, not averaged in.
    let addresses: Vec<String> = processors
        .iter()
        .map(|p| p.http_address(Duration::from_secs(30)))
        .collect();
    while !addresses.iter().any(|a| http_get(a, "/readyz").0 == 200) {
        for processor in &mut processors {
            assert!(processor.is_running(), "{}", processor.log_tail());
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no replica became ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready = Instant::now();
    wait_for_zero_lag(bootstrap, &run.group, &run.input, || {
        for processor in &mut processors {
            assert!(processor.is_running(), "{}", processor.log_tail());
        }
    });
    let seconds = ready.elapsed().as_secs_f64();
    let broker = broker_cpu() - broker_before;
    let cpu = processors.iter().map(|p| cpu_seconds(p.pid())).sum();
    let peak = processors
        .iter()
        .map(|p| memory_mib(p.pid(), "VmHWM:"))
        .fold(0.0, f64::max);
    for processor in &mut processors {
        processor.terminate(Duration::from_secs(30));
    }
    if replicas == 1 && std::env::var("BENCH_RESTORE").is_ok_and(|v| v == "1") {
        restart_cost(&run, bootstrap, guarantee, also);
    }
    Run {
        name: format!(
            "{guarantee}, {replicas} replica{}{}",
            if replicas > 1 { "s" } else { "" },
            if also.is_empty() {
                String::new()
            } else {
                format!(", {}", also.join(" "))
            }
        ),
        readings,
        seconds,
        startup_seconds: (ready - started).as_secs_f64(),
        cpu_seconds: cpu,
        broker_cpu_seconds: broker,
        peak_mib: Some(peak),
    }
}

/// What a restart costs after a run (BENCH_RESTORE=1): a new processor on the same group
/// restores the windows (to ready), then replays the readings since each partition's snapshot
/// without emitting them (counted by its consumed-readings metric until it stops moving).
fn restart_cost(run: &PipelineTopics, bootstrap: &str, guarantee: &str, also: &[String]) {
    let mut args = run.processor_args(bootstrap);
    args.extend(extra_processor_args());
    args.extend(also.iter().cloned());
    args.extend([
        "--processing-guarantee".into(),
        guarantee.into(),
        "--instance-id".into(),
        "bench-restart".into(),
    ]);
    let started = Instant::now();
    let mut processor = Service::processor(&args);
    let address = processor.http_address(Duration::from_secs(30));
    wait_ready(&address);
    let ready = started.elapsed().as_secs_f64();
    let consumed = || {
        e2e_tests::service::scrape(&address)
            .get("sensor_readings_consumed_total")
            .copied()
            .unwrap_or(0.0)
    };
    let (mut last, mut moved) = (consumed(), Instant::now());
    while moved.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        let now = consumed();
        if now != last {
            (last, moved) = (now, Instant::now());
        }
    }
    let replayed_by = (moved - started).as_secs_f64();
    processor.terminate(Duration::from_secs(30));
    eprintln!(
        "  restart ({guarantee} {also:?}): ready (windows restored) after {ready:.2} s, {last:.0} readings replayed by {replayed_by:.2} s"
    );
}

/// The same job on Kafka Streams (`bench/kafka-streams`, built by `scripts/bench.sh`), one
/// JVM, from the start of the topic to zero lag: readings/s from the application's RUNNING
/// state (assigned, restored) and CPU of the whole JVM, start-up included.
fn kafka_streams(bootstrap: &str, topics: &PipelineTopics, readings: u64, guarantee: &str) -> Run {
    let application = unique(&format!("bench-streams-{}", guarantee.replace('_', "-")));
    let mut app = StreamsApp::start(
        "TemperatureStreams",
        &[
            bootstrap,
            &topics.input,
            &topics.output,
            &application,
            guarantee,
        ],
    );
    let broker_before = broker_cpu();
    wait_for_zero_lag(bootstrap, &application, &topics.input, || app.check_alive());
    let seconds = app.ready.elapsed().as_secs_f64();
    let broker = broker_cpu() - broker_before;
    let cpu = app.cpu_seconds();
    let peak = memory_mib(app.pid(), "VmHWM:");
    let startup_seconds = (app.ready - app.started).as_secs_f64();
    app.stop();
    Run {
        name: format!("Kafka Streams {guarantee}"),
        readings,
        seconds,
        startup_seconds,
        cpu_seconds: cpu,
        broker_cpu_seconds: broker,
        peak_mib: Some(peak),
    }
}

/// Repeated runs of one configuration: medians and ranges.
#[derive(Debug, Default)]
struct Series {
    runs: Vec<Run>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Series {
    fn name(&self) -> &str {
        self.runs.first().map_or("?", |r| r.name.as_str())
    }

    fn rates(&self) -> Vec<f64> {
        self.runs.iter().map(Run::rate).collect()
    }

    fn cpus(&self) -> Vec<f64> {
        self.runs.iter().map(Run::cpu_per_million).collect()
    }

    fn rate(&self) -> f64 {
        median(self.rates())
    }

    fn cpu_per_million(&self) -> f64 {
        median(self.cpus())
    }

    fn broker_cpu_per_million(&self) -> f64 {
        median(self.runs.iter().map(Run::broker_cpu_per_million).collect())
    }

    fn to_json(&self, ceiling: f64) -> Value {
        let range = |v: Vec<f64>| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            json!([round(min, 2), round(max, 2)])
        };
        json!({
            "name": self.name(),
            "runs": self.runs.iter().map(|r| r.to_json(ceiling)).collect::<Vec<_>>(),
            "median_readings_per_second": self.rate().round(),
            "range_readings_per_second": range(self.rates()),
            "median_vs_ceiling": round(self.rate() / ceiling, 3),
            "median_cpu_seconds_per_million": round(self.cpu_per_million(), 2),
            "median_broker_cpu_seconds_per_million": round(self.broker_cpu_per_million(), 2),
            "range_cpu_seconds_per_million": range(self.cpus()),
        })
    }

    fn print(&self, ceiling: f64) {
        let (rates, cpus) = (self.rates(), self.cpus());
        let span = |v: &[f64], digits: usize| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{min:.digits$}-{max:.digits$}")
        };
        let peak = self
            .runs
            .iter()
            .filter_map(|r| r.peak_mib)
            .fold(f64::NAN, f64::max);
        println!(
            "{:<32} {:>9.0} {:>17} {:>6.2} {:>7.2} {:>11} {:>6} {:>6.1} {:>8.2}",
            self.name(),
            self.rate(),
            span(&rates, 0),
            self.rate() / ceiling,
            self.cpu_per_million(),
            span(&cpus, 2),
            if peak.is_nan() {
                "-".into()
            } else {
                format!("{peak:.0}")
            },
            median(self.runs.iter().map(|r| r.startup_seconds).collect()),
            self.broker_cpu_per_million(),
        );
    }
}

/// What runs the temperature job in a latency run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runner {
    /// The processor, with this many replicas.
    Processor(usize),
    /// The Kafka Streams job (`bench/kafka-streams`, `TemperatureStreams`).
    Streams,
}

/// The job running for a latency run.
enum Running {
    Processors(Vec<Service>),
    Streams(StreamsApp),
}

impl Running {
    /// Starts `runner` on `topics` and waits until it is ready.
    fn start(
        runner: Runner,
        bootstrap: &str,
        topics: &PipelineTopics,
        guarantee: &str,
        also: &[String],
    ) -> Self {
        match runner {
            Runner::Processor(replicas) => {
                let processors = start_replicas(bootstrap, topics, guarantee, replicas, also);
                let addresses: Vec<String> = processors
                    .iter()
                    .map(|p| p.http_address(Duration::from_secs(30)))
                    .collect();
                for address in &addresses {
                    wait_ready(address);
                }
                // Ready is not settled: a replica is ready once it holds partitions, and with
                // two the group rebalances again when the second joins. Measuring through that
                // put seconds of tail into the two-replica points at light loads: wait until
                // every replica holds some of the six partitions and the total stays six.
                let started = Instant::now();
                let mut settled = 0;
                while settled < 10 {
                    let held: Vec<f64> = addresses
                        .iter()
                        .map(|a| {
                            scrape(a)
                                .get("sensor_assigned_partitions")
                                .copied()
                                .unwrap_or(0.0)
                        })
                        .collect();
                    let stable = held.iter().all(|n| *n > 0.0) && held.iter().sum::<f64>() == 6.0;
                    settled = if stable { settled + 1 } else { 0 };
                    assert!(
                        started.elapsed() < Duration::from_secs(90),
                        "the replicas did not settle on the partitions: {held:?}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Running::Processors(processors)
            }
            Runner::Streams => Running::Streams(StreamsApp::start(
                "TemperatureStreams",
                &[
                    bootstrap,
                    &topics.input,
                    &topics.output,
                    &unique("bench-latency-streams"),
                    guarantee,
                ],
            )),
        }
    }

    /// The processors' histograms of [`STAGES`], each summed over the replicas: (bucket bound
    /// in s, cumulative count) by stage name.
    fn processor_histograms(&self) -> Option<Histograms> {
        let Running::Processors(processors) = self else {
            return None;
        };
        let mut histograms = Histograms::new();
        for processor in processors {
            let metrics = scrape(&processor.http_address(Duration::from_secs(5)));
            for (stage, metric) in STAGES {
                let buckets = histograms.entry(stage).or_default();
                let prefix = format!("{metric}_bucket{{le=\"");
                for (series, count) in &metrics {
                    let Some(le) = series
                        .strip_prefix(&prefix)
                        .and_then(|rest| rest.strip_suffix("\"}"))
                    else {
                        continue;
                    };
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().ok()?
                    };
                    match buckets.iter_mut().find(|(bound, _)| *bound == le) {
                        Some((_, total)) => *total += count,
                        None => buckets.push((le, *count)),
                    }
                }
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
        Some(histograms)
    }

    /// CPU-seconds used so far by the job's processes.
    fn cpu_seconds(&self) -> f64 {
        match self {
            Running::Processors(processors) => {
                processors.iter().map(|p| cpu_seconds(p.pid())).sum()
            }
            Running::Streams(app) => app.cpu_seconds(),
        }
    }

    fn stop(self) {
        match self {
            Running::Processors(processors) => {
                for mut processor in processors {
                    processor.terminate(Duration::from_secs(30));
                }
            }
            Running::Streams(app) => app.stop(),
        }
    }
}

/// End-to-end latency percentiles at `rate` readings/s for `seconds`, the job run by `runner`.
fn latency(
    bootstrap: &str,
    runner: Runner,
    guarantee: &str,
    rate: u64,
    seconds: u64,
    also: &[String],
) -> Value {
    let topics = PipelineTopics::unique("bench-latency");
    topics.create(bootstrap, 6);
    let running = Running::start(runner, bootstrap, &topics, guarantee, also);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("bench-latency-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "1")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topics.output]).expect("subscribe");

    let start_ms = now_ms();
    // Averages start once a sensor has 10 readings: 10 000 sensors need 100 000 readings
    // first. The simulator runs that long (2 s at least, 60 at most) before the `seconds`
    // measured.
    let warm_up_secs = (1e5 / rate.max(1) as f64).clamp(2.0, 60.0);
    let warm_up_ms = start_ms + warm_up_secs * 1000.0;
    let count = (rate as f64 * (seconds as f64 + warm_up_secs)).round() as u64;
    let (count, rate_arg) = (count.to_string(), rate.to_string());
    let mut simulator = Service::simulator(&simulator_args(
        bootstrap,
        &topics.input,
        &[
            "--count",
            &count,
            "--rate",
            &rate_arg,
            "--sensors",
            "10000",
            "--seed",
            "2",
        ],
    ));
    let mut latencies: Vec<f64> = Vec::new();
    // Each latency in two parts, split at the processor's produce call (the output record's
    // CreateTime, which librdkafka stamps when the processor hands it over): reading taken →
    // produced (the simulator's linger, the broker, the processor's fetch and batch) and
    // produced → received (the processor's linger, acknowledgements, commit and markers, the
    // reader's fetch). The processes share one clock.
    let mut before_produce: Vec<f64> = Vec::new();
    let mut after_produce: Vec<f64> = Vec::new();
    let mut last_message = Instant::now();
    let mut simulator_done = false;
    let mut taken_last = warm_up_ms;
    let mut at_warm_up: Option<Histograms> = None;
    // The whole machine's CPU (busy, all) over the measured span: at 2 cores, whether the
    // point is the pipeline's latency or the machine's queue for its cores.
    let (mut machine_at_warm_up, mut machine_at_end) = (None, None);
    // And each part's CPU over the same span (CPU-seconds so far: job, simulator, broker, the
    // reader in this process), to tell whose the cores were. The simulator's is read just
    // before it ends.
    let simulator_pid = simulator.pid();
    let who_used_cpu = || {
        [
            running.cpu_seconds(),
            cpu_seconds(simulator_pid),
            broker_cpu(),
            cpu_seconds(std::process::id()),
        ]
    };
    let (mut cpu_at_warm_up, mut cpu_at_end) = (None, None);
    const SAMPLE_EVERY: Duration = Duration::from_millis(500);
    let mut last_sample = Instant::now();
    loop {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let received = now_ms();
            last_message = Instant::now();
            // The reading's timestamp, found without parsing the whole event: at tens of
            // thousands of events per second this reader shares the machine with the pipeline.
            let taken = message.payload().and_then(event_timestamp_ms);
            if let Some(taken) = taken
                && taken >= warm_up_ms
            {
                taken_last = taken_last.max(taken);
                latencies.push(received - taken);
                if let Some(produced) = message.timestamp().to_millis() {
                    before_produce.push(produced as f64 - taken);
                    after_produce.push(received - produced as f64);
                }
            }
        }
        if at_warm_up.is_none() && now_ms() >= warm_up_ms {
            at_warm_up = Some(running.processor_histograms().unwrap_or_default());
            machine_at_warm_up = Some(machine_cpu());
            cpu_at_warm_up = Some(who_used_cpu());
        }
        if at_warm_up.is_some() && !simulator_done && last_sample.elapsed() >= SAMPLE_EVERY {
            // The span's end: the simulator's last moments (its CPU is gone once it exits).
            machine_at_end = Some(machine_cpu());
            cpu_at_end = Some(who_used_cpu());
            last_sample = Instant::now();
        }
        if !simulator_done && !simulator.is_running() {
            simulator_done = true;
            simulator.wait_success(Duration::from_secs(5));
        }
        if simulator_done && last_message.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(
            now_ms() - start_ms < (seconds as f64 + warm_up_secs + 120.0) * 1000.0,
            "latency run did not finish"
        );
    }
    // The processors' p99 of each stage over the same span as the reader's: each histogram's
    // growth since the warm-up ended, as the upper bound of the bucket it falls in (ms).
    let stages_p99: Option<serde_json::Map<String, Value>> =
        running.processor_histograms().map(|end| {
            let start = at_warm_up.unwrap_or_default();
            STAGES
                .iter()
                .map(|(stage, _)| {
                    let p99 = end
                        .get(stage)
                        .and_then(|after| grown_p99_ms(start.get(stage).map(Vec::as_slice), after));
                    (stage.to_string(), json!(p99))
                })
                .collect()
        });
    let processor_p99 = stages_p99
        .as_ref()
        .and_then(|stages| stages.get("end_to_end").cloned());
    running.stop();
    let measured_ms = taken_last - warm_up_ms;
    // Events per second of reading time after the warm-up: one average per reading.
    let achieved = latencies.len() as f64 / (measured_ms / 1000.0).max(1e-3);
    // Cores used over the span, by part: the job, the simulator, the broker, the reader.
    let cores = cpu_at_warm_up
        .zip(cpu_at_end)
        .zip(machine_at_warm_up.zip(machine_at_end))
        .map_or(Value::Null, |((before, after), ((_, all0), (_, all1)))| {
            let seconds = (all1 - all0) as f64 / TICKS_PER_SECOND / cores() as f64;
            let used = |i: usize| round((after[i] - before[i]) / seconds.max(1e-3), 2);
            json!({ "job": used(0), "simulator": used(1), "broker": used(2), "reader": used(3) })
        });
    for sample in [&mut latencies, &mut before_produce, &mut after_produce] {
        sample.sort_by(f64::total_cmp);
    }
    let quantile = |sample: &[f64], q: f64| {
        sample
            .get(((sample.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let at = |q: f64| quantile(&latencies, q);
    json!({
        "guarantee": guarantee,
        "args": also.join(" "),
        "rate": rate,
        "events": latencies.len(),
        "achieved_per_second": round(achieved, 0),
        "p50_ms": round(at(0.50), 1),
        "p99_ms": round(at(0.99), 1),
        "p999_ms": round(at(0.999), 1),
        "max_ms": round(latencies.last().copied().unwrap_or(f64::NAN), 1),
        // The processors' own p99 (to their commit), as the bucket bound it falls under.
        "processor_p99_at_most_ms": processor_p99,
        // The same for each stage of it: readings' wait before their batch (per batch, its
        // oldest), the batch's processing, its commit (per batch).
        "processor_stages_p99_at_most_ms": stages_p99,
        // Cores used over the span, by part: the job, the simulator, the broker, the reader.
        "cores": cores,
        // The job's CPU per million readings over the span (whole processes, as for Kafka
        // Streams' JVM).
        "job_cpu_seconds_per_million": cores["job"].as_f64().map(|job| round(job / achieved.max(1e-3) * 1e6, 2)),
        "machine_busy_percent": machine_at_warm_up.zip(machine_at_end).map(
            |((busy0, all0), (busy1, all1)): ((u64, u64), (u64, u64))| {
                round(100.0 * (busy1 - busy0) as f64 / (all1 - all0).max(1) as f64, 1)
            }
        ),
        "to_produce_p50_ms": round(quantile(&before_produce, 0.50), 1),
        "to_produce_p99_ms": round(quantile(&before_produce, 0.99), 1),
        "after_produce_p50_ms": round(quantile(&after_produce, 0.50), 1),
        "after_produce_p99_ms": round(quantile(&after_produce, 0.99), 1),
    })
}

/// BENCH_LATENCY_ONLY=<readings/s>: only the latency runs, at half and a tenth of that rate,
/// on a broker of their own: the same rates for two builds or settings, compared in turns.
fn latency_only(full_rate: u64, seconds: u64) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    print_latency_header();
    for fraction in [0.5, 0.1] {
        let rate = (full_rate as f64 * fraction).round() as u64;
        for guarantee in ["at_least_once", "exactly_once"] {
            let l = latency(
                &bootstrap,
                Runner::Processor(env_or("BENCH_LATENCY_REPLICAS", 1)),
                guarantee,
                rate,
                seconds,
                &[],
            );
            eprintln!("  {l}");
            print_latency_row(&format!("{guarantee}, {:.0}% load", fraction * 100.0), &l);
        }
    }
    broker.stop();
}

fn print_latency_header() {
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>8} {:>8} {:>17} {:>17} {:>26} {:>6}",
        "latency",
        "readings/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "to produce p50/99",
        "after p50/99",
        "p99 wait/process/commit",
        "busy %"
    );
}

/// One latency run as a row under [`print_latency_header`].
fn print_latency_row(name: &str, l: &serde_json::Value) {
    println!(
        "{:<28} {:>10} {:>8} {:>8} {:>8} {:>8} {:>17} {:>17} {:>26} {:>6}",
        name,
        l["rate"],
        l["p50_ms"],
        l["p99_ms"],
        l["p999_ms"],
        l["max_ms"],
        format!("{}/{}", l["to_produce_p50_ms"], l["to_produce_p99_ms"]),
        format!(
            "{}/{}",
            l["after_produce_p50_ms"], l["after_produce_p99_ms"]
        ),
        stage_bounds(&l["processor_stages_p99_at_most_ms"]),
        l["machine_busy_percent"],
    );
    if !l["cores"].is_null() {
        println!("{:<28} cores used: {}", "", l["cores"]);
    }
}

/// Clock ticks a second of `/proc/stat` (USER_HZ: 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The p99 of what a cumulative histogram gained between `before` (none: empty) and `after`,
/// as the upper bound of the bucket it falls in (ms); `None` when nothing was recorded.
fn grown_p99_ms(before: Option<&[(f64, f64)]>, after: &[(f64, f64)]) -> Option<f64> {
    let grown: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .and_then(|b| b.iter().find(|(bound, _)| bound == le))
                .map_or(0.0, |(_, c)| *c);
            (*le, count - earlier)
        })
        .collect();
    let all = grown.last()?.1;
    grown
        .iter()
        .find(|(_, count)| all > 0.0 && *count >= all * 0.99)
        .map(|(le, _)| le * 1000.0)
}

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The machine's CPU time from `/proc/stat`, in ticks: (busy, all), where busy is all but idle
/// and iowait.
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let all: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn event_timestamp_ms(event: &[u8]) -> Option<f64> {
    const FIELD: &[u8] = br#""timestamp":""#;
    let start = event.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let end = start + event[start..].iter().position(|&b| b == b'"')?;
    parse_ms(std::str::from_utf8(&event[start..end]).ok()?)
}

fn parse_ms(text: &str) -> Option<f64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e6)
}

/// Resident memory of one processor holding `sensors` sensors (one reading each).
fn state_memory(bootstrap: &str, sensors: u64) -> Value {
    let topics = PipelineTopics::unique("bench-state");
    topics.create(bootstrap, 6);
    preload(bootstrap, &topics, sensors, sensors);
    let mut args = topics.processor_args(bootstrap);
    args.extend(["--processing-guarantee".into(), "at_least_once".into()]);
    args.extend(extra_processor_args());
    let mut processor = Service::processor(&args);
    let address = processor.http_address(Duration::from_secs(30));
    wait_for_zero_lag(bootstrap, &topics.group, &topics.input, || {
        assert!(processor.is_running(), "{}", processor.log_tail());
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http_get(&address, "/metrics");
        let held = body
            .lines()
            .find_map(|l| l.strip_prefix("sensor_sensors_in_memory "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if held == Some(sensors as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the processor holds {held:?} sensors, not {sensors}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (peak, now) = (
        memory_mib(processor.pid(), "VmHWM:"),
        memory_mib(processor.pid(), "VmRSS:"),
    );
    processor.terminate(Duration::from_secs(30));
    json!({"sensors": sensors, "peak_rss_mib": round(peak, 1), "rss_mib": round(now, 1)})
}

/// Readings per second through the hot path on this thread, over about two seconds.
/// The hot path and the naive loop on the same records, in alternation (one second each,
/// `rounds` times): the median readings/s of each.
fn hot_path(rounds: usize) -> (f64, f64) {
    let records = sample_records(10_000, 100_000, 7);
    let mut path = HotPath::new();
    let mut naive = NaiveLoop::default();
    // Warm up: windows full, as in a running processor.
    path.run(&records);
    naive.run(&records);
    let timed = |run: &mut dyn FnMut()| {
        let started = Instant::now();
        let mut done = 0u64;
        while started.elapsed() < Duration::from_secs(1) {
            run();
            done += records.len() as u64;
        }
        done as f64 / started.elapsed().as_secs_f64()
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(timed(&mut || {
            path.run(&records);
        }));
        theirs.push(timed(&mut || {
            naive.run(&records);
        }));
    }
    (median(ours), median(theirs))
}

#[path = "pipeline/curve.rs"]
mod curve;

fn main() {
    if std::env::var("BENCH_CURVE").is_ok_and(|v| v == "1") {
        curve::run(env_or("BENCH_LATENCY_SECS", 10));
        return;
    }
    let readings: u64 = env_or("BENCH_READINGS", 3_000_000);
    let sensors: u64 = env_or("BENCH_SENSORS", 10_000);
    let repeats: usize = env_or("BENCH_RUNS", 3);
    let with_streams = std::env::var("BENCH_STREAMS").map_or(true, |v| v != "0");
    // BENCH_ALSO_ARGS: one more series per guarantee, the processor with these flags, in the
    // same rounds: a same-run comparison of a setting (`--snapshot-every-records 0`).
    let also: Vec<String> = std::env::var("BENCH_ALSO_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut alo_also = Series::default();
    let mut eos_also = Series::default();
    let latency_secs: u64 = env_or("BENCH_LATENCY_SECS", 15);
    let state_sensors: Vec<u64> = std::env::var("BENCH_STATE_SENSORS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let json_path = std::env::var("BENCH_JSON").map_or_else(
        |_| repo_root().join("target/bench/pipeline.json"),
        std::path::PathBuf::from,
    );
    let total = Instant::now();
    if let Some(full) = std::env::var("BENCH_LATENCY_ONLY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        latency_only(full, latency_secs);
        return;
    }
    if std::env::var("BENCH_STATE_ONLY").is_ok_and(|v| v == "1") {
        let broker = start_broker();
        for &n in &state_sensors {
            println!("{}", state_memory(&broker.bootstrap(), n));
        }
        broker.stop();
        return;
    }

    eprintln!("hot path and the naive loop (no Kafka, one core, in alternation)...");
    let (hot, naive) = hot_path(5);

    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topics = PipelineTopics::unique("bench");
    topics.create(&bootstrap, 6);
    eprintln!("pre-loading {readings} readings from {sensors} sensors...");
    let load = preload(&bootstrap, &topics, readings, sensors);
    eprintln!(
        "  {load:.1} s ({:.0} readings/s from the simulator)",
        readings as f64 / load
    );

    // Each configuration `repeats` times, in alternation, so that a slow spell of this shared
    // machine spreads over all of them; medians and ranges reported.
    let mut ceiling = Series::default();
    let mut alo = Series::default();
    let mut eos = Series::default();
    let mut streams_alo = Series::default();
    let mut streams_eos = Series::default();
    for round in 1..=repeats {
        eprintln!("round {round} of {repeats}: passthrough...");
        ceiling
            .runs
            .push(passthrough(&bootstrap, &topics, readings));
        for (guarantee, series) in [("at_least_once", &mut alo), ("exactly_once", &mut eos)] {
            eprintln!("round {round} of {repeats}: processor, {guarantee}...");
            series
                .runs
                .push(throughput(&bootstrap, &topics, readings, guarantee, 1, &[]));
        }
        for (guarantee, series) in [
            ("at_least_once", &mut alo_also),
            ("exactly_once", &mut eos_also),
        ]
        .into_iter()
        .filter(|_| !also.is_empty())
        {
            eprintln!("round {round} of {repeats}: processor, {guarantee}, {also:?}...");
            series.runs.push(throughput(
                &bootstrap, &topics, readings, guarantee, 1, &also,
            ));
        }
        for (guarantee, series) in [
            ("at_least_once", &mut streams_alo),
            ("exactly_once", &mut streams_eos),
        ]
        .into_iter()
        .filter(|_| with_streams)
        {
            eprintln!("round {round} of {repeats}: Kafka Streams, {guarantee}...");
            series
                .runs
                .push(kafka_streams(&bootstrap, &topics, readings, guarantee));
        }
    }
    let mut two_replicas = Vec::new();
    for guarantee in ["at_least_once", "exactly_once"] {
        eprintln!("processor, {guarantee}, 2 replicas...");
        two_replicas.push(Series {
            runs: vec![throughput(&bootstrap, &topics, readings, guarantee, 2, &[])],
        });
    }
    let c = ceiling.rate();

    // Half the measured throughput, as the issue asks, and a tenth: on a small machine the
    // simulator, the broker and the reader share the cores with the processor, so half its
    // solo throughput already loads the machine fully.
    // BENCH_ALSO_ARGS' latencies come after the four the targets read, at the same rates.
    let mut latencies = Vec::new();
    for flags in std::iter::once(&[][..]).chain((!also.is_empty()).then_some(&also[..])) {
        for fraction in [0.5, 0.1] {
            let rate = (alo.rate() * fraction).round() as u64;
            for guarantee in ["at_least_once", "exactly_once"] {
                eprintln!(
                    "latency: {guarantee} {flags:?} at {rate} readings/s for {latency_secs} s..."
                );
                let mut figures = latency(
                    &bootstrap,
                    Runner::Processor(1),
                    guarantee,
                    rate,
                    latency_secs,
                    flags,
                );
                figures["fraction_of_throughput"] = json!(fraction);
                latencies.push(figures);
            }
        }
    }

    let mut states = Vec::new();
    for &n in &state_sensors {
        eprintln!("state: {n} sensors...");
        states.push(state_memory(&bootstrap, n));
    }
    broker.stop();

    // The table.
    println!();
    println!(
        "{:<32} {:>9} {:>17} {:>6} {:>7} {:>11} {:>6} {:>6} {:>8}",
        "throughput (median, range)",
        "rate/s",
        "range",
        "vs c.",
        "CPU/M",
        "CPU range",
        "MiB",
        "start",
        "broker/M"
    );
    let all: Vec<&Series> = [
        &ceiling,
        &alo,
        &eos,
        &alo_also,
        &eos_also,
        &streams_alo,
        &streams_eos,
    ]
    .into_iter()
    .chain(&two_replicas)
    .filter(|s| !s.runs.is_empty())
    .collect();
    for series in &all {
        series.print(c);
    }
    for (name, rate) in [
        ("hot path (1 core, no Kafka)", hot),
        ("naive serde_json loop (same)", naive),
    ] {
        println!(
            "{name:<32} {rate:>9.0} {:>17} {:>6.2} {:>7.2}",
            "-",
            rate / c,
            1e6 / rate
        );
    }
    println!();
    print_latency_header();
    for l in &latencies {
        let name = format!(
            "{}, {}% load {}",
            l["guarantee"].as_str().unwrap_or("?"),
            l["fraction_of_throughput"].as_f64().unwrap_or(0.0) * 100.0,
            l["args"].as_str().unwrap_or("")
        );
        print_latency_row(&name, l);
    }
    println!();
    println!("{:<28} {:>12} {:>10}", "state", "peak MiB", "now MiB");
    for s in &states {
        println!(
            "{:<28} {:>12} {:>10}",
            format!("{} sensors", s["sensors"]),
            s["peak_rss_mib"],
            s["rss_mib"]
        );
    }
    let growth = match states.as_slice() {
        [small, .., large] => {
            let bytes = (large["rss_mib"].as_f64().unwrap_or(0.0)
                - small["rss_mib"].as_f64().unwrap_or(0.0))
                * 1024.0
                * 1024.0;
            let sensors =
                large["sensors"].as_f64().unwrap_or(0.0) - small["sensors"].as_f64().unwrap_or(0.0);
            Some(bytes / sensors)
        }
        _ => None,
    };
    if let Some(growth) = growth {
        println!("growth per sensor: {growth:.0} bytes");
    }

    let p99 = |i: usize| latencies[i]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    // The README's figures before the cost work (2026-11-22): CPU-seconds per million.
    const BEFORE_ALO_CPU: f64 = 2.85;
    const BEFORE_EOS_CPU: f64 = 2.98;
    let (alo_cpu, eos_cpu, pass_cpu) = (
        alo.cpu_per_million(),
        eos.cpu_per_million(),
        ceiling.cpu_per_million(),
    );
    let rss_100k = states
        .iter()
        .find(|s| s["sensors"] == 100_000)
        .and_then(|s| s["peak_rss_mib"].as_f64());
    let commit_interval_ms = 100.0;
    let targets = vec![
        (
            "at_least_once CPU/M <= half of 2.85 (before)",
            alo_cpu,
            alo_cpu <= BEFORE_ALO_CPU / 2.0,
        ),
        (
            "exactly_once CPU/M <= half of 2.98 (before)",
            eos_cpu,
            eos_cpu <= BEFORE_EOS_CPU / 2.0,
        ),
        (
            "at_least_once CPU/M <= 1.3 x passthrough",
            alo_cpu / pass_cpu,
            alo_cpu <= 1.3 * pass_cpu,
        ),
        (
            "exactly_once CPU/M <= 1.3 x passthrough",
            eos_cpu / pass_cpu,
            eos_cpu <= 1.3 * pass_cpu,
        ),
        (
            "Kafka Streams at_least_once CPU/M >= 5 x ours",
            streams_alo.cpu_per_million() / alo_cpu,
            streams_alo.cpu_per_million() >= 5.0 * alo_cpu,
        ),
        (
            "Kafka Streams exactly_once CPU/M >= 5 x ours",
            streams_eos.cpu_per_million() / eos_cpu,
            streams_eos.cpu_per_million() >= 5.0 * eos_cpu,
        ),
        (
            "exactly_once >= 0.95 x ceiling",
            eos.rate() / c,
            eos.rate() >= 0.95 * c,
        ),
        ("at_least_once p99 at 50 % < 100 ms", p99(0), p99(0) < 100.0),
        ("exactly_once p99 at 50 % < 100 ms", p99(1), p99(1) < 100.0),
        ("at_least_once p99 at 10 % < 20 ms", p99(2), p99(2) < 20.0),
        (
            "exactly_once p99 at 10 % < commit interval + 10 ms",
            p99(3),
            p99(3) < commit_interval_ms + 10.0,
        ),
        (
            "peak RSS with 100 000 sensors < 64 MiB",
            rss_100k.unwrap_or(f64::NAN),
            rss_100k.is_some_and(|m| m < 64.0),
        ),
    ];
    println!();
    for (name, value, met) in &targets {
        println!(
            "{} {name}: {value:.2}",
            if *met { "met    " } else { "NOT MET" }
        );
    }

    let report = json!({
        "machine": machine(),
        "settings": {
            "readings": readings, "sensors": sensors, "partitions": 6, "runs": repeats,
            "latency_seconds": latency_secs, "commit_interval_ms": commit_interval_ms,
        },
        "preload_seconds": round(load, 2),
        "ceiling": ceiling.to_json(c),
        "throughput": all.iter().skip(1).map(|s| s.to_json(c)).collect::<Vec<_>>(),
        "hot_path_readings_per_second": hot.round(),
        "naive_loop_readings_per_second": naive.round(),
        "latency": latencies,
        "state": states,
        "growth_bytes_per_sensor": growth.map(|g| g.round()),
        "targets": targets.iter().map(|(name, value, met)| json!({
            "target": name, "value": round(*value, 3), "met": met,
        })).collect::<Vec<_>>(),
        "total_seconds": round(total.elapsed().as_secs_f64(), 1),
    });
    if let Some(dir) = json_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", json_path.display()));
    println!(
        "\nwritten to {} ({:.0} s in all)",
        json_path.display(),
        total.elapsed().as_secs_f64()
    );
}

/// The processors' p99 bounds of the wait before a batch, its processing and its commit (ms),
/// or "-" for Kafka Streams.
fn stage_bounds(stages: &Value) -> String {
    if stages.is_null() {
        return "-".to_owned();
    }
    let bound = |stage: &str| {
        stages[stage]
            .as_f64()
            .map_or("?".to_owned(), |ms| format!("{ms}"))
    };
    format!(
        "<= {}/{}/{}",
        bound("input_wait"),
        bound("processing"),
        bound("commit")
    )
}
