//! Restoring a partition's windows from the changelog: complete, and fast. Prints the time for
//! a partition holding 100 000 sensors.

use std::time::{Duration, Instant};

use e2e_tests::broker::shared_bootstrap;
use e2e_tests::unique;
use pipeline_runtime::settings::KafkaSettings;
use processor::changelog::{ensure_topic, restore_partition};
use processor::windows::{SensorState, encode_state};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use sensor_contract::Window;

fn state(sensor: u32, updates: u32) -> SensorState {
    let mut window = Window::new(10);
    for k in 0..updates {
        window.push(f64::from(sensor % 50) + f64::from(k) / 10.0);
    }
    SensorState {
        window,
        applied_offset: i64::from(sensor * 3 + updates),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_of_100_000_sensors_is_restored_exactly() {
    let kafka = KafkaSettings {
        brokers: shared_bootstrap(),
        ..KafkaSettings::default()
    };
    let topic = unique("restore-window-state");
    ensure_topic(&kafka, &topic, 2)
        .await
        .expect("changelog topic");

    // Each sensor written twice, as consecutive batches would: the later state must win.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    const SENSORS: u32 = 100_000;
    for updates in [4, 12] {
        for sensor in 0..SENSORS {
            let key = format!("sensor-{sensor:06}");
            let value = encode_state(&state(sensor, updates));
            producer
                .send(
                    BaseRecord::to(&topic)
                        .partition(0)
                        .key(&key)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");

    let started = Instant::now();
    let (sensors, stats) = tokio::task::spawn_blocking({
        let kafka = kafka.clone();
        let topic = topic.clone();
        move || restore_partition(&kafka, &topic, 0, 10)
    })
    .await
    .expect("restore task")
    .expect("restore");
    let took = started.elapsed();
    assert_eq!(stats.records, 2 * u64::from(SENSORS));
    assert_eq!(sensors.len(), SENSORS as usize);
    for sensor in [0, 1, 4_242, 99_999] {
        assert_eq!(
            sensors[&format!("sensor-{sensor:06}")],
            state(sensor, 12),
            "sensor {sensor}"
        );
    }
    println!(
        "restore: {} sensors from {} changelog records in {:.2} s ({:.0} records/s)",
        sensors.len(),
        stats.records,
        took.as_secs_f64(),
        stats.records as f64 / took.as_secs_f64()
    );

    let (other, _) =
        restore_partition(&kafka, &topic, 1, 10).expect("restore of an empty partition");
    assert!(
        other.is_empty(),
        "partition 1 holds nothing: co-partitioned state stays apart"
    );
}
