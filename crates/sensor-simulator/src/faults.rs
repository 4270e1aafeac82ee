//! Labelled sensor faults, injected into the clean signal so that a detector can be scored.
//!
//! Off by default (`rate = 0`): the readings are then exactly today's for a seed. When on, the
//! clean signal is still the same (the faults draw from a random stream of their own), and each
//! sensor now and then starts one fault of the kinds enabled, which lasts its length:
//!
//! | kind | what the sensor reports | length (readings) |
//! |---|---|---|
//! | `spike` | one outlier, 8–20 °C above or below | 1 |
//! | `level_shift` | the signal offset by 4–10 °C, up or down | 30–80 |
//! | `drift` | an offset growing by 0.05–0.15 °C per reading | 60–150 |
//! | `stuck` | the last value before the fault, repeated | 20–60 |
//! | `noise` | the signal plus Gaussian noise of σ 3–6 °C | 15–40 |
//! | `dropout` | nothing (the readings are not sent; their `seq` numbers are skipped) | 10–30 |
//!
//! **Ground truth**: each reading a fault changed carries the headers `fault` (the kind) and
//! `fault-id` (a number, the same for every reading of one fault); a dropout labels the first
//! reading after its gap, the first one a detector can see it in. The realistic profile's own
//! spikes over 40 °C (about 1 % of readings, there for the threshold's alerts) are outliers
//! too: with injection on they are labelled `spike` as well, each a fault of its own.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Deserialize;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// One outlier.
    Spike,
    /// A sudden, lasting offset.
    LevelShift,
    /// A slowly growing offset.
    Drift,
    /// The same value, repeated.
    Stuck,
    /// A burst of noise.
    Noise,
    /// Readings missing.
    Dropout,
}

impl FaultKind {
    /// Every kind, in the order of the table above.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Spike,
        FaultKind::LevelShift,
        FaultKind::Drift,
        FaultKind::Stuck,
        FaultKind::Noise,
        FaultKind::Dropout,
    ];

    /// Its name in settings and in the `fault` header.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Spike => "spike",
            FaultKind::LevelShift => "level_shift",
            FaultKind::Drift => "drift",
            FaultKind::Stuck => "stuck",
            FaultKind::Noise => "noise",
            FaultKind::Dropout => "dropout",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its length in readings, drawn.
    fn length(self, rng: &mut ChaCha8Rng) -> u32 {
        match self {
            FaultKind::Spike => 1,
            FaultKind::LevelShift => rng.random_range(30..=80),
            FaultKind::Drift => rng.random_range(60..=150),
            FaultKind::Stuck => rng.random_range(20..=60),
            FaultKind::Noise => rng.random_range(15..=40),
            FaultKind::Dropout => rng.random_range(10..=30),
        }
    }

    /// Its size (an offset, a slope or a deviation, °C), drawn; signed where it has a direction.
    fn size(self, rng: &mut ChaCha8Rng) -> f64 {
        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        match self {
            FaultKind::Spike => sign * rng.random_range(8.0..20.0),
            FaultKind::LevelShift => sign * rng.random_range(4.0..10.0),
            FaultKind::Drift => sign * rng.random_range(0.05..0.15),
            FaultKind::Noise => rng.random_range(3.0..6.0),
            FaultKind::Stuck | FaultKind::Dropout => 0.0,
        }
    }
}

/// The `[simulator.faults]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Faults started per 1 000 readings of a sensor (while it has none); 0: no faults.
    pub rate: f64,
    /// The kinds drawn from, each as likely as the others.
    pub kinds: Vec<FaultKind>,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            rate: 0.0,
            kinds: FaultKind::ALL.to_vec(),
        }
    }
}

/// A reading's ground truth: which fault changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The fault's kind.
    pub kind: FaultKind,
    /// The fault's number, counted from 1 over the run.
    pub id: u64,
}

/// What to do with one clean reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Send this temperature, labelled if a fault changed it.
    Send {
        /// The temperature to report (two decimals).
        temperature: f64,
        /// The fault, if any.
        label: Option<Label>,
    },
    /// Send nothing: a dropout.
    Skip,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    label: Label,
    remaining: u32,
    size: f64,
    /// Readings of the fault so far.
    step: u32,
    stuck_at: f64,
}

/// Injects faults into per-sensor streams of clean readings.
#[derive(Debug, Clone)]
pub struct Injector {
    rng: ChaCha8Rng,
    settings: FaultSettings,
    active: Vec<Option<Active>>,
    /// The last temperature sent per sensor (what a stuck sensor repeats).
    last: Vec<Option<f64>>,
    /// A dropout that ended: its label goes on the sensor's next reading.
    pending_dropout: Vec<Option<Label>>,
    faults: u64,
}

/// Mixed into the run's seed for the faults' own stream, so that the clean signal stays the
/// seed's.
const STREAM: u64 = 0x6661_756c_7473; // "faults"

impl Injector {
    /// An injector for `sensors` sensors.
    pub fn new(seed: u64, sensors: usize, settings: FaultSettings) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ STREAM),
            settings,
            active: vec![None; sensors],
            last: vec![None; sensors],
            pending_dropout: vec![None; sensors],
            faults: 0,
        }
    }

    /// Whether it injects anything.
    pub fn is_on(&self) -> bool {
        self.settings.rate > 0.0 && !self.settings.kinds.is_empty()
    }

    /// Faults started so far.
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// What sensor `sensor` reports for its next clean reading `clean` (`spiked`: the
    /// generator made it one of its own spikes).
    pub fn apply(&mut self, sensor: usize, clean: f64, spiked: bool) -> Outcome {
        if !self.is_on() {
            return Outcome::Send {
                temperature: clean,
                label: None,
            };
        }
        // The reading after a gap shows the gap, and nothing else.
        if let Some(label) = self.pending_dropout[sensor].take() {
            return self.send(sensor, clean, Some(label));
        }
        if self.active[sensor].is_none()
            && self
                .rng
                .random_bool((self.settings.rate / 1_000.0).min(1.0))
        {
            let kinds = &self.settings.kinds;
            let kind = kinds[self.rng.random_range(0..kinds.len())];
            self.faults += 1;
            self.active[sensor] = Some(Active {
                label: Label {
                    kind,
                    id: self.faults,
                },
                remaining: kind.length(&mut self.rng),
                size: kind.size(&mut self.rng),
                step: 0,
                stuck_at: self.last[sensor].unwrap_or(clean),
            });
        }
        let Some(mut fault) = self.active[sensor] else {
            let label = spiked.then(|| {
                self.faults += 1;
                Label {
                    kind: FaultKind::Spike,
                    id: self.faults,
                }
            });
            return self.send(sensor, clean, label);
        };
        fault.step += 1;
        fault.remaining -= 1;
        self.active[sensor] = (fault.remaining > 0).then_some(fault);
        let label = Some(fault.label);
        let temperature = match fault.label.kind {
            FaultKind::Spike | FaultKind::LevelShift => clean + fault.size,
            FaultKind::Drift => clean + fault.size * f64::from(fault.step),
            FaultKind::Stuck => fault.stuck_at,
            FaultKind::Noise => {
                let noise = Normal::new(0.0, fault.size).unwrap_or_else(|_| unreachable!());
                clean + noise.sample(&mut self.rng)
            }
            FaultKind::Dropout => {
                if fault.remaining == 0 {
                    self.pending_dropout[sensor] = label;
                }
                return Outcome::Skip;
            }
        };
        self.send(sensor, temperature, label)
    }

    fn send(&mut self, sensor: usize, temperature: f64, label: Option<Label>) -> Outcome {
        let temperature = (temperature * 100.0).round() / 100.0;
        self.last[sensor] = Some(temperature);
        Outcome::Send { temperature, label }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(settings: FaultSettings, n: usize) -> Vec<Outcome> {
        let mut injector = Injector::new(7, 1, settings);
        (0..n)
            .map(|i| injector.apply(0, 20.0 + (i % 3) as f64 * 0.1, false))
            .collect()
    }

    #[test]
    fn off_sends_the_clean_signal_unchanged() {
        let outcomes = run(FaultSettings::default(), 1_000);
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(
                *outcome,
                Outcome::Send {
                    temperature: 20.0 + (i % 3) as f64 * 0.1,
                    label: None
                }
            );
        }
    }

    #[test]
    fn each_kind_changes_the_signal_as_documented_and_labels_it() {
        for kind in FaultKind::ALL {
            let settings = FaultSettings {
                rate: 20.0,
                kinds: vec![kind],
            };
            let outcomes = run(settings.clone(), 20_000);
            assert_eq!(outcomes, run(settings, 20_000), "seeded");
            let labelled: Vec<(usize, Label, f64)> = outcomes
                .iter()
                .enumerate()
                .filter_map(|(i, o)| match o {
                    Outcome::Send {
                        temperature,
                        label: Some(l),
                    } => Some((i, *l, *temperature)),
                    _ => None,
                })
                .collect();
            let skipped = outcomes.iter().filter(|o| **o == Outcome::Skip).count();
            let faults: std::collections::BTreeSet<u64> =
                labelled.iter().map(|(_, l, _)| l.id).collect();
            assert!(faults.len() > 20, "{kind:?}: {} faults", faults.len());
            assert!(labelled.iter().all(|(_, l, _)| l.kind == kind));
            for (i, _, t) in &labelled {
                let clean = 20.0 + (i % 3) as f64 * 0.1;
                let off = (t - clean).abs();
                match kind {
                    FaultKind::Spike => assert!((7.99..=20.01).contains(&off), "{off}"),
                    FaultKind::LevelShift => assert!((3.99..=10.01).contains(&off), "{off}"),
                    FaultKind::Drift => assert!(off <= 0.15 * 150.0 + 0.01, "{off}"),
                    FaultKind::Stuck | FaultKind::Noise | FaultKind::Dropout => {}
                }
            }
            match kind {
                FaultKind::Dropout => {
                    // One labelled reading per gap, after it; the gap's readings are not sent.
                    assert_eq!(labelled.len(), faults.len());
                    assert!((10 * faults.len()..=30 * faults.len()).contains(&skipped));
                    for (i, _, _) in &labelled {
                        assert_eq!(outcomes[i - 1], Outcome::Skip);
                    }
                }
                FaultKind::Stuck => {
                    assert_eq!(skipped, 0);
                    // Every reading of one stuck fault repeats one value.
                    for id in &faults {
                        let values: std::collections::BTreeSet<u64> = labelled
                            .iter()
                            .filter(|(_, l, _)| l.id == *id)
                            .map(|(_, _, t)| t.to_bits())
                            .collect();
                        assert_eq!(values.len(), 1);
                    }
                }
                _ => assert_eq!(skipped, 0),
            }
        }
    }

    #[test]
    fn the_rate_is_per_thousand_readings_of_a_sensor() {
        let outcomes = run(
            FaultSettings {
                rate: 10.0,
                kinds: vec![FaultKind::Spike],
            },
            100_000,
        );
        let spikes = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Send { label: Some(_), .. }))
            .count();
        assert!((800..1_200).contains(&spikes), "{spikes} spikes");
    }
}
