//! Bring your own model: an ONNX classifier or regressor that scores each sensor's window,
//! run with [tract](https://github.com/sonos/tract) (pure Rust: no native runtime to install
//! or ship, and the model is optimised once for the fixed input shape at startup).
//!
//! **Features** (what a model is trained on; `models/train.py` computes the same): for a
//! sensor's full window of its last N readings `t_1 … t_N`, oldest first, with `m` and `s` the
//! mean and the population standard deviation of the N − 1 earlier ones,
//! `[t_1 − m, …, t_N − m, s, r]`, where `r` counts how many of the newest readings repeat the
//! one before them. The input is float32 `[1, N + 2]`.
//!
//! **Score**: the last value of the model's last output (for scikit-learn classifiers exported
//! with `zipmap: False`, the probability of the last class; for a regressor, its value). A
//! score at or over the threshold is an `anomaly` event of kind `onnx`, whose `expected`,
//! `low` and `high` are `m` and the earlier readings' minimum and maximum: what the model saw.
//!
//! The scorer is compiled only with the `onnx` feature (tract is a large build); without it, a
//! configured model is an error naming the key. Without a model configured, nothing of this
//! runs: the default pipeline pays nothing.

use std::borrow::Cow;

use sensor_contract::model::ModelEvent;
use sensor_contract::{Reading, Window};

/// The features of a full `window` into `out` (cleared first): see the module's docs.
pub fn features(window: &Window, out: &mut Vec<f32>) {
    out.clear();
    let n = window.len();
    let earlier = || window.iter().take(n - 1);
    let mean = earlier().sum::<f64>() / (n - 1).max(1) as f64;
    let variance = earlier().map(|t| (t - mean) * (t - mean)).sum::<f64>() / (n - 1).max(1) as f64;
    out.extend(window.iter().map(|t| (t - mean) as f32));
    out.push(variance.sqrt() as f32);
    // The run of repeats that ends at the newest reading.
    let repeats = window
        .iter()
        .zip(window.iter().skip(1))
        .fold(
            0u32,
            |run, (older, newer)| if older == newer { run + 1 } else { 0 },
        );
    out.push(repeats as f32);
}

/// The `onnx` anomaly for `reading`, the newest of its full `window`, scored `score`.
pub fn anomaly<'a>(window: &Window, reading: &'a Reading<'_>, score: f64) -> ModelEvent<'a> {
    let (expected, low, high) = context(window);
    ModelEvent::Anomaly {
        sensor_id: Cow::Borrowed(&reading.sensor_id),
        seq: reading.seq,
        kind: Cow::Borrowed("onnx"),
        score,
        temperature: reading.temperature,
        expected,
        low,
        high,
        timestamp: Cow::Borrowed(&reading.timestamp),
    }
}

/// What the window showed the model: the earlier readings' mean, minimum and maximum.
pub fn context(window: &Window) -> (f64, f64, f64) {
    let n = window.len();
    let (mut sum, mut low, mut high) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
    for t in window.iter().take(n - 1) {
        sum += t;
        low = low.min(t);
        high = high.max(t);
    }
    (sum / (n - 1).max(1) as f64, low, high)
}

/// Why a model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// This build has no ONNX runtime.
    #[error("this processor was built without ONNX support (build it with `--features onnx`)")]
    NotBuilt,
    /// The model did not load, or does not take the features.
    #[error("{0}")]
    Model(String),
}

#[cfg(feature = "onnx")]
mod onnx {
    use std::path::Path;

    use tract_onnx::prelude::*;

    use super::ScorerError;

    type Plan = std::sync::Arc<TypedSimplePlan>;

    /// A loaded, optimised ONNX model.
    pub struct Scorer {
        plan: Plan,
        width: usize,
    }

    impl std::fmt::Debug for Scorer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Scorer")
                .field("width", &self.width)
                .finish()
        }
    }

    impl Scorer {
        /// Loads the model at `path` for windows of `window_size` readings, and scores a zero
        /// input once, so that a model that cannot run fails here and not on the stream.
        pub fn load(path: &Path, window_size: usize) -> Result<Self, ScorerError> {
            let width = window_size + 2;
            let model = |e: TractError| ScorerError::Model(format!("{e:#}"));
            let plan = tract_onnx::onnx()
                .model_for_path(path)
                .map_err(model)?
                .with_input_fact(0, f32::fact([1, width]).into())
                .map_err(model)?
                .into_optimized()
                .map_err(|e| {
                    ScorerError::Model(format!(
                        "{e:#} (the model must take float32 [1, {width}]: processor.window_size \
                         {window_size} + 2 features)"
                    ))
                })?
                .into_runnable()
                .map_err(model)?;
            let scorer = Self { plan, width };
            scorer.score(&vec![0.0; width])?;
            Ok(scorer)
        }

        /// The model's score for one feature vector.
        pub fn score(&self, features: &[f32]) -> Result<f32, ScorerError> {
            let model = |e: TractError| ScorerError::Model(format!("{e:#}"));
            let input = Tensor::from_shape(&[1, self.width], features).map_err(model)?;
            let outputs = self.plan.run(tvec!(input.into())).map_err(model)?;
            let last = outputs
                .last()
                .ok_or_else(|| ScorerError::Model("the model has no output".into()))?;
            let value = match last.datum_type() {
                DatumType::I64 => last
                    .to_plain_array_view::<i64>()
                    .map_err(model)?
                    .iter()
                    .last()
                    .map(|v| *v as f32),
                _ => last
                    .cast_to::<f32>()
                    .map_err(model)?
                    .to_plain_array_view::<f32>()
                    .map_err(model)?
                    .iter()
                    .last()
                    .copied(),
            };
            value.ok_or_else(|| ScorerError::Model("the model's last output is empty".into()))
        }
    }
}

#[cfg(feature = "onnx")]
pub use onnx::Scorer;

/// Without the `onnx` feature: a model cannot be loaded.
#[cfg(not(feature = "onnx"))]
#[derive(Debug)]
pub struct Scorer(std::convert::Infallible);

#[cfg(not(feature = "onnx"))]
impl Scorer {
    /// Always [`ScorerError::NotBuilt`].
    pub fn load(_path: &std::path::Path, _window_size: usize) -> Result<Self, ScorerError> {
        Err(ScorerError::NotBuilt)
    }

    /// Never called: no scorer exists.
    pub fn score(&self, _features: &[f32]) -> Result<f32, ScorerError> {
        match self.0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(values: &[f64]) -> Window {
        let mut w = Window::new(values.len());
        values.iter().for_each(|v| w.push(*v));
        w
    }

    #[test]
    fn features_center_on_the_earlier_readings() {
        let mut out = Vec::new();
        // Earlier 20, 22, 21, 21 (mean 21, σ √0.5); newest 30.
        features(&window(&[20.0, 22.0, 21.0, 21.0, 30.0]), &mut out);
        assert_eq!(out, [-1.0, 1.0, 0.0, 0.0, 9.0, 0.5f64.sqrt() as f32, 0.0]);
        // A stuck tail: three of the newest repeat the one before.
        features(&window(&[19.0, 20.0, 20.0, 20.0, 20.0]), &mut out);
        assert_eq!(out[6], 3.0);
        assert_eq!(
            context(&window(&[20.0, 22.0, 21.0, 21.0, 30.0])),
            (21.0, 20.0, 22.0)
        );
    }

    #[test]
    fn a_model_that_cannot_load_says_why() {
        let dir = std::env::temp_dir().join(format!("scorer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-model.onnx");
        std::fs::write(&path, b"not protobuf").unwrap();
        let error = Scorer::load(&path, 10).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        if cfg!(feature = "onnx") {
            assert!(
                !error.is_empty() && !error.contains("without ONNX"),
                "{error}"
            );
        } else {
            assert!(error.contains("built without ONNX support"), "{error}");
        }
    }
}
