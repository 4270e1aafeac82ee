//! The dashboard for real: results produced to the topics, written by pg-sink to PostgreSQL or
//! to an SQLite file (the same test and assertions for both), served by the dashboard's API, and seen in Debian's headless Chromium (driven by
//! playwright-core): the alerts, the sensors, the top addresses' bars in order with their
//! counts, and a new alert arriving live without a reload. Saves a screenshot.

use std::net::IpAddr;
use std::time::Duration;

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::browser::Page;
use e2e_tests::kafka_io::{produce, producer};
use e2e_tests::results::{Kind, ResultsDb};
use e2e_tests::service::{Service, http_get, wait_ready};
use e2e_tests::topics::create_topics;
use e2e_tests::unique;
use rdkafka::producer::FutureProducer;
use sensor_contract::event::{Alert, Average, Event};
use serde_json::Value;

const SENSORS: [&str; 3] = ["boiler-1", "boiler-2", "freezer-9"];
const ALERTS: [(&str, u64, f64); 3] = [
    ("boiler-1", 12, 43.5),
    ("boiler-2", 15, 41.25),
    ("boiler-1", 20, 44.75),
];
const PREVIOUS_WINDOW_MS: i64 = 1_795_860_000_000; // 2026-11-28T10:00:00Z
const CURRENT_WINDOW_MS: i64 = PREVIOUS_WINDOW_MS + 60_000;

fn timestamp(seconds: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_795_860_000 + seconds as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn average_of(sensor: usize, seq: u64) -> f64 {
    20.0 + sensor as f64 * 5.0 + (seq - 10) as f64 * 0.25
}

fn send_event(producer: &FutureProducer, topic: &str, event: &Event<'_>) {
    produce(
        producer,
        topic,
        None,
        Some(event.sensor_id().as_bytes()),
        &event.to_json(),
        None,
    );
}

fn alert(sensor: &str, seq: u64, temperature: f64, at: u64) -> Event<'static> {
    Event::Alert(Alert {
        sensor_id: sensor.to_owned().into(),
        seq,
        temperature,
        threshold: 40.0,
        timestamp: timestamp(at).into(),
    })
}

/// Per window: (address, count), twelve addresses each, one tie in the current window.
fn counts() -> Vec<(i64, IpAddr, u64)> {
    let mut all = Vec::new();
    let current = [5, 80, 80, 60, 3, 44, 120, 7, 9, 10, 11, 12];
    for i in 0..12u64 {
        let ip: IpAddr = format!("192.0.2.{}", i + 1).parse().unwrap();
        all.push((PREVIOUS_WINDOW_MS, ip, 100 - i * 7));
        all.push((CURRENT_WINDOW_MS, ip, current[i as usize]));
    }
    all.push((CURRENT_WINDOW_MS, "2001:db8::7".parse().unwrap(), 95));
    all
}

/// The top ten of a window: count descending, ties by address.
fn top_ten(window: i64) -> Vec<(String, u64)> {
    let mut list: Vec<(IpAddr, u64)> = counts()
        .into_iter()
        .filter(|(w, _, _)| *w == window)
        .map(|(_, ip, n)| (ip, n))
        .collect();
    list.sort_by_key(|(ip, n)| (std::cmp::Reverse(*n), *ip));
    list.truncate(10);
    list.into_iter()
        .map(|(ip, n)| (ip.to_string(), n))
        .collect()
}

fn bars(snapshot: &Value, chart: &str) -> Vec<(String, u64)> {
    snapshot[chart]["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["ip"].as_str().unwrap().to_owned(),
                b["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn api(address: &str, path: &str) -> (u16, Value) {
    let (status, body) = http_get(address, path);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn the_dashboard_shows_the_results_and_updates_live_in_a_real_browser_on_postgresql() {
    the_dashboard_shows_the_results_and_updates_live(Kind::Postgres);
}

#[test]
fn the_dashboard_shows_the_results_and_updates_live_in_a_real_browser_on_sqlite() {
    the_dashboard_shows_the_results_and_updates_live(Kind::Sqlite);
}

fn the_dashboard_shows_the_results_and_updates_live(kind: Kind) {
    let bootstrap = shared_bootstrap();
    let id = unique("dashboard");
    let database = ResultsDb::fresh(kind, &id);
    let (events, ip_counts, dlq) = (
        format!("{id}-events"),
        format!("{id}-ip-counts"),
        format!("{id}-sink-dlq"),
    );
    create_topics(&bootstrap, &[(&events, 3), (&ip_counts, 3), (&dlq, 1)]);

    // The results, as the pipelines would have written them.
    let producer = producer(&bootstrap);
    for (s, sensor) in SENSORS.iter().enumerate() {
        for seq in 10..22u64 {
            let at = seq * 10 + s as u64;
            if let Some((_, _, t)) = ALERTS.iter().find(|(a, q, _)| a == sensor && *q == seq) {
                send_event(&producer, &events, &alert(sensor, seq, *t, at));
            }
            let average = Event::Average(Average {
                sensor_id: (*sensor).to_owned().into(),
                seq,
                average: average_of(s, seq),
                window_size: 10,
                timestamp: timestamp(at).into(),
            });
            send_event(&producer, &events, &average);
        }
    }
    for (window, ip, count) in counts() {
        let value = serde_json::json!({
            "window_start_ms": window, "window_end_ms": window + 60_000,
            "ip": ip.to_string(), "count": count,
        });
        produce(
            &producer,
            &ip_counts,
            None,
            Some(ip.to_string().as_bytes()),
            value.to_string().as_bytes(),
            None,
        );
    }

    let database_flag = ["--database-url".to_owned(), database.url().to_owned()];
    let mut sink = Service::start_binary(
        "pg-sink",
        &[
            &database_flag[..],
            &[
                "--brokers".to_owned(),
                bootstrap.clone(),
                "--events-topic".to_owned(),
                events.clone(),
                "--ip-counts-topic".to_owned(),
                ip_counts.clone(),
                "--dlq-topic".to_owned(),
                dlq.clone(),
                "--group-id".to_owned(),
                format!("{id}-pg-sink"),
                "--batch-linger-ms".to_owned(),
                "10".to_owned(),
            ],
        ]
        .concat(),
    );
    let mut dashboard = Service::start_binary("dashboard", &database_flag);
    let address = dashboard.http_address(Duration::from_secs(30));
    wait_ready(&address);
    let rows = 3 + 36 + 25;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let have = database.row_total();
        if have == rows {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{have} of {rows} rows\n{}",
            sink.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The API, exactly.
    let (status, top) = api(&address, "/api/ip/top?window=latest&n=10");
    assert_eq!(status, 200);
    let top: Vec<(String, u64)> = top["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ip"].as_str().unwrap().to_owned(),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(top, top_ten(CURRENT_WINDOW_MS));
    let (_, alerts) = api(&address, "/api/alerts?limit=10");
    let alerts: Vec<(String, u64, f64)> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["sensor_id"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
                a["temperature"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        alerts,
        [
            ("boiler-1".to_owned(), 20, 44.75),
            ("boiler-2".to_owned(), 15, 41.25),
            ("boiler-1".to_owned(), 12, 43.5)
        ]
    );
    let (_, sensors) = api(&address, "/api/sensors?trend=5");
    assert_eq!(sensors["total"], 3);
    for (s, sensor) in sensors["sensors"].as_array().unwrap().iter().enumerate() {
        assert_eq!(sensor["sensor_id"], SENSORS[s]);
        assert_eq!(sensor["last_seq"], 21);
        assert_eq!(sensor["last_average"].as_f64(), Some(average_of(s, 21)));
        assert_eq!(sensor["average_count"], 12);
        let trend: Vec<f64> = (17..22).map(|q| average_of(s, q)).collect();
        assert_eq!(sensor["trend"], serde_json::json!(trend));
    }
    assert_eq!(api(&address, "/api/sensors?limit=5000").0, 400);
    assert_eq!(api(&address, "/api/sensors/nobody/averages").0, 404);
    assert_eq!(
        api(&address, "/api/ip/top?window=2001-01-01T00:00:00Z").0,
        404
    );

    // The page, in a real browser.
    let mut page_driver = Page::open(
        &format!("http://{address}/"),
        match kind {
            Kind::Postgres => "dashboard.png",
            Kind::Sqlite => "dashboard-sqlite.png",
        },
    );
    let first = page_driver.report();
    let page = &first["snapshot"];
    assert_eq!(page["status"], "live");
    let seen: Vec<(String, u64)> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["sensor"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("boiler-1".to_owned(), 20),
            ("boiler-2".to_owned(), 15),
            ("boiler-1".to_owned(), 12)
        ]
    );
    assert_eq!(page["alerts"][0]["temperature"], "44.75 °C");
    assert_eq!(bars(page, "current"), top_ten(CURRENT_WINDOW_MS));
    assert_eq!(bars(page, "previous"), top_ten(PREVIOUS_WINDOW_MS));
    let widths: Vec<f64> = page["current"]["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["width"].as_f64().unwrap())
        .collect();
    assert!(
        widths.windows(2).all(|w| w[0] >= w[1]) && widths[0] > 10.0 * widths[9],
        "bar lengths follow the counts: {widths:?}"
    );
    let table = page["sensors"].as_array().unwrap();
    assert_eq!(table.len(), 3);
    assert_eq!(table[0]["cells"][0], "boiler-1");
    assert_eq!(table[0]["cells"][2], "22.75");
    assert_eq!(table[0]["cells"][4], "2");
    assert_eq!(table[2]["cells"][4], "0");
    assert_eq!(
        table[0]["trend_points"], 12,
        "a trend of its averages (all 12: fewer than 20)"
    );

    // Nothing new: no request (the page does not poll).
    assert_eq!(page_driver.report()["idle_api_requests"], 0);

    // A new alert arrives: pushed, shown on top, without a reload.
    send_event(&producer, &events, &alert("freezer-9", 22, 45.5, 400));
    page_driver.command(r#"{"wait_for_alert": {"sensor": "freezer-9", "seq": 22}}"#);
    let live = page_driver.report();
    assert_eq!(live["same_document"], true);
    assert_eq!(live["page_errors"], serde_json::json!([]));
    assert_eq!(live["snapshot"]["alerts"][0]["sensor"], "freezer-9");
    assert_eq!(live["snapshot"]["alerts"][0]["temperature"], "45.50 °C");
    assert_eq!(live["snapshot"]["sensors"][2]["cells"][4], "1");
    let screenshot = page_driver.finish();
    println!(
        "dashboard on {kind}: new alert on the page {} ms after it was produced (sink linger 10 ms); screenshot {}",
        live["appeared_ms"],
        screenshot.display()
    );
    let (status, _) = dashboard.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        dashboard.log_tail()
    );
    sink.stop(Duration::from_secs(20));
}
