//! The temperature job: a reading updates its sensor's window of the last `window_size`
//! temperatures; an alert for a reading over the threshold, an average for each full window.
//! With anomalies on, the reading also goes through its sensor's online model
//! ([`sensor_contract::model`]): an `anomaly` event when it judges the reading one, a
//! `prediction` event every `prediction_every` readings, on a topic of their own. The model is
//! part of the sensor's state, so it is in the changelog with the window: restored after a
//! crash or a rebalance, never retrained from cold, and its events are in the same
//! transactions as the alerts and averages. Everything else (batches, transactions, the
//! changelog, restores) is the engine's.

use std::cell::RefCell;
use std::sync::Arc;

use sensor_contract::model::{ModelSettings, SensorModel, judge};
use sensor_contract::state::step_each;
use sensor_contract::{DecodeError, DecodeOptions, ProcessingRules, RawRecord, Reading, Window};
use stream_engine::{ApplyContext, InputRecord, Job, Outputs, Rejection};

use crate::scorer::{self, Scorer};

/// Header naming the event type on the output topic (`alert` or `average`).
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// Index of the events topic among the job's outputs.
pub const EVENTS: usize = 0;

/// Index of the anomalies topic among the job's outputs (when anomalies are on).
pub const ANOMALIES: usize = 1;

/// The temperature job.
#[derive(Debug, Clone)]
pub struct TemperatureJob {
    rules: ProcessingRules,
    options: DecodeOptions,
    anomalies: Option<(ModelSettings, u32)>,
    scorer: Option<(Arc<Scorer>, f64)>,
}

/// A sensor's state: its window, and its model.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorState {
    /// The last `window_size` temperatures.
    pub window: Window,
    /// The online model, once anomalies are on and a reading was judged (`None`: a new model).
    /// Boxed: a processor holds a state per sensor, and with anomalies off (the default) the
    /// 56 bytes of a model in every slot of the store were a quarter of its memory per sensor.
    pub model: Option<Box<SensorModel>>,
}

/// A record that is not a usable reading: the contract's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Unusable(pub DecodeError);

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Rejection for Unusable {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

impl TemperatureJob {
    /// A job applying `rules`, decoding with `options`.
    pub fn new(rules: ProcessingRules, options: DecodeOptions) -> Self {
        Self {
            rules,
            options,
            anomalies: None,
            scorer: None,
        }
    }

    /// The same job, with each sensor's model run with `model`, and a prediction every
    /// `prediction_every` readings of a sensor (0: none).
    pub fn with_anomalies(mut self, model: ModelSettings, prediction_every: u32) -> Self {
        self.anomalies = Some((model, prediction_every));
        self
    }

    /// The same job, with `scorer` scoring each full window too: an `onnx` anomaly when its
    /// score is at least `threshold` (see [`crate::scorer`]).
    pub fn with_scorer(mut self, scorer: Arc<Scorer>, threshold: f64) -> Self {
        self.scorer = Some((scorer, threshold));
        self
    }
}

thread_local! {
    /// The feature vector, reused from reading to reading.
    static FEATURES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Scores `reading`'s full window with the ONNX model; an `onnx` anomaly at or over
/// `threshold`. A model that fails on a reading is logged and counted, and judges nothing.
fn score(
    scorer: &Scorer,
    threshold: f64,
    window: &Window,
    reading: &Reading<'_>,
    out: &mut Outputs,
) {
    let result = FEATURES.with_borrow_mut(|features| {
        scorer::features(window, features);
        scorer.score(features)
    });
    let score = match result {
        Ok(score) => f64::from(score),
        Err(error) => {
            metrics::counter!(crate::metrics::ONNX_ERRORS).increment(1);
            tracing::warn!(%error, sensor_id = %reading.sensor_id, seq = reading.seq, "the ONNX model failed on a reading");
            return;
        }
    };
    if score < threshold {
        return;
    }
    let event = scorer::anomaly(window, reading, score);
    out.emit(
        ANOMALIES,
        reading.sensor_id.as_bytes(),
        event.kind(),
        |value| event.write_json(value),
    );
}

impl Job for TemperatureJob {
    type Input<'r> = Reading<'r>;
    type State = SensorState;
    type Reject = Unusable;

    /// Version 3: version 1's window, then the model's [`SensorModel::encode`] bytes (49, or
    /// 145 with daily seasonality) when anomalies are on, nothing when they are off.
    /// Version 2: the same, the model always there and always 49 bytes.
    /// Version 1: the number of values (u32, big-endian), then each, oldest first (f64,
    /// little-endian). Version 0 was JSON `{"offset":…,"values":[…]}`. A state without a model
    /// comes back with a new one, which warms up again.
    const STATE_VERSION: u16 = 3;

    fn decode<'r>(&self, record: &InputRecord<'r>) -> Result<Reading<'r>, Unusable> {
        let raw = RawRecord {
            key: record.key,
            payload: record.value,
            timestamp_ms: record.timestamp_ms,
            offset: record.offset,
        };
        Reading::decode(&raw, &self.options).map_err(Unusable)
    }

    fn key<'i>(&self, reading: &'i Reading<'_>) -> &'i str {
        &reading.sensor_id
    }

    fn new_state(&self) -> SensorState {
        SensorState {
            window: Window::new(self.rules.window_size),
            model: None,
        }
    }

    fn apply(
        &self,
        reading: &Reading<'_>,
        state: &mut SensorState,
        _context: &ApplyContext,
        out: &mut Outputs,
    ) -> Result<(), Unusable> {
        step_each(&mut state.window, reading, self.rules, |event| {
            out.emit(
                EVENTS,
                event.sensor_id().as_bytes(),
                event.kind(),
                |value| event.write_json(value),
            );
        });
        if let Some((scorer, threshold)) = &self.scorer
            && state.window.is_full()
        {
            score(scorer, *threshold, &state.window, reading, out);
        }
        if let Some((model, prediction_every)) = &self.anomalies {
            let key = reading.sensor_id.as_bytes();
            judge(
                state.model.get_or_insert_with(Box::default),
                reading,
                model,
                *prediction_every,
                |event| {
                    out.emit(ANOMALIES, key, event.kind(), |value| {
                        event.write_json(value)
                    });
                },
            );
        }
        Ok(())
    }

    fn encode_state(&self, state: &SensorState, out: &mut Vec<u8>) {
        let window = &state.window;
        out.extend_from_slice(&(window.len() as u32).to_be_bytes());
        let (older, newer) = window.as_slices();
        for value in older.iter().chain(newer) {
            out.extend_from_slice(&value.to_le_bytes());
        }
        if self.anomalies.is_some() {
            match &state.model {
                Some(model) => model.encode(out),
                None => SensorModel::default().encode(out),
            }
        }
    }

    /// A window of the configured size (the newest values are kept if it was larger when
    /// written), and the model (checked, and kept only with anomalies on: off, it is not
    /// written again).
    fn decode_state(&self, version: u16, bytes: &[u8]) -> Result<SensorState, String> {
        let mut window = Window::new(self.rules.window_size);
        let model = match version {
            2 | 3 => {
                let (count, rest) = bytes
                    .split_first_chunk::<4>()
                    .ok_or("window state shorter than its length")?;
                let count = u32::from_be_bytes(*count) as usize;
                let (values, model) = rest
                    .split_at_checked(count.saturating_mul(8))
                    .ok_or_else(|| format!("window state says {count} values but is shorter"))?;
                values.chunks_exact(8).for_each(|v| {
                    window.push(f64::from_le_bytes(v.try_into().unwrap_or_default()))
                });
                if model.is_empty() && version == 3 {
                    None
                } else {
                    let model = SensorModel::decode(model).ok_or_else(|| {
                        format!(
                            "the sensor's model state ({} bytes) is not one",
                            model.len()
                        )
                    })?;
                    self.anomalies.is_some().then(|| Box::new(model))
                }
            }
            _ => None,
        };
        match version {
            0 => {
                #[derive(serde::Deserialize)]
                struct V0 {
                    values: Vec<f64>,
                }
                let v0: V0 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                v0.values.into_iter().for_each(|v| window.push(v));
            }
            2 | 3 => {}
            1 => {
                let (count, values) = bytes
                    .split_first_chunk::<4>()
                    .ok_or("window state shorter than its length")?;
                let count = u32::from_be_bytes(*count) as usize;
                if values.len() != count * 8 {
                    return Err(format!(
                        "window state says {count} values but holds {} bytes",
                        values.len()
                    ));
                }
                for chunk in values.chunks_exact(8) {
                    let mut value = [0u8; 8];
                    value.copy_from_slice(chunk);
                    window.push(f64::from_le_bytes(value));
                }
            }
            other => return Err(format!("window state version {other} is unknown")),
        }
        Ok(SensorState { window, model })
    }
}

#[cfg(test)]
mod tests;
