//! pg-sink on the real broker, into a real PostgreSQL and into an SQLite file: every record of
//! the output topics becomes exactly one row, through repeated SIGKILLs of the sink while the
//! pipeline runs (the same test and assertions on both stores), and through a PostgreSQL server
//! that goes away and comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::kafka_io::{producer, read_topic, wait_until_consumed};
use e2e_tests::postgres::PrivateServer;
use e2e_tests::results::{Kind, ResultsDb, Tables};
use e2e_tests::service::{Service, scrape, simulator_args, try_http_get, wait_ready};
use e2e_tests::topics::{PipelineTopics, create_topics};
use e2e_tests::unique;
use nix::sys::signal::Signal;
use rdkafka::producer::FutureRecord;

struct Sink {
    events: String,
    counts: String,
    dlq: String,
    group: String,
}

impl Sink {
    fn new(id: &str, events: &str) -> Self {
        Self {
            events: events.to_owned(),
            counts: format!("{id}-ip-counts"),
            dlq: format!("{id}-sink-dlq"),
            group: format!("{id}-pg-sink"),
        }
    }

    fn start(&self, bootstrap: &str, database: &str, extra: &[&str]) -> Service {
        let mut args: Vec<String> = [
            "--brokers",
            bootstrap,
            "--database-url",
            database,
            "--events-topic",
            &self.events,
            "--ip-counts-topic",
            &self.counts,
            "--dlq-topic",
            &self.dlq,
            "--group-id",
            &self.group,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Service::start_binary("pg-sink", &args)
    }
}

/// Produces `n` final counts, one per (window, address), windows of a minute from
/// `first_window_ms`; some addresses are IPv6. Returns nothing: the topic is the reference.
fn produce_counts(bootstrap: &str, topic: &str, first: u64, n: u64) {
    let producer = producer(bootstrap);
    let mut deliveries = Vec::new();
    for i in first..first + n {
        let window_start_ms = 1_795_860_000_000 + (i / 100) as i64 * 60_000;
        let ip: IpAddr = if i % 7 == 0 {
            format!("2001:db8::{:x}", i % 100 + 1).parse().unwrap()
        } else {
            format!("10.0.{}.{}", (i % 100) / 50, i % 100 + 1)
                .parse()
                .unwrap()
        };
        let value = serde_json::json!({
            "window_start_ms": window_start_ms,
            "window_end_ms": window_start_ms + 60_000,
            "ip": ip.to_string(),
            "count": i % 997 + 1,
        })
        .to_string();
        let key = ip.to_string();
        loop {
            match producer.send_result(
                FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(value.as_bytes()),
            ) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, _)) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    for delivery in deliveries {
        futures::executor::block_on(delivery)
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

fn produce_one(bootstrap: &str, topic: &str, key: &[u8], value: &[u8]) -> (i32, i64) {
    e2e_tests::kafka_io::produce(&producer(bootstrap), topic, None, Some(key), value, None)
}

fn wait_for_rows(database: &ResultsDb, rows: usize, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let have = database.row_total();
        if have as usize >= rows {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{have} of {rows} rows after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_result_is_one_row_through_repeated_sigkills_of_the_sink_on_postgresql() {
    every_result_is_one_row_through_repeated_sigkills(Kind::Postgres);
}

#[test]
fn every_result_is_one_row_through_repeated_sigkills_of_the_sink_on_sqlite() {
    every_result_is_one_row_through_repeated_sigkills(Kind::Sqlite);
}

fn every_result_is_one_row_through_repeated_sigkills(kind: Kind) {
    let bootstrap = shared_bootstrap();
    let id = unique("pg-kill");
    let database = ResultsDb::fresh(kind, &id);
    let topics = PipelineTopics::unique("pg-kill");
    topics.create(&bootstrap, 6);
    let sink = Sink::new(&id, &topics.output);
    create_topics(&bootstrap, &[(&sink.counts, 3), (&sink.dlq, 1)]);

    let _processor = Service::processor(&topics.processor_args(&bootstrap));
    let mut simulator = Service::simulator(&simulator_args(
        &bootstrap,
        &topics.input,
        &[
            "--count",
            "40000",
            "--sensors",
            "60",
            "--seed",
            "11",
            "--rate",
            "4000",
        ],
    ));
    let counts_bootstrap = bootstrap.clone();
    let counts_topic = sink.counts.clone();
    let counts = std::thread::spawn(move || {
        for round in 0..10 {
            produce_counts(&counts_bootstrap, &counts_topic, round * 500, 500);
            std::thread::sleep(Duration::from_millis(800));
        }
    });
    // Unusable records amid the real ones: dead-lettered, never rows, never a stall.
    let bad = [
        produce_one(&bootstrap, &topics.output, b"s", b"not json"),
        produce_one(
            &bootstrap,
            &sink.counts,
            b"999.1.2.3",
            br#"{"window_start_ms":0,"window_end_ms":60000,"ip":"999.1.2.3","count":1}"#,
        ),
    ];

    // SIGKILL the sink at random points while both topics grow, then let one run to the end.
    let mut kills = 0;
    let kill_started = Instant::now();
    for _ in 0..6 {
        let mut s = sink.start(
            &bootstrap,
            database.url(),
            &["--batch-max-records", "400", "--batch-linger-ms", "20"],
        );
        std::thread::sleep(Duration::from_millis(1200 + rand::random::<u64>() % 1300));
        s.signal(Signal::SIGKILL);
        s.wait(Duration::from_secs(10)).expect("killed");
        kills += 1;
    }
    let mut last = sink.start(&bootstrap, database.url(), &[]);
    simulator.wait_success(Duration::from_secs(120));
    counts.join().expect("counts producer");
    wait_until_consumed(
        &bootstrap,
        &topics.group,
        &topics.input,
        Duration::from_secs(120),
    );

    let events = read_topic(&bootstrap, &topics.output);
    let count_records = read_topic(&bootstrap, &sink.counts);
    let expected = Tables::from_topics(&events, &count_records);
    assert_eq!(expected.counts.len(), 5000);
    assert!(
        expected.alerts.len() > 100 && expected.averages.len() > 30_000,
        "a real run: {} alerts, {} averages",
        expected.alerts.len(),
        expected.averages.len()
    );
    let rows = expected.alerts.len() + expected.averages.len() + expected.counts.len();
    let pipeline_done = kill_started.elapsed();
    let catch_up = wait_for_rows(&database, rows, Duration::from_secs(120));
    // Nothing more arrives later (a duplicate would show as a count above `rows`).
    std::thread::sleep(Duration::from_secs(1));
    let actual = database.tables();
    Tables::assert_equal(&expected, &actual);

    // The stored positions are the topics' last records + 1: nothing left, nothing ahead.
    let stored = database.positions(&sink.group);
    let mut last_records: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (topic, records) in [(&topics.output, &events), (&sink.counts, &count_records)] {
        for r in records.iter() {
            last_records.insert((topic.clone(), r.partition), r.offset + 1);
        }
    }
    assert_eq!(stored, last_records);

    // The unusable records are in the sink's dead-letter topic with the reason (at least once:
    // a kill between the dead letter and the transaction can repeat one).
    let dead: BTreeSet<(i32, i64)> = read_topic(&bootstrap, &sink.dlq)
        .iter()
        .map(|r| {
            assert!(r.header("error").is_some_and(|e| !e.is_empty()));
            (
                r.header("source.partition").unwrap().parse().unwrap(),
                r.header("source.offset").unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(dead, bad.into_iter().collect::<BTreeSet<_>>());

    // Restarts applied no migration again.
    let applied: Vec<_> = last
        .log_events("database reachable, schema up to date")
        .iter()
        .map(|e| e["applied"].to_string())
        .collect();
    assert_eq!(applied, ["\"[]\""], "{}", last.log_tail());
    let http = last.http_address(Duration::from_secs(5));
    let metrics = scrape(&http);
    assert!(metrics["pg_sink_transactions_total"] > 0.0);
    last.stop(Duration::from_secs(20));
    println!(
        "pg-sink kill test on {kind}: {kills} SIGKILLs; pipeline done after {:.1} s, the last sink caught up {:.1} s later; {rows} rows ({} alerts, {} averages, {} counts, {} sensors) equal to the topics",
        pipeline_done.as_secs_f64(),
        catch_up.as_secs_f64(),
        actual.alerts.len(),
        actual.averages.len(),
        actual.counts.len(),
        actual.sensors.len()
    );
}

/// Counts produced before the sink starts, in the backlog tests.
const BACKLOG: u64 = 60_000;

/// Produces [`BACKLOG`] counts, starts a sink into `database` and waits until it has written
/// them all; prints its rows per second since ready. Returns the sink, its process and its HTTP
/// address.
fn write_backlog(bootstrap: &str, id: &str, database: &ResultsDb) -> (Sink, Service, String) {
    let sink = Sink::new(id, &format!("{id}-events"));
    create_topics(
        bootstrap,
        &[(&sink.events, 3), (&sink.counts, 6), (&sink.dlq, 1)],
    );
    produce_counts(bootstrap, &sink.counts, 0, BACKLOG);
    let service = sink.start(bootstrap, database.url(), &[]);
    let http = service.http_address(Duration::from_secs(30));
    wait_ready(&http);
    let took = wait_for_rows(database, BACKLOG as usize, Duration::from_secs(120));
    println!(
        "pg-sink backlog into {}: {BACKLOG} count rows in {:.2} s since ready = {:.0} rows/s",
        database.kind(),
        took.as_secs_f64(),
        BACKLOG as f64 / took.as_secs_f64()
    );
    (sink, service, http)
}

#[test]
fn the_sink_waits_for_the_database_and_loses_nothing() {
    let bootstrap = shared_bootstrap();
    let id = unique("pg-outage");
    let server = PrivateServer::start();
    let database = ResultsDb::existing_postgres(server.url());
    // A backlog first: how fast the sink writes it is the figure printed.
    let (sink, mut service, http) = write_backlog(&bootstrap, &id, &database);

    server.stop();
    produce_counts(&bootstrap, &sink.counts, BACKLOG, 1_000);
    assert!(
        service.wait_for_log("writing a batch failed", Duration::from_secs(30)),
        "{}",
        service.log_tail()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while try_http_get(&http, "/readyz")
        .ok()
        .map(|(status, _)| status)
        != Some(503)
    {
        assert!(Instant::now() < deadline, "still ready without a database");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(service.is_running(), "the sink waits, it does not exit");
    server.restart();
    wait_for_rows(&database, BACKLOG as usize + 1_000, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(1));
    let expected = Tables::from_topics(&[], &read_topic(&bootstrap, &sink.counts));
    Tables::assert_equal(&expected, &database.tables());
    wait_ready(&http);
    let (status, _) = service.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        service.log_tail()
    );
}

#[test]
fn the_sqlite_sink_writes_a_backlog_exactly() {
    let bootstrap = shared_bootstrap();
    let id = unique("sqlite-backlog");
    let database = ResultsDb::fresh(Kind::Sqlite, &id);
    // The same backlog as the PostgreSQL test above: the two figures compare.
    let (sink, mut service, _) = write_backlog(&bootstrap, &id, &database);
    std::thread::sleep(Duration::from_secs(1));
    let expected = Tables::from_topics(&[], &read_topic(&bootstrap, &sink.counts));
    Tables::assert_equal(&expected, &database.tables());
    let (status, _) = service.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        service.log_tail()
    );
}
