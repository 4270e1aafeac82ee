//! The processing semantics in their plainest form: the specification the real code is held to.
//!
//! This is the original Python `TemperatureProcessor` (a `deque(maxlen=10)` and a threshold),
//! made per sensor. It is kept naive on purpose; property tests compare the optimised
//! [`SensorWindows`](crate::SensorWindows) with it, and the end-to-end tests compute the
//! expected output of a whole topic with it.

use std::collections::{HashMap, VecDeque};

use crate::{Alert, Average, Event, ProcessingRules, Reading};

/// The events that `readings`, taken in order, must produce.
pub fn expected_events<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
    rules: ProcessingRules,
) -> Vec<Event> {
    let mut windows: HashMap<&str, VecDeque<f64>> = HashMap::new();
    let mut events = Vec::new();
    for r in readings {
        let window = windows.entry(&r.sensor_id).or_default();
        if window.len() == rules.window_size {
            window.pop_front();
        }
        window.push_back(r.temperature);
        if r.temperature > rules.threshold {
            events.push(Event::Alert(Alert {
                sensor_id: r.sensor_id.clone(),
                seq: r.seq,
                temperature: r.temperature,
                threshold: rules.threshold,
                timestamp: r.timestamp.clone(),
            }));
        }
        if window.len() == rules.window_size {
            events.push(Event::Average(Average {
                sensor_id: r.sensor_id.clone(),
                seq: r.seq,
                average: window.iter().sum::<f64>() / window.len() as f64,
                window_size: rules.window_size,
                timestamp: r.timestamp.clone(),
            }));
        }
    }
    events
}
