//! The processing rules, and what one reading does to its sensor's window: zero, one or two
//! events.

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

/// The processing rule for one reading and its sensor's window: append, then an alert if the
/// temperature is strictly over the threshold, then an average if the window is full.
pub fn step<'a>(
    window: &mut Window,
    reading: &Reading<'a>,
    rules: ProcessingRules,
    out: &mut Vec<Event<'a>>,
) {
    step_each(window, reading, rules, |event| out.push(event));
}

/// [`step`], handing each event to `emit` instead of collecting them: no allocation.
pub fn step_each<'a>(
    window: &mut Window,
    reading: &Reading<'a>,
    rules: ProcessingRules,
    mut emit: impl FnMut(Event<'a>),
) {
    window.push(reading.temperature);
    if reading.temperature > rules.threshold {
        emit(Event::Alert(Alert {
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
        emit(Event::Average(Average {
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

    fn reading(sensor: &str, seq: u64, temperature: f64) -> Reading<'static> {
        Reading {
            sensor_id: sensor.to_owned().into(),
            seq,
            temperature,
            timestamp: format!("2026-11-22T00:00:{:02}.000Z", seq % 60).into(),
        }
    }

    fn run<'a>(rules: ProcessingRules, readings: &[Reading<'a>]) -> Vec<Event<'a>> {
        let mut windows = std::collections::HashMap::new();
        let mut out = Vec::new();
        for r in readings {
            let window = windows
                .entry(r.sensor_id.to_string())
                .or_insert_with(|| Window::new(rules.window_size));
            step(window, r, rules, &mut out);
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
}
