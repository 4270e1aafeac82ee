//! Scoring a detector against the injected faults' ground truth, with documented rules:
//!
//! - a fault is **detected** when the detector flags at least one of its labelled readings; its
//!   **delay** is how many of its readings came before the first flagged one (0: at onset);
//! - a flag on an unlabelled reading is a **false positive**, except in the **recovery** of a
//!   fault, the `RECOVERY` readings after its last labelled one (the end of a shift or a drift is
//!   a real change too); those are counted apart;
//! - the **false-positive rate** is false positives per unlabelled reading.

use std::collections::BTreeMap;

use crate::faults::{FaultKind, Label};

/// Readings after a fault's last labelled reading whose flags are its recovery, not false
/// positives.
pub const RECOVERY: usize = 10;

/// One sensor's readings as sent: the label of each, and whether the detector flagged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scored {
    /// The ground truth.
    pub label: Option<Label>,
    /// The detector's verdict.
    pub flagged: bool,
}

/// One kind's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindScore {
    /// Faults injected.
    pub faults: usize,
    /// Faults detected.
    pub detected: usize,
    /// Each detected fault's delay, in readings.
    pub delays: Vec<usize>,
}

impl KindScore {
    /// Detected / injected.
    pub fn recall(&self) -> f64 {
        self.detected as f64 / self.faults.max(1) as f64
    }

    /// The median delay.
    pub fn median_delay(&self) -> Option<usize> {
        let mut delays = self.delays.clone();
        delays.sort_unstable();
        delays.get(delays.len() / 2).copied()
    }
}

/// A run's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Per kind.
    pub kinds: BTreeMap<FaultKind, KindScore>,
    /// Unlabelled readings.
    pub normal: usize,
    /// Flags on unlabelled readings outside recoveries.
    pub false_positives: usize,
    /// Flags in recoveries.
    pub recovery_flags: usize,
    /// Flags on labelled readings.
    pub true_flags: usize,
}

impl Score {
    /// False positives per unlabelled reading.
    pub fn false_positive_rate(&self) -> f64 {
        self.false_positives as f64 / self.normal.max(1) as f64
    }

    /// Flags on labelled readings / all flags outside recoveries.
    pub fn precision(&self) -> f64 {
        self.true_flags as f64 / (self.true_flags + self.false_positives).max(1) as f64
    }

    /// Adds one sensor's readings, in order.
    pub fn add_sensor(&mut self, readings: &[Scored]) {
        let mut first_flag: BTreeMap<u64, (FaultKind, Option<usize>)> = BTreeMap::new();
        let mut position: BTreeMap<u64, usize> = BTreeMap::new();
        let mut since_fault = usize::MAX;
        for reading in readings {
            match reading.label {
                Some(label) => {
                    since_fault = 0;
                    let at = position.entry(label.id).or_insert(0);
                    let entry = first_flag.entry(label.id).or_insert((label.kind, None));
                    if reading.flagged {
                        self.true_flags += 1;
                        entry.1.get_or_insert(*at);
                    }
                    *at += 1;
                }
                None => {
                    since_fault = since_fault.saturating_add(1);
                    self.normal += 1;
                    if reading.flagged {
                        if since_fault <= RECOVERY {
                            self.recovery_flags += 1;
                        } else {
                            self.false_positives += 1;
                        }
                    }
                }
            }
        }
        for (kind, delay) in first_flag.into_values() {
            let score = self.kinds.entry(kind).or_default();
            score.faults += 1;
            if let Some(delay) = delay {
                score.detected += 1;
                score.delays.push(delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Injector, Outcome};
    use crate::{FaultSettings, Generator, Profile};
    use sensor_contract::model::{ModelSettings, SensorModel};

    fn label(kind: FaultKind, id: u64) -> Option<Label> {
        Some(Label { kind, id })
    }

    #[test]
    fn the_rules_count_detections_delays_and_false_positives() {
        let n = |flagged| Scored {
            label: None,
            flagged,
        };
        let f = |kind, id, flagged| Scored {
            label: label(kind, id),
            flagged,
        };
        let mut score = Score::default();
        let mut readings = vec![n(true), n(false)];
        readings.extend([
            f(FaultKind::LevelShift, 1, false),
            f(FaultKind::LevelShift, 1, true),
            f(FaultKind::LevelShift, 1, true),
        ]);
        readings.extend([n(true)]); // recovery
        readings.extend(std::iter::repeat_n(n(false), RECOVERY));
        readings.extend([n(true), f(FaultKind::Spike, 2, false)]);
        score.add_sensor(&readings);
        assert_eq!(score.false_positives, 2);
        assert_eq!(score.recovery_flags, 1);
        assert_eq!(score.true_flags, 2);
        assert_eq!(score.kinds[&FaultKind::LevelShift].delays, [1]);
        assert_eq!(score.kinds[&FaultKind::Spike].detected, 0);
        assert_eq!(score.normal, 4 + RECOVERY);
    }

    /// The online model on the simulator's realistic signal with every kind of fault: its
    /// figures, printed; and floors it must not fall below (the targets are for the
    /// benchmark through the real pipeline).
    #[test]
    fn the_online_model_catches_the_injected_faults() {
        let (sensors, per_sensor) = (20usize, 5_000usize);
        let mut generator = Generator::new(sensors as u32, 3, Profile::Realistic);
        let mut injector = Injector::new(
            3,
            sensors,
            FaultSettings {
                rate: 4.0,
                ..FaultSettings::default()
            },
        );
        let settings = ModelSettings::default();
        let mut models = vec![SensorModel::default(); sensors];
        let mut streams: Vec<Vec<Scored>> = vec![Vec::new(); sensors];
        for _ in 0..sensors * per_sensor {
            let sensor = generator.next_index();
            let (reading, spiked) = generator.next_reading_spiked(String::new());
            let seq = reading.seq;
            if let Outcome::Send { temperature, label } =
                injector.apply(sensor, reading.temperature, spiked)
            {
                let judged = models[sensor].update(seq, temperature, None, &settings);
                // The generator's own spikes over 40 °C are part of the "normal" signal: the
                // threshold alerts on them; they are not faults of the sensor.
                streams[sensor].push(Scored {
                    label,
                    flagged: judged.anomaly.is_some(),
                });
            }
        }
        let mut score = Score::default();
        for stream in &streams {
            score.add_sensor(stream);
        }
        for (kind, s) in &score.kinds {
            println!(
                "{:<12} {:>4} faults, recall {:.3}, median delay {:?}",
                kind.name(),
                s.faults,
                s.recall(),
                s.median_delay()
            );
        }
        println!(
            "normal readings {}, false positives {} ({:.3} %), recovery flags {}, precision {:.3}",
            score.normal,
            score.false_positives,
            100.0 * score.false_positive_rate(),
            score.recovery_flags,
            score.precision()
        );
        for kind in [
            FaultKind::Spike,
            FaultKind::LevelShift,
            FaultKind::Stuck,
            FaultKind::Dropout,
        ] {
            assert!(
                score.kinds[&kind].recall() >= 0.9,
                "{kind:?}: {:?}",
                score.kinds[&kind]
            );
        }
    }
}
