//! Each sensor's online model in the processor, on the real broker. The simulator injects
//! labelled faults; the processor judges every reading; the anomalies topic must hold exactly
//! what one model per sensor, run straight through the input, gives. That holds through a
//! SIGKILL of the processor mid-stream and a rescale to two replicas: the models come back from
//! the changelog (not retrained from cold), and no anomaly or prediction is lost or doubled.
//! An ONNX model trained by `models/train.py` runs beside it, in the same state and
//! transactions, and first gives the training script's own scores. Then the events through
//! pg-sink into each results store, and out of the dashboard's API.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::browser::Page;
use e2e_tests::kafka_io::{produce, producer, read_topic, wait_for_group, wait_until_consumed};
use e2e_tests::results::{Kind, ResultsDb};
use e2e_tests::service::{Service, http_get, simulator_args, wait_ready};
use e2e_tests::topics::{PipelineTopics, create_topics};
use e2e_tests::{models, unique};
use nix::sys::signal::Signal;
use processor::scorer::{self, Scorer};
use sensor_contract::model::{ModelEvent, ModelSettings, SensorModel, judge};
use sensor_contract::{DecodeOptions, RawRecord, Reading, Window};

/// The Rust features and tract give what scikit-learn gave for the same windows.
#[test]
fn the_onnx_scorer_gives_the_training_scripts_scores() {
    let trained = models::train(60_000, 5);
    let scorer = Scorer::load(&trained.model, 10).expect("the model loads");
    let windows = trained.check["windows"].as_array().unwrap();
    let scores = trained.check["scores"].as_array().unwrap();
    assert!(windows.len() >= 300, "{} windows", windows.len());
    let (mut worst, mut flagged, mut features) = (0.0f64, 0, Vec::new());
    for (values, expected) in windows.iter().zip(scores) {
        let mut window = Window::new(10);
        for t in values.as_array().unwrap() {
            window.push(t.as_f64().unwrap());
        }
        scorer::features(&window, &mut features);
        let score = f64::from(scorer.score(&features).unwrap());
        let expected = expected.as_f64().unwrap();
        worst = worst.max((score - expected).abs());
        flagged += usize::from(expected >= 0.5);
    }
    // float32 inference against scikit-learn's float64: agreement to 1e-5.
    assert!(worst < 1e-5, "scores differ by up to {worst:e}");
    assert!(
        flagged >= 50,
        "only {flagged} anomalous windows in the check"
    );
    println!(
        "onnx: {} windows ({flagged} anomalous) scored as scikit-learn did, within {worst:.1e}",
        windows.len()
    );
}

#[test]
fn anomalies_are_exact_through_a_sigkill_and_a_rescale() {
    let trained = models::train(60_000, 5);
    let scorer = Scorer::load(&trained.model, 10).expect("the model loads");
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("anomalies");
    topics.create(&bootstrap, 6);
    let anomalies = format!("{}-anomalies", topics.group);
    create_topics(&bootstrap, &[(&anomalies, 6)]);
    let mut args = topics.processor_args(&bootstrap);
    args.extend(
        [
            "--anomalies",
            "--anomalies-topic",
            &anomalies,
            "--onnx-model",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([trained.model.display().to_string()]),
    );
    let mut first = Service::processor(&args);
    wait_for_group(&bootstrap, &topics.group, 1, Duration::from_secs(60));
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "12000",
            "--sensors",
            "20",
            "--seed",
            "21",
            "--rate",
            "3000",
            "--fault-rate",
            "8",
        ],
    ));
    assert!(simulator.wait_for_log("Kafka is reachable", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(1500));
    first.signal(Signal::SIGKILL);
    first.wait(Duration::from_secs(10)).expect("killed");
    // Back, and scaled out: two replicas share the partitions and restore their models.
    let second = Service::processor(&args);
    let third = Service::processor(&args);
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(120),
    );

    // The reference: one model and one window per sensor through the input, in partition
    // order; the ONNX verdict on the window comes before the model's events.
    let input = read_topic(&bootstrap, &topics.input);
    assert_eq!(input.len(), 12000);
    let settings = ModelSettings::default();
    let mut models: BTreeMap<String, SensorModel> = BTreeMap::new();
    let mut windows: BTreeMap<String, Window> = BTreeMap::new();
    let mut features = Vec::new();
    let mut onnx_count = 0;
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut labelled: BTreeMap<(String, u64), (String, String)> = BTreeMap::new();
    let mut faults = BTreeSet::new();
    for record in &input {
        let raw = RawRecord {
            key: record.key.as_deref(),
            payload: record.payload.as_deref(),
            timestamp_ms: record.timestamp_ms,
            offset: record.offset,
        };
        let reading = Reading::decode(&raw, &DecodeOptions::default()).expect("a reading");
        if let Some(kind) = record.header("fault") {
            let id = record.header("fault-id").unwrap();
            faults.insert((kind.clone(), id.clone()));
            labelled.insert((reading.sensor_id.to_string(), reading.seq), (kind, id));
        }
        let model = models.entry(reading.sensor_id.to_string()).or_default();
        let events = expected.entry(reading.sensor_id.to_string()).or_default();
        let window = windows
            .entry(reading.sensor_id.to_string())
            .or_insert_with(|| Window::new(10));
        window.push(reading.temperature);
        if window.is_full() {
            scorer::features(window, &mut features);
            let score = f64::from(scorer.score(&features).unwrap());
            if score >= 0.5 {
                let mut bytes = Vec::new();
                scorer::anomaly(window, &reading, score).write_json(&mut bytes);
                events.push(bytes);
                onnx_count += 1;
            }
        }
        judge(model, &reading, &settings, 10, |event| {
            let mut bytes = Vec::new();
            event.write_json(&mut bytes);
            events.push(bytes);
        });
    }

    let mut actual: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut detected = BTreeSet::new();
    let mut anomaly_count = 0;
    for record in read_topic(&bootstrap, &anomalies) {
        let kind_header = record.header("event-type");
        let payload = record.payload.expect("a value");
        let event: ModelEvent<'_> = serde_json::from_slice(&payload).expect("a model event");
        assert_eq!(kind_header.as_deref(), Some(event.kind()));
        if let ModelEvent::Anomaly { sensor_id, seq, .. } = &event {
            anomaly_count += 1;
            if let Some(fault) = labelled.get(&(sensor_id.to_string(), *seq)) {
                detected.insert(fault.clone());
            }
        }
        let key = String::from_utf8(record.key.expect("keyed by sensor")).unwrap();
        actual.entry(key).or_default().push(payload);
    }
    assert_eq!(actual.len(), 20, "every sensor has events");
    for (sensor, events) in &expected {
        let got = actual.get(sensor).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            got.len(),
            events.len(),
            "{sensor}: {} events, {} expected",
            got.len(),
            events.len()
        );
        assert!(got == events.as_slice(), "{sensor}: events differ");
    }
    let without_drift: Vec<_> = faults.iter().filter(|(k, _)| k != "drift").collect();
    let caught = without_drift
        .iter()
        .filter(|f| detected.contains(**f))
        .count();
    assert!(
        caught * 10 >= without_drift.len() * 8,
        "{caught} of {} faults (drift aside) flagged",
        without_drift.len()
    );
    println!(
        "anomalies: 12000 readings, {} labelled faults ({caught} of {} without drift flagged), {anomaly_count} anomaly events ({onnx_count} from the ONNX model), equal to the reference per sensor through a SIGKILL and a rescale",
        faults.len(),
        without_drift.len()
    );
    assert!(onnx_count > 0, "the ONNX model flagged nothing");
    for mut replica in [second, third] {
        replica.stop(Duration::from_secs(15));
    }
}

/// The models' events reach the results store and the API, the same on both stores: every
/// anomaly newest first (and by sensor), a sensor's predictions newest first.
#[test]
fn model_events_reach_the_api_on_postgresql() {
    model_events_reach_the_api(Kind::Postgres);
}

#[test]
fn model_events_reach_the_api_on_sqlite() {
    model_events_reach_the_api(Kind::Sqlite);
}

fn model_events_reach_the_api(kind: Kind) {
    let bootstrap = shared_bootstrap();
    let id = unique("model-api");
    let database = ResultsDb::fresh(kind, &id);
    let (events, anomalies, dlq) = (
        format!("{id}-events"),
        format!("{id}-anomalies"),
        format!("{id}-sink-dlq"),
    );
    create_topics(&bootstrap, &[(&events, 1), (&anomalies, 3), (&dlq, 1)]);
    let producer = producer(&bootstrap);
    let at = |s: u64| format!("2026-11-28T10:00:{s:02}Z");
    let mut sent = Vec::new();
    for (i, sensor) in ["s-1", "s-2", "s-1", "s-3"].iter().enumerate() {
        let event = ModelEvent::Anomaly {
            sensor_id: (*sensor).into(),
            seq: 40 + i as u64,
            kind: ["outlier", "stuck", "gap", "outlier"][i].into(),
            score: 5.0 + i as f64 / 4.0,
            temperature: 30.5 + i as f64,
            expected: 21.0,
            low: 19.25,
            high: 22.75,
            timestamp: at(10 + i as u64).into(),
        };
        sent.push(event.clone());
        let mut value = Vec::new();
        event.write_json(&mut value);
        produce(
            &producer,
            &anomalies,
            None,
            Some(sensor.as_bytes()),
            &value,
            None,
        );
    }
    for seq in [10u64, 20, 30] {
        let event = ModelEvent::Prediction {
            sensor_id: "s-1".into(),
            seq,
            temperature: Some(20.0 + seq as f64 / 9.0),
            expected: 20.0 + seq as f64 / 10.0,
            low: 18.5,
            high: 24.5,
            timestamp: at(seq).into(),
        };
        let mut value = Vec::new();
        event.write_json(&mut value);
        produce(&producer, &anomalies, None, Some(b"s-1"), &value, None);
    }

    let database_flag = ["--database-url".to_owned(), database.url().to_owned()];
    let mut sink = Service::start_binary(
        "pg-sink",
        &[
            &database_flag[..],
            &[
                "--brokers",
                &bootstrap,
                "--events-topic",
                &events,
                "--ip-counts-topic",
                "",
                "--anomalies-topic",
                &anomalies,
                "--dlq-topic",
                &dlq,
                "--group-id",
                &id,
                "--batch-linger-ms",
                "10",
            ]
            .map(str::to_owned),
        ]
        .concat(),
    );
    let mut dashboard = Service::start_binary("dashboard", &database_flag);
    let address = dashboard.http_address(Duration::from_secs(30));
    wait_ready(&address);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let get = |path: &str| -> serde_json::Value {
        let (status, body) = http_get(&address, path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let listed = loop {
        let answer = get("/api/anomalies?limit=10");
        if answer["anomalies"].as_array().unwrap().len() == 4
            && get("/api/sensors/s-1/predictions")["predictions"]
                .as_array()
                .unwrap()
                .len()
                == 3
        {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{answer}\n{}",
            sink.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Newest event time first: the reverse of the order sent, every field as sent.
    let expected: Vec<serde_json::Value> = sent
        .iter()
        .rev()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            v.as_object_mut().unwrap().remove("type");
            v
        })
        .collect();
    assert_eq!(listed["anomalies"], serde_json::json!(expected));
    let of_s1 = get("/api/anomalies?sensor=s-1");
    let seqs: Vec<u64> = of_s1["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [42, 40]);
    let predictions = get("/api/sensors/s-1/predictions?limit=2");
    assert_eq!(
        predictions["predictions"],
        serde_json::json!([
            {"seq": 30, "temperature": 20.0 + 30.0 / 9.0, "expected": 23.0, "low": 18.5, "high": 24.5, "timestamp": at(30)},
            {"seq": 20, "temperature": 20.0 + 20.0 / 9.0, "expected": 22.0, "low": 18.5, "high": 24.5, "timestamp": at(20)},
        ])
    );
    assert_eq!(http_get(&address, "/api/anomalies?limit=0").0, 400);

    // The page: s-1's three readings against its three forecasts' band, its two anomalies
    // marked (after the last forecast, so the chart reaches them), all four listed.
    let mut page = Page::open(
        &format!("http://{address}/#sensor=s-1"),
        &format!("forecast-{kind:?}.png").to_lowercase(),
    );
    let forecast = page.report()["snapshot"]["forecast"].clone();
    assert_eq!(
        forecast,
        serde_json::json!({
            "sensor": "s-1",
            "shown": true,
            "band_points": 6,
            "expected_points": 3,
            "reading_points": 3,
            "anomalies": [{"seq": 40, "kind": "outlier"}, {"seq": 42, "kind": "gap"}],
            "listed": ["s-3#43", "s-1#42", "s-2#41", "s-1#40"],
        })
    );
    page.report();
    page.command(r#"{"close": {"wait_ms": 0}}"#);
    let closed = page.report();
    assert_eq!(closed["page_errors"], serde_json::json!([]));
    println!("forecast chart: {}", page.finish().display());
    dashboard.stop(Duration::from_secs(10));
    sink.stop(Duration::from_secs(20));
}
