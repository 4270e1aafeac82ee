//! The processing semantics in their plainest form: the specification the real code is held to.
//!
//! This is the original Python `TemperatureProcessor` (a `deque(maxlen=10)` and a threshold),
//! made per sensor. It is kept naive on purpose; property tests compare the processor's
//! temperature job running on the engine's state store with it, the end-to-end tests compute
//! the expected output of a whole topic with it, and the audit command checks deployments
//! with it.

use std::collections::{HashMap, VecDeque};

use crate::{Alert, Average, Event, ProcessingRules, Reading};

/// The reference model, fed one reading at a time.
#[derive(Debug, Clone)]
pub struct Model {
    rules: ProcessingRules,
    windows: HashMap<String, VecDeque<f64>>,
}

impl Model {
    /// No sensor seen yet.
    pub fn new(rules: ProcessingRules) -> Self {
        Self {
            rules,
            windows: HashMap::new(),
        }
    }

    /// The events one reading causes, alert first.
    pub fn apply<'a>(&mut self, r: &Reading<'a>) -> Vec<Event<'a>> {
        let rules = self.rules;
        let window = self
            .windows
            .entry(r.sensor_id.clone().into_owned())
            .or_default();
        if window.len() == rules.window_size {
            window.pop_front();
        }
        window.push_back(r.temperature);
        let mut events = Vec::new();
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
        events
    }
}

/// The events that `readings`, taken in order, must produce.
pub fn expected_events<'r, 'a: 'r>(
    readings: impl IntoIterator<Item = &'r Reading<'a>>,
    rules: ProcessingRules,
) -> Vec<Event<'a>> {
    let mut model = Model::new(rules);
    readings.into_iter().flat_map(|r| model.apply(r)).collect()
}
