//! The audit command finds every kind of difference, in one pass or in several.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::expect::expected_events;
use e2e_tests::kafka_io::{produce, producer, read_topic};
use e2e_tests::service::binary;
use e2e_tests::topics::PipelineTopics;
use rdkafka::message::{Header, OwnedHeaders};
use sensor_contract::{Event, ProcessingRules};

fn run_audit(bootstrap: &str, topics: &PipelineTopics, extra: &[&str]) -> (i32, serde_json::Value) {
    let output = Command::new(binary("sensor-audit"))
        .args(topics.processor_args(bootstrap))
        .args(["--json"])
        .args(extra)
        .env_remove("PIPELINE_CONFIG")
        .output()
        .expect("running sensor-audit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "audit output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

#[test]
fn the_audit_reports_missing_duplicated_wrong_and_unexpected_events() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("audit");
    topics.create(&bootstrap, 6);
    let producer = producer(&bootstrap);
    for i in 0..300u32 {
        let sensor = format!("s-{}", i % 6);
        let value = format!(
            r#"{{"sensor_id":"{sensor}","seq":{},"temperature":{},"timestamp":"2026-11-22T00:00:00.000Z"}}"#,
            i / 6,
            30.0 + f64::from(i % 17)
        );
        produce(
            &producer,
            &topics.input,
            None,
            Some(sensor.as_bytes()),
            value.as_bytes(),
            None,
        );
    }
    produce(
        &producer,
        &topics.input,
        None,
        Some(b"s-0"),
        b"not json",
        None,
    );

    // The output a correct processor writes, then every kind of mistake.
    let input = read_topic(&bootstrap, &topics.input);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let all: Vec<Event> = expected.values().flatten().cloned().collect();
    let write = |event: &Event| {
        let headers = OwnedHeaders::new().insert(Header {
            key: "event-type",
            value: Some(event.kind()),
        });
        produce(
            &producer,
            &topics.output,
            None,
            Some(event.sensor_id().as_bytes()),
            &event.to_json(),
            Some(headers),
        );
    };
    for event in &all[3..] {
        write(event); // all[0] missing, all[1] and all[2] replaced below
    }
    write(&all[5]); // duplicated
    let mut wrong = all[1].clone();
    if let Event::Average(a) = &mut wrong {
        a.average += 0.5;
    } else if let Event::Alert(a) = &mut wrong {
        a.temperature += 0.5;
    }
    write(&wrong); // wrong
    write(&all[2]); // late but right: matched
    let mut unexpected = all[4].clone();
    if let Event::Average(a) = &mut unexpected {
        a.seq = 999_999;
    } else if let Event::Alert(a) = &mut unexpected {
        a.seq = 999_999;
    }
    write(&unexpected); // unexpected
    produce(
        &producer,
        &topics.output,
        None,
        Some(b"s-1"),
        b"garbage",
        None,
    ); // undecodable

    for extra in [vec![], vec!["--max-events-in-memory", "40"]] {
        let (code, report) = run_audit(&bootstrap, &topics, &extra);
        assert_eq!(code, 1, "differences fail the audit: {report}");
        assert_eq!(report["input_records"], 301);
        // No group has committed: the whole input is judged, to each partition's end.
        let judged: i64 = report["judged_until"]
            .as_object()
            .map(|ends| ends.values().filter_map(serde_json::Value::as_i64).sum())
            .unwrap_or_default();
        assert_eq!(judged, 301, "{report}");
        assert_eq!(report["unusable_input"], 1);
        assert_eq!(report["expected_events"], all.len());
        assert_eq!(report["matched"], all.len() - 2);
        assert_eq!(report["missing"], 1);
        assert_eq!(report["duplicated"], 1);
        assert_eq!(report["wrong"], 1);
        assert_eq!(report["unexpected"], 1);
        assert_eq!(report["undecodable_output"], 1);
        assert_eq!(report["sensors"][all[0].sensor_id()]["missing"], 1);
        // The missing event named, with the reading that should have caused it.
        let listed = &report["missing_events"];
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{report}");
        assert_eq!(listed[0]["sensor_id"], all[0].sensor_id());
        assert_eq!(listed[0]["seq"], all[0].seq());
        assert_eq!(listed[0]["kind"], all[0].kind());
        let reading = input
            .iter()
            .find(|r| listed[0]["partition"] == r.partition && listed[0]["offset"] == r.offset)
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(r.payload.as_deref()?).ok())
            .expect("the listed input record exists");
        assert_eq!(reading["sensor_id"], all[0].sensor_id(), "{reading}");
        assert_eq!(reading["seq"], all[0].seq(), "{reading}");
        assert_eq!(report["sensors"][all[5].sensor_id()]["duplicated"], 1);
        if extra.is_empty() {
            assert_eq!(report["passes"], 1);
        } else {
            assert!(
                report["passes"].as_u64().unwrap() > 1,
                "bounded memory takes several passes: {report}"
            );
        }
    }
}

#[test]
fn the_audit_passes_a_correct_output_and_tolerates_duplicates_only_when_asked() {
    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("audit-ok");
    topics.create(&bootstrap, 6);
    let producer = producer(&bootstrap);
    for i in 0..60u32 {
        let value = format!(
            r#"{{"sensor_id":"a","seq":{i},"temperature":{}}}"#,
            f64::from(i % 50)
        );
        produce(
            &producer,
            &topics.input,
            None,
            Some(b"a"),
            value.as_bytes(),
            None,
        );
    }
    let input = read_topic(&bootstrap, &topics.input);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    for event in expected.values().flatten() {
        produce(
            &producer,
            &topics.output,
            None,
            Some(b"a"),
            &event.to_json(),
            None,
        );
    }
    let (code, report) = run_audit(&bootstrap, &topics, &[]);
    assert_eq!(
        (code, &report["missing"], &report["matched"]),
        (0, &serde_json::json!(0), &serde_json::json!(51 + 9))
    );
    let first = expected.values().flatten().next().unwrap();
    produce(
        &producer,
        &topics.output,
        None,
        Some(b"a"),
        &first.to_json(),
        None,
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        run_audit(&bootstrap, &topics, &[]).0,
        1,
        "a duplicate fails a strict audit"
    );
    let (code, report) = run_audit(&bootstrap, &topics, &["--allow-duplicates"]);
    assert_eq!((code, &report["duplicated"]), (0, &serde_json::json!(1)));
}

/// On a live deployment (the simulator producing, two processors working) the audit passes at
/// any moment, and still after the producer restarts with the same seed (its sequence numbers
/// start again at 0, so newer events repeat older events' sensor, seq and type).
#[test]
fn the_audit_passes_on_a_live_deployment_and_across_a_producer_restart() {
    use e2e_tests::kafka_io::{wait_for_group, wait_until_consumed};
    use e2e_tests::service::{Service, simulator_args};

    let bootstrap = shared_bootstrap();
    let topics = PipelineTopics::unique("audit-live");
    topics.create(&bootstrap, 6);
    let mut replicas = [
        Service::processor(&topics.processor_args(&bootstrap)),
        Service::processor(&topics.processor_args(&bootstrap)),
    ];
    wait_for_group(&bootstrap, &topics.group, 2, Duration::from_secs(60));
    let (mut runs, mut left_for_later) = (0, 0);
    for round in 0..2 {
        let mut simulator = Service::simulator(&simulator_args(
            &bootstrap,
            &topics.input,
            &["--rate", "400", "--sensors", "30", "--seed", "5"],
        ));
        std::thread::sleep(Duration::from_secs(3));
        for _ in 0..4 {
            let (code, report) = run_audit(&bootstrap, &topics, &[]);
            assert_eq!(code, 0, "live audit, producer run {round}: {report}");
            assert!(report["expected_events"].as_u64() > Some(0), "{report}");
            left_for_later += report["unjudged_input"].as_u64().unwrap_or(0)
                + report["unjudged_output"].as_u64().unwrap_or(0);
            runs += 1;
            std::thread::sleep(Duration::from_millis(700));
        }
        simulator.stop(Duration::from_secs(15));
    }
    assert!(
        left_for_later > 0,
        "no audit ever saw the deployment mid-flight: this test proved nothing"
    );
    // Caught up: everything is judged, and right.
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(60),
    );
    let (code, report) = run_audit(&bootstrap, &topics, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["unjudged_input"], 0, "{report}");
    assert_eq!(report["unjudged_output"], 0, "{report}");
    for replica in &mut replicas {
        replica.stop(Duration::from_secs(15));
    }
    println!(
        "live audit: {runs} runs while producing, all OK; {left_for_later} records left for later runs"
    );
}
