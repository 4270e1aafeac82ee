//! Every sensor's window, and the rule that turns one reading into zero, one or two events.

use std::collections::HashMap;

use crate::{Alert, Average, Event, Reading, Window};

/// The processing parameters: window length and alert threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessingRules {
    /// Readings per window (≥ 1).
    pub window_size: usize,
    /// Readings strictly above this temperature (°C) raise an alert.
    pub threshold: f64,
}

impl Default for ProcessingRules {
    fn default() -> Self {
        Self {
            window_size: 10,
            threshold: 40.0,
        }
    }
}

/// The windows of a set of sensors (the processor keeps one per assigned partition).
#[derive(Debug, Clone)]
pub struct SensorWindows {
    rules: ProcessingRules,
    windows: HashMap<String, Window>,
}

impl SensorWindows {
    /// No sensor seen yet.
    pub fn new(rules: ProcessingRules) -> Self {
        Self {
            rules,
            windows: HashMap::new(),
        }
    }

    /// Applies one reading: appends it to its sensor's window, then pushes an alert if it is
    /// over the threshold and an average if the window is now full, in that order.
    pub fn apply<'a>(&mut self, reading: &Reading<'a>, out: &mut Vec<Event<'a>>) {
        let window_size = self.rules.window_size;
        let window = match self.windows.get_mut(&*reading.sensor_id) {
            Some(w) => w,
            None => self
                .windows
                .entry(reading.sensor_id.clone().into_owned())
                .or_insert_with(|| Window::new(window_size)),
        };
        step(window, reading, self.rules, out);
    }

    /// Number of sensors with a window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no sensor has a window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The window of one sensor, if it has one.
    pub fn window(&self, sensor_id: &str) -> Option<&Window> {
        self.windows.get(sensor_id)
    }

    /// The rules these windows apply.
    pub fn rules(&self) -> ProcessingRules {
        self.rules
    }
}

/// The processing rule for one reading and its sensor's window: append, then an alert if the
/// temperature is strictly over the threshold, then an average if the window is full.
pub fn step<'a>(
    window: &mut Window,
    reading: &Reading<'a>,
    rules: ProcessingRules,
    out: &mut Vec<Event<'a>>,
) {
    window.push(reading.temperature);
    if reading.temperature > rules.threshold {
        out.push(Event::Alert(Alert {
            sensor_id: reading.sensor_id.clone(),
            seq: reading.seq,
            temperature: reading.temperature,
            threshold: rules.threshold,
            timestamp: reading.timestamp.clone(),
        }));
    }
    if window.is_full()
        && let Some(average) = window.mean()
    {
        out.push(Event::Average(Average {
            sensor_id: reading.sensor_id.clone(),
            seq: reading.seq,
            average,
            window_size: window.capacity(),
            timestamp: reading.timestamp.clone(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use proptest::prelude::*;

    fn reading(sensor: &str, seq: u64, temperature: f64) -> Reading<'static> {
        Reading {
            sensor_id: sensor.to_owned().into(),
            seq,
            temperature,
            timestamp: format!("2026-11-22T00:00:{:02}.000Z", seq % 60).into(),
        }
    }

    fn run<'a>(rules: ProcessingRules, readings: &[Reading<'a>]) -> Vec<Event<'a>> {
        let mut state = SensorWindows::new(rules);
        let mut out = Vec::new();
        for r in readings {
            state.apply(r, &mut out);
        }
        out
    }

    #[test]
    fn the_original_example_one_sensor() {
        // The Python blog's processor: window 10, threshold 40, strictly greater.
        let temps = [
            10.0, 20.0, 30.0, 40.0, 50.0, 10.0, 20.0, 30.0, 40.0, 45.0, 5.0,
        ];
        let readings: Vec<_> = temps
            .iter()
            .enumerate()
            .map(|(i, t)| reading("s", i as u64, *t))
            .collect();
        let events = run(ProcessingRules::default(), &readings);
        let summary: Vec<(String, u64, f64)> = events
            .iter()
            .map(|e| match e {
                Event::Alert(a) => ("alert".into(), a.seq, a.temperature),
                Event::Average(a) => ("average".into(), a.seq, a.average),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("alert".into(), 4, 50.0),
                ("alert".into(), 9, 45.0),
                ("average".into(), 9, 29.5),
                ("average".into(), 10, 29.0),
            ]
        );
    }

    #[test]
    fn windows_are_per_sensor() {
        let rules = ProcessingRules {
            window_size: 2,
            threshold: 100.0,
        };
        let readings = [
            reading("a", 0, 1.0),
            reading("b", 0, 10.0),
            reading("a", 1, 3.0),
            reading("b", 1, 20.0),
        ];
        let events = run(rules, &readings);
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[0], Event::Average(a) if a.sensor_id == "a" && a.average == 2.0));
        assert!(matches!(&events[1], Event::Average(a) if a.sensor_id == "b" && a.average == 15.0));
    }

    #[test]
    fn equal_to_threshold_is_not_an_alert() {
        let events = run(ProcessingRules::default(), &[reading("s", 0, 40.0)]);
        assert!(events.is_empty());
    }

    fn arb_readings() -> impl Strategy<Value = Vec<Reading<'static>>> {
        prop::collection::vec((0u8..6, -50.0f64..80.0, 0u8..4), 0..400).prop_map(|items| {
            let mut seqs = [0u64; 6];
            items
                .into_iter()
                .map(|(sensor, t, round)| {
                    let s = sensor as usize;
                    seqs[s] += 1;
                    // Some readings sit exactly on common thresholds.
                    let t = if round == 0 { t.round() } else { t };
                    reading(&format!("sensor-{s}"), seqs[s], t)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_the_naive_reference(
            readings in arb_readings(),
            window_size in 1usize..16,
            threshold in prop::sample::select(vec![-10.0, 0.0, 20.0, 40.0, 40.5, 79.0]),
        ) {
            let rules = ProcessingRules { window_size, threshold };
            prop_assert_eq!(run(rules, &readings), reference::expected_events(&readings, rules));
        }
    }
}
