//! The readings a run sends, with their ground truth: the generator's clean signal through the
//! fault injector. Shared by the Kafka publisher and [`print`], so that a seed gives the same
//! readings and labels either way.

use std::io::{self, Write};

use sensor_contract::Reading;

use crate::faults::{Label, Outcome};
use crate::{Generator, Injector, SimulatorSettings};

/// The seeded stream of labelled readings.
#[derive(Debug, Clone)]
pub struct Source {
    generator: Generator,
    injector: Injector,
}

impl Source {
    /// The stream `settings` describe, drawn from `seed`.
    pub fn new(settings: &SimulatorSettings, seed: u64) -> Self {
        Self {
            generator: Generator::new(settings.sensors, seed, settings.profile),
            injector: Injector::new(seed, settings.sensors as usize, settings.faults.clone()),
        }
    }

    /// Whether faults are injected.
    pub fn is_injecting(&self) -> bool {
        self.injector.is_on()
    }

    /// The next reading, stamped with `timestamp`, and its label; `None` when a dropout
    /// swallows it (it is not sent, and its `seq` is skipped).
    pub fn next(&mut self, timestamp: String) -> Option<(Reading<'_>, Option<Label>)> {
        let sensor = self.generator.next_index();
        let (mut reading, spiked) = self.generator.next_reading_spiked(timestamp);
        match self.injector.apply(sensor, reading.temperature, spiked) {
            Outcome::Skip => None,
            Outcome::Send { temperature, label } => {
                reading.temperature = temperature;
                Some((reading, label))
            }
        }
    }
}

/// Writes `count` readings (0: until the reader closes the pipe) as JSON lines
/// `{"reading":{…},"fault":"spike"|null,"fault_id":7|null}`, as fast as `out` takes them,
/// for training a model offline. Returns how many were written.
pub fn print(
    settings: &SimulatorSettings,
    seed: u64,
    timestamp: impl Fn() -> String,
    out: impl Write,
) -> io::Result<u64> {
    let mut out = io::BufWriter::new(out);
    let mut source = Source::new(settings, seed);
    let mut written = 0;
    while settings.count == 0 || written < settings.count {
        let Some((reading, label)) = source.next(timestamp()) else {
            continue;
        };
        let mut line = b"{\"reading\":".to_vec();
        line.extend_from_slice(&reading.to_json());
        match label {
            Some(l) => line.extend_from_slice(
                format!(",\"fault\":\"{}\",\"fault_id\":{}}}\n", l.kind.name(), l.id).as_bytes(),
            ),
            None => line.extend_from_slice(b",\"fault\":null,\"fault_id\":null}\n"),
        }
        match out.write_all(&line) {
            Ok(()) => written += 1,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(written),
            Err(e) => return Err(e),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(written),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultKind, FaultSettings};

    #[test]
    fn print_writes_the_publishers_readings_with_their_labels() {
        let settings = SimulatorSettings {
            sensors: 3,
            count: 2_000,
            faults: FaultSettings {
                rate: 20.0,
                kinds: vec![FaultKind::Spike, FaultKind::Dropout],
            },
            ..SimulatorSettings::default()
        };
        let mut out = Vec::new();
        let written = print(&settings, 7, || "2026-01-01T00:00:00Z".into(), &mut out).unwrap();
        assert_eq!(written, 2_000);
        let lines: Vec<serde_json::Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2_000);
        // The same stream the publisher draws from, reading for reading.
        let mut source = Source::new(&settings, 7);
        for line in &lines {
            let (reading, label) = loop {
                if let Some((r, l)) = source.next("2026-01-01T00:00:00Z".into()) {
                    break (r.into_owned(), l);
                }
            };
            assert_eq!(line["reading"]["sensor_id"], *reading.sensor_id);
            assert_eq!(line["reading"]["seq"], reading.seq);
            assert_eq!(line["reading"]["temperature"], reading.temperature);
            assert_eq!(line["fault"].as_str(), label.map(|l| l.kind.name()));
            assert_eq!(line["fault_id"].as_u64(), label.map(|l| l.id));
        }
        let kinds: std::collections::BTreeSet<_> =
            lines.iter().filter_map(|l| l["fault"].as_str()).collect();
        assert_eq!(kinds, ["dropout", "spike"].into());
    }
}
