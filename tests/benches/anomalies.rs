//! The anomaly model's benchmark on a real local broker (`scripts/bench.sh anomalies`): the
//! simulator pre-loads readings with labelled faults, then the processor (release build, one
//! replica, exactly once) runs over them three times: the model off, on, and on with an ONNX
//! model that `models/train.py` trained on other readings (another seed) beside it. Prints, per
//! fault kind, the recall and median detection delay of the origin's fixed threshold (an alert
//! on a labelled reading), of the online model (an anomaly event on it) and of the ONNX model
//! (an `onnx` anomaly on it), their precision and false-positive rates under the rules of
//! `sensor_simulator::evaluation`, F1 over spikes, level shifts, stuck values and noise, and
//! the processor's CPU per million readings each way.
//!
//! Sizes: BENCH_READINGS (default 200 000), 100 sensors, 4 faults per 1 000 readings of a
//! sensor. Writes target/bench/anomalies.json.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::kafka_io::{read_topic, wait_until_consumed};
use e2e_tests::service::{Service, cpu_seconds, simulator_args};
use e2e_tests::topics::create_topics;
use e2e_tests::{models, repo_root};
use sensor_simulator::evaluation::{Score, Scored};
use sensor_simulator::faults::{FaultKind, Label};
use serde_json::json;

/// A reading's identity: sensor id and sequence number.
type ReadingKey = (String, u64);

/// Runs one processor over the pre-loaded input until it is consumed; returns its CPU seconds
/// and wall seconds.
fn run(bootstrap: &str, group: &str, extra: &[&str]) -> (f64, f64) {
    let mut args: Vec<String> = [
        "--brokers",
        bootstrap,
        "--input-topic",
        "readings",
        "--dlq-topic",
        "dlq",
        "--group-id",
        group,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut processor = Service::processor(&args);
    let started = Instant::now();
    wait_until_consumed(bootstrap, group, "readings", Duration::from_secs(600));
    let cpu = cpu_seconds(processor.pid());
    let wall = started.elapsed().as_secs_f64();
    processor.stop(Duration::from_secs(30));
    (cpu, wall)
}

fn f1(score: &Score) -> f64 {
    let kinds = [
        FaultKind::Spike,
        FaultKind::LevelShift,
        FaultKind::Stuck,
        FaultKind::Noise,
    ];
    let (faults, detected) = kinds
        .iter()
        .filter_map(|k| score.kinds.get(k))
        .fold((0, 0), |(f, d), s| (f + s.faults, d + s.detected));
    let recall = detected as f64 / faults.max(1) as f64;
    let precision = score.precision();
    2.0 * precision * recall / (precision + recall).max(f64::MIN_POSITIVE)
}

fn main() {
    let readings: u64 = std::env::var("BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = PrivateBroker::new(free_port());
    broker.start();
    let bootstrap = broker.bootstrap();
    create_topics(
        &bootstrap,
        &[
            ("readings", 6),
            ("events-off", 6),
            ("events-on", 6),
            ("anomalies", 6),
            ("events-onnx", 6),
            ("anomalies-onnx", 6),
            ("dlq", 1),
        ],
    );
    eprintln!("simulator: {readings} readings of 100 sensors with labelled faults...");
    let count = readings.to_string();
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        "readings",
        &[
            "--count",
            &count,
            "--sensors",
            "100",
            "--seed",
            "9",
            "--rate",
            "0",
            "--fault-rate",
            "4",
        ],
    ));
    simulator.wait_success(Duration::from_secs(600));

    eprintln!("models/train.py: training the ONNX model on 100 000 readings of another seed...");
    let trained = models::train(100_000, 1);
    let model_path = trained.model.display().to_string();
    eprintln!("processor, model off...");
    let (cpu_off, wall_off) = run(&bootstrap, "off", &["--output-topic", "events-off"]);
    eprintln!("processor, model on...");
    let (cpu_on, wall_on) = run(
        &bootstrap,
        "on",
        &[
            "--output-topic",
            "events-on",
            "--anomalies",
            "--anomalies-topic",
            "anomalies",
        ],
    );
    eprintln!("processor, model and ONNX model on...");
    let (cpu_onnx, wall_onnx) = run(
        &bootstrap,
        "onnx",
        &[
            "--output-topic",
            "events-onnx",
            "--anomalies",
            "--anomalies-topic",
            "anomalies-onnx",
            "--onnx-model",
            &model_path,
        ],
    );

    // Ground truth and verdicts, per sensor in reading order.
    let flagged = |topic: &str, wanted: &str, kind: Option<&str>| -> BTreeSet<ReadingKey> {
        read_topic(&bootstrap, topic)
            .iter()
            .filter_map(|r| {
                let v: serde_json::Value =
                    serde_json::from_slice(r.payload.as_deref().unwrap_or_default()).ok()?;
                let of_kind = kind.is_none_or(|k| v["kind"] == k);
                (v["type"] == wanted && of_kind).then(|| {
                    (
                        v["sensor_id"].as_str().unwrap_or_default().to_owned(),
                        v["seq"].as_u64().unwrap_or_default(),
                    )
                })
            })
            .collect()
    };
    let alerts = flagged("events-on", "alert", None);
    let anomalies = flagged("anomalies", "anomaly", None);
    let onnx_anomalies = flagged("anomalies-onnx", "anomaly", Some("onnx"));
    let mut streams: BTreeMap<String, Vec<(Option<Label>, ReadingKey)>> = BTreeMap::new();
    for record in read_topic(&bootstrap, "readings") {
        let v: serde_json::Value =
            serde_json::from_slice(record.payload.as_deref().unwrap_or_default()).unwrap();
        let sensor = v["sensor_id"].as_str().unwrap().to_owned();
        let seq = v["seq"].as_u64().unwrap();
        let label = record.header("fault").map(|kind| Label {
            kind: FaultKind::parse(&kind).expect("a known kind"),
            id: record.header("fault-id").unwrap().parse().unwrap(),
        });
        streams
            .entry(sensor.clone())
            .or_default()
            .push((label, (sensor, seq)));
    }
    let score = |flags: &BTreeSet<ReadingKey>| {
        let mut score = Score::default();
        for stream in streams.values() {
            let scored: Vec<Scored> = stream
                .iter()
                .map(|(label, key)| Scored {
                    label: *label,
                    flagged: flags.contains(key),
                })
                .collect();
            score.add_sensor(&scored);
        }
        score
    };
    let (threshold, model, onnx) = (score(&alerts), score(&anomalies), score(&onnx_anomalies));

    println!();
    println!(
        "anomalies: {readings} readings, 100 sensors, 4 faults per 1 000 readings of a sensor"
    );
    println!(
        "{:<12} {:>7}  {:>16}  {:>16}  {:>16}",
        "kind", "faults", "threshold recall", "model recall", "onnx recall"
    );
    let mut kinds = Vec::new();
    for kind in FaultKind::ALL {
        let (t, m, o) = (
            threshold.kinds.get(&kind).cloned().unwrap_or_default(),
            model.kinds.get(&kind).cloned().unwrap_or_default(),
            onnx.kinds.get(&kind).cloned().unwrap_or_default(),
        );
        let delay = |d: Option<usize>| d.map_or("-".to_owned(), |d| d.to_string());
        println!(
            "{:<12} {:>7}  {:>9.3} (d {:>3})  {:>9.3} (d {:>3})  {:>9.3} (d {:>3})",
            kind.name(),
            m.faults,
            t.recall(),
            delay(t.median_delay()),
            m.recall(),
            delay(m.median_delay()),
            o.recall(),
            delay(o.median_delay())
        );
        kinds.push(json!({
            "kind": kind.name(), "faults": m.faults,
            "threshold_recall": t.recall(), "threshold_median_delay": t.median_delay(),
            "model_recall": m.recall(), "model_median_delay": m.median_delay(),
            "onnx_recall": o.recall(), "onnx_median_delay": o.median_delay(),
        }));
    }
    for (name, s) in [
        ("threshold", &threshold),
        ("model", &model),
        ("onnx", &onnx),
    ] {
        println!(
            "{name:<10} precision {:.3}, false positives {:.3} % of {} normal readings, F1 (spike, shift, stuck, noise) {:.3}",
            s.precision(),
            100.0 * s.false_positive_rate(),
            s.normal,
            f1(s)
        );
    }
    let per_million = |cpu: f64| cpu / readings as f64 * 1e6;
    println!(
        "processor CPU per million readings: {:.2} s model off ({:.1} s wall), {:.2} s model on ({:.1} s wall): +{:.0} %; with the ONNX model too {:.2} s ({:.1} s wall): +{:.0} %",
        per_million(cpu_off),
        wall_off,
        per_million(cpu_on),
        wall_on,
        100.0 * (cpu_on / cpu_off - 1.0),
        per_million(cpu_onnx),
        wall_onnx,
        100.0 * (cpu_onnx / cpu_off - 1.0)
    );
    let out = json!({
        "readings": readings,
        "kinds": kinds,
        "threshold": {"precision": threshold.precision(), "false_positive_rate": threshold.false_positive_rate(), "f1": f1(&threshold)},
        "model": {"precision": model.precision(), "false_positive_rate": model.false_positive_rate(), "f1": f1(&model)},
        "onnx": {"precision": onnx.precision(), "false_positive_rate": onnx.false_positive_rate(), "f1": f1(&onnx)},
        "cpu_seconds_per_million": {"model_off": per_million(cpu_off), "model_on": per_million(cpu_on), "onnx_on": per_million(cpu_onnx)},
    });
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("anomalies.json"), out.to_string()).unwrap();
    broker.stop();
}
