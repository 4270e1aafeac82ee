//! The processor's hot path without Kafka, per reading: the engine's task with the temperature
//! job, as the service runs it: decode the record, apply it to its sensor's window (with the
//! undo log and applied offsets), encode the events it yields as the output records' JSON, and
//! per batch the changelog records of the sensors it touched. The input is what the simulator publishes: seeded
//! realistic readings from 10 000 sensors, keyed by sensor id. Batches of 10 000 readings, as
//! the service commits them.
//!
//! `cargo bench -p processor --bench hot_path`; `scripts/bench.sh` reports the same loop in its
//! table.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use processor::hot_path::{HotPath, sample_records};

fn hot_path(c: &mut Criterion) {
    let records = sample_records(10_000, 100_000, 7);
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(20);
    group.bench_function("decode_window_encode_100k_readings_10k_sensors", |b| {
        let mut path = HotPath::new();
        b.iter(|| path.run(&records));
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
