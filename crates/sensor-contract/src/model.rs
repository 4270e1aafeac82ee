//! A sensor's online model: a one-step-ahead forecast with an interval, and the detectors that
//! judge each reading against it. Pure and small (49 bytes of state per sensor, 145 with daily
//! seasonality), so that it can live in the changelog beside the window and continue after a
//! crash or a rescale.
//!
//! - **Forecast**: Holt's linear trend (level `ℓ`, trend `b`, smoothing `alpha`, `beta`):
//!   the next reading is expected at `ℓ + b`.
//! - **Seasonality** (optional, `daily`): an additive offset per hour of the day (UTC, from the
//!   reading's timestamp), Holt-Winters style: the reading is expected at `ℓ + b + s[h]`, and
//!   `s[h]` learns `gamma · (1 − alpha)` of each (clipped) error made in hour `h`. For sensors
//!   read sparsely (every few minutes or more), where the daily cycle moves the signal further
//!   between readings than the level's smoothing follows; at higher rates the level follows the
//!   cycle by itself.
//! - **Scale**: an exponentially weighted mean of the absolute one-step errors, `m`; for
//!   Gaussian errors `σ ≈ 1.2533 · m`. The interval is `expected ± sensitivity · σ`.
//! - **Robust updates**: the error a reading feeds into the level, trend and scale is clipped
//!   to the interval's half-width, so one outlier does not drag the model (a spike stays one
//!   anomaly) while a lasting change still moves it, a bounded step at a time. A repeated value
//!   does not feed the scale (a stuck spell would shrink it to nothing).
//! - **Detectors**, in this order, one anomaly per reading at most:
//!   `gap` (the sensor's `seq` jumped: readings are missing; score = how many),
//!   `stuck` (the same value `stuck_after` times in a row, and every later repeat; score =
//!   the run's length), `outlier` (outside the interval; score = error / σ).
//! - **Warm-up**: the first `warmup` readings of a sensor teach the model and judge nothing.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The events the model writes, keyed by sensor id, on the anomalies topic: JSON objects with
/// a `type` of `anomaly` or `prediction`. Floats are written as serde_json writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelEvent<'a> {
    /// A reading judged anomalous.
    Anomaly {
        /// The sensor.
        #[serde(borrow)]
        sensor_id: Cow<'a, str>,
        /// The reading's sequence number.
        seq: u64,
        /// `outlier`, `stuck` or `gap`.
        kind: Cow<'a, str>,
        /// How anomalous (see [`Anomaly::score`]).
        score: f64,
        /// The reading's temperature, °C.
        temperature: f64,
        /// What the model expected.
        expected: f64,
        /// The interval's lower end.
        low: f64,
        /// The interval's upper end.
        high: f64,
        /// The reading's timestamp.
        timestamp: Cow<'a, str>,
    },
    /// The forecast of a sensor's next reading, made after reading `seq`.
    Prediction {
        /// The sensor.
        #[serde(borrow)]
        sensor_id: Cow<'a, str>,
        /// The reading it was made after.
        seq: u64,
        /// That reading's temperature, °C (absent from events of versions before it was added).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
        /// The expected value, °C.
        expected: f64,
        /// The interval's lower end.
        low: f64,
        /// The interval's upper end.
        high: f64,
        /// The timestamp of the reading it was made after.
        timestamp: Cow<'a, str>,
    },
}

impl ModelEvent<'_> {
    /// `anomaly` or `prediction`: the `event-type` header.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelEvent::Anomaly { .. } => "anomaly",
            ModelEvent::Prediction { .. } => "prediction",
        }
    }

    /// Appends the JSON value to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, and every field serializes (no map keys, finite or not:
        // serde_json writes a non-finite float as null).
        let _ = serde_json::to_writer(out, self);
    }
}

/// Runs `reading` through its sensor's `model` and hands over the events that makes, in order:
/// an anomaly if the reading is judged one, then the forecast of the next reading if it is the
/// model's `prediction_every`-th (0: never).
pub fn judge<'a>(
    model: &mut SensorModel,
    reading: &crate::Reading<'a>,
    settings: &ModelSettings,
    prediction_every: u32,
    mut emit: impl FnMut(ModelEvent<'a>),
) {
    let hour = utc_hour(&reading.timestamp);
    let judged = model.update(reading.seq, reading.temperature, hour, settings);
    if let Some(anomaly) = judged.anomaly {
        emit(ModelEvent::Anomaly {
            sensor_id: reading.sensor_id.clone(),
            seq: reading.seq,
            kind: anomaly.kind.name().into(),
            score: anomaly.score,
            temperature: reading.temperature,
            expected: anomaly.forecast.expected,
            low: anomaly.forecast.low,
            high: anomaly.forecast.high,
            timestamp: reading.timestamp.clone(),
        });
    }
    if let Some(next) = judged.next
        && prediction_every > 0
        && model.seen().is_multiple_of(prediction_every)
    {
        emit(ModelEvent::Prediction {
            sensor_id: reading.sensor_id.clone(),
            seq: reading.seq,
            temperature: Some(reading.temperature),
            expected: next.expected,
            low: next.low,
            high: next.high,
            timestamp: reading.timestamp.clone(),
        });
    }
}

/// The hour of the day (0–23) of a decoded reading's timestamp, which decoding leaves in UTC
/// ending in `Z` (`2026-11-28T10:00:05Z`); `None` for another form.
pub fn utc_hour(timestamp: &str) -> Option<u8> {
    let b = timestamp.as_bytes();
    if !timestamp.ends_with('Z') || b.len() < 20 || b[10] != b'T' {
        return None;
    }
    let (tens, ones) = (b[11].wrapping_sub(b'0'), b[12].wrapping_sub(b'0'));
    let hour = tens.checked_mul(10)?.checked_add(ones)?;
    (tens < 10 && ones < 10 && hour < 24).then_some(hour)
}

/// Whether the forecast has a seasonal component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    /// None: Holt's level and trend only.
    #[default]
    Off,
    /// An offset per hour of the day (UTC).
    Daily,
}

/// The model's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSettings {
    /// Level smoothing, in (0, 1].
    pub alpha: f64,
    /// Trend smoothing, in [0, 1].
    pub beta: f64,
    /// Smoothing of the error scale, in (0, 1].
    pub scale_alpha: f64,
    /// Half-width of the interval, in σ (a reading outside is an outlier).
    pub sensitivity: f64,
    /// Readings a sensor's model learns from before it judges.
    pub warmup: u32,
    /// Identical values in a row that make a stuck sensor (≥ 2).
    pub stuck_after: u32,
    /// Smallest σ the interval uses, °C: a sensor that has been very steady is not flagged for
    /// a hundredth of a degree.
    pub min_sigma: f64,
    /// The seasonal component.
    pub seasonality: Seasonality,
    /// Seasonal smoothing, in (0, 1] (with `daily` seasonality).
    pub gamma: f64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            alpha: 0.3,
            beta: 0.05,
            scale_alpha: 0.05,
            sensitivity: 4.5,
            warmup: 30,
            stuck_after: 5,
            min_sigma: 0.05,
            seasonality: Seasonality::Off,
            gamma: 0.2,
        }
    }
}

impl ModelSettings {
    /// Says what is wrong with the parameters, naming the parameter.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let unit = |name, value: f64, zero_ok: bool| {
            let ok = value.is_finite() && value <= 1.0 && (value > 0.0 || zero_ok && value == 0.0);
            if ok {
                Ok(())
            } else {
                Err((
                    name,
                    format!(
                        "must be in {}0, 1], not {value}",
                        if zero_ok { "[" } else { "(" }
                    ),
                ))
            }
        };
        unit("alpha", self.alpha, false)?;
        unit("beta", self.beta, true)?;
        unit("scale_alpha", self.scale_alpha, false)?;
        unit("gamma", self.gamma, false)?;
        if !(self.sensitivity.is_finite() && self.sensitivity > 0.0) {
            return Err((
                "sensitivity",
                format!("must be > 0, not {}", self.sensitivity),
            ));
        }
        if self.stuck_after < 2 {
            return Err(("stuck_after", "must be at least 2".to_owned()));
        }
        if !(self.min_sigma.is_finite() && self.min_sigma > 0.0) {
            return Err(("min_sigma", format!("must be > 0, not {}", self.min_sigma)));
        }
        Ok(())
    }
}

// The state per sensor stays small: checked when compiling.
const _: () = assert!(SensorModel::SEASONAL_LEN <= 200);

/// Hours in a day: the daily profile's slots.
const HOURS: usize = 24;

/// `1 / sqrt(2 / π)`: σ per unit of mean absolute error, for Gaussian errors.
const SIGMA_PER_MAE: f64 = 1.253_314_137_315_500_3;

/// The forecast of a sensor's next reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The expected value, °C.
    pub expected: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnomalyKind {
    /// Outside the forecast's interval.
    Outlier,
    /// The same value again and again.
    Stuck,
    /// Readings missing before this one.
    Gap,
}

impl AnomalyKind {
    /// Its name in events.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Outlier => "outlier",
            AnomalyKind::Stuck => "stuck",
            AnomalyKind::Gap => "gap",
        }
    }
}

/// A reading judged anomalous.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anomaly {
    /// Its kind.
    pub kind: AnomalyKind,
    /// How anomalous: σ for an outlier, the run's length when stuck, readings missing in a gap.
    pub score: f64,
    /// The forecast the reading was judged against.
    pub forecast: Forecast,
}

/// What one reading did: its judgement, and the forecast of the next one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// The anomaly, if the reading is one (never during warm-up).
    pub anomaly: Option<Anomaly>,
    /// The forecast of the sensor's next reading (`None` before the second reading).
    pub next: Option<Forecast>,
}

/// One sensor's model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SensorModel {
    level: f64,
    trend: f64,
    /// Mean absolute one-step error.
    mae: f64,
    last_value: f64,
    last_seq: u64,
    /// Readings seen.
    seen: u32,
    /// Identical values in a row, the last one included.
    run: u32,
    /// The offset per hour of the day, with daily seasonality (f32: 96 bytes, not 192).
    season: Option<Box<[f32; HOURS]>>,
}

impl SensorModel {
    /// Bytes of [`SensorModel::encode`] without seasonality (version 1).
    pub const ENCODED_LEN: usize = 1 + 8 * 5 + 4 * 2;
    /// Bytes of [`SensorModel::encode`] with daily seasonality (version 2: version 1's fields,
    /// then the 24 offsets).
    pub const SEASONAL_LEN: usize = Self::ENCODED_LEN + 4 * HOURS;

    /// The seasonal offset of `hour` (0 without seasonality or an hour).
    fn offset(&self, hour: Option<u8>) -> f64 {
        match (&self.season, hour) {
            (Some(season), Some(h)) => f64::from(season[usize::from(h)]),
            _ => 0.0,
        }
    }

    fn forecast(&self, hour: Option<u8>, settings: &ModelSettings) -> Forecast {
        let expected = self.level + self.trend + self.offset(hour);
        let half = settings.sensitivity * (SIGMA_PER_MAE * self.mae).max(settings.min_sigma);
        Forecast {
            expected,
            low: expected - half,
            high: expected + half,
        }
    }

    /// Readings seen.
    pub fn seen(&self) -> u32 {
        self.seen
    }

    /// Judges reading number `seq` of value `value`, read in hour `hour` of the day (UTC),
    /// against the model, then learns from it. The forecast of the next reading assumes it
    /// comes in the same hour.
    pub fn update(
        &mut self,
        seq: u64,
        value: f64,
        hour: Option<u8>,
        settings: &ModelSettings,
    ) -> Judged {
        // Seasonality switched on or off since the state was written: start or drop the profile.
        match (settings.seasonality, self.season.is_some()) {
            (Seasonality::Daily, false) => self.season = Some(Box::new([0.0; HOURS])),
            (Seasonality::Off, true) => self.season = None,
            _ => {}
        }
        if self.seen == 0 {
            *self = SensorModel {
                level: value,
                trend: 0.0,
                mae: 0.0,
                last_value: value,
                last_seq: seq,
                seen: 1,
                run: 1,
                season: self.season.take(),
            };
            return Judged {
                anomaly: None,
                next: None,
            };
        }
        let forecast = self.forecast(hour, settings);
        let judging = self.seen >= settings.warmup;
        let missing = seq.saturating_sub(self.last_seq).saturating_sub(1);
        self.run = if value == self.last_value && missing == 0 {
            self.run.saturating_add(1)
        } else {
            1
        };
        let error = value - forecast.expected;
        let sigma = (SIGMA_PER_MAE * self.mae).max(settings.min_sigma);
        let half = settings.sensitivity * sigma;
        let anomaly = if !judging {
            None
        } else if missing > 0 {
            Some((AnomalyKind::Gap, missing as f64))
        } else if self.run >= settings.stuck_after {
            Some((AnomalyKind::Stuck, f64::from(self.run)))
        } else if error.abs() > half {
            Some((AnomalyKind::Outlier, error.abs() / sigma))
        } else {
            None
        }
        .map(|(kind, score)| Anomaly {
            kind,
            score,
            forecast,
        });

        // Learn, with the error clipped to the interval (during warm-up: unclipped).
        let clipped = if judging {
            error.clamp(-half, half)
        } else {
            error
        };
        let previous_level = self.level;
        self.level = self.level + self.trend + settings.alpha * clipped;
        if let (Some(season), Some(h)) = (&mut self.season, hour) {
            let slot = &mut season[usize::from(h)];
            *slot = (f64::from(*slot) + settings.gamma * (1.0 - settings.alpha) * clipped) as f32;
        }
        self.trend += settings.beta * (self.level - previous_level - self.trend);
        // A repeated value says nothing of the noise: a stuck spell would shrink the scale to
        // nothing and make the first real reading after it an outlier.
        if self.run == 1 {
            self.mae += settings.scale_alpha * (clipped.abs() - self.mae);
        }
        self.last_value = value;
        self.last_seq = seq;
        self.seen = self.seen.saturating_add(1);
        Judged {
            anomaly,
            next: Some(self.forecast(hour, settings)),
        }
    }

    /// Appends the model as bytes for the changelog: a version byte (1, or 2 with a seasonal
    /// profile), then the fields, little-endian.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(if self.season.is_some() { 2 } else { 1 });
        for field in [self.level, self.trend, self.mae, self.last_value] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(&self.last_seq.to_le_bytes());
        for field in [self.seen, self.run] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        for offset in self.season.iter().flat_map(|s| s.iter()) {
            out.extend_from_slice(&offset.to_le_bytes());
        }
    }

    /// A model back from [`SensorModel::encode`]'s bytes; `None` for other bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let seasonal = match (bytes.first(), bytes.len()) {
            (Some(1), Self::ENCODED_LEN) => false,
            (Some(2), Self::SEASONAL_LEN) => true,
            _ => return None,
        };
        let f = |at: usize| bytes[at..at + 8].try_into().ok().map(f64::from_le_bytes);
        let u = |at: usize| bytes[at..at + 4].try_into().ok().map(u32::from_le_bytes);
        let season = if seasonal {
            let mut season = [0f32; HOURS];
            for (slot, chunk) in season
                .iter_mut()
                .zip(bytes[Self::ENCODED_LEN..].chunks_exact(4))
            {
                *slot = f32::from_le_bytes(chunk.try_into().ok()?);
            }
            Some(Box::new(season))
        } else {
            None
        };
        Some(Self {
            level: f(1)?,
            trend: f(9)?,
            mae: f(17)?,
            last_value: f(25)?,
            last_seq: bytes[33..41].try_into().ok().map(u64::from_le_bytes)?,
            seen: u(41)?,
            run: u(45)?,
            season,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: the same rules written as a plain fold over the whole history, recomputed
    /// from the first reading for every judgement.
    fn reference(
        series: &[(u64, f64, Option<u8>)],
        settings: &ModelSettings,
    ) -> Vec<Option<(AnomalyKind, f64)>> {
        let seasonal = settings.seasonality == Seasonality::Daily;
        (0..series.len())
            .map(|n| {
                if n == 0 {
                    return None;
                }
                let (mut level, mut trend, mut mae) = (series[0].1, 0.0, 0.0);
                let mut season = [0f32; 24];
                let mut run = 1u32;
                let mut verdict = None;
                for i in 1..=n {
                    let (seq, value, hour) = series[i];
                    let (last_seq, last, _) = series[i - 1];
                    let offset = match hour {
                        Some(h) if seasonal => f64::from(season[h as usize]),
                        _ => 0.0,
                    };
                    let expected = level + trend + offset;
                    let sigma = (SIGMA_PER_MAE * mae).max(settings.min_sigma);
                    let half = settings.sensitivity * sigma;
                    let missing = seq.saturating_sub(last_seq).saturating_sub(1);
                    run = if value == last && missing == 0 {
                        run + 1
                    } else {
                        1
                    };
                    let judging = i as u32 >= settings.warmup;
                    let error = value - expected;
                    if i == n {
                        verdict = if !judging {
                            None
                        } else if missing > 0 {
                            Some((AnomalyKind::Gap, missing as f64))
                        } else if run >= settings.stuck_after {
                            Some((AnomalyKind::Stuck, f64::from(run)))
                        } else if error.abs() > half {
                            Some((AnomalyKind::Outlier, error.abs() / sigma))
                        } else {
                            None
                        };
                    }
                    let clipped = if judging {
                        error.clamp(-half, half)
                    } else {
                        error
                    };
                    let new_level = level + trend + settings.alpha * clipped;
                    trend += settings.beta * (new_level - level - trend);
                    level = new_level;
                    if let Some(h) = hour.filter(|_| seasonal) {
                        let slot = &mut season[h as usize];
                        *slot = (f64::from(*slot)
                            + settings.gamma * (1.0 - settings.alpha) * clipped)
                            as f32;
                    }
                    if run == 1 {
                        mae += settings.scale_alpha * (clipped.abs() - mae);
                    }
                }
                verdict
            })
            .collect()
    }

    fn online(
        series: &[(u64, f64, Option<u8>)],
        settings: &ModelSettings,
    ) -> Vec<Option<(AnomalyKind, f64)>> {
        let mut model = SensorModel::default();
        let mut bytes = Vec::new();
        series
            .iter()
            .map(|&(seq, value, hour)| {
                // Through the changelog's bytes every time: a restored model continues exactly.
                bytes.clear();
                model.encode(&mut bytes);
                model = SensorModel::decode(&bytes).expect("round trip");
                model
                    .update(seq, value, hour, settings)
                    .anomaly
                    .map(|a| (a.kind, a.score))
            })
            .collect()
    }

    fn series() -> impl Strategy<Value = Vec<(u64, f64, Option<u8>)>> {
        prop::collection::vec(
            (
                1u64..3,
                prop::sample::select(vec![0.0, 0.0, 0.0, 0.01, 0.4, -0.4, 9.0]),
                prop::option::weighted(0.9, 0u8..3),
            ),
            1..120,
        )
        .prop_map(|steps| {
            let (mut seq, mut value) = (0u64, 20.0);
            steps
                .into_iter()
                .map(|(gap, change, hour)| {
                    seq += if gap == 2 { 3 } else { 1 };
                    value = ((value + change) * 100.0f64).round() / 100.0;
                    (seq, value, hour)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_online_model_judges_as_the_reference_does(
            series in series(),
            warmup in 0u32..10,
            daily in any::<bool>(),
        ) {
            let seasonality = if daily { Seasonality::Daily } else { Seasonality::Off };
            let settings = ModelSettings { warmup, seasonality, ..ModelSettings::default() };
            prop_assert_eq!(online(&series, &settings), reference(&series, &settings));
        }
    }

    /// A room heated from 08:00 to 20:00 UTC, read every 10 minutes: without seasonality
    /// every morning's and evening's step is an outlier, day after day; with it, the steps are
    /// learned, and from the tenth day on nothing is raised.
    #[test]
    fn daily_seasonality_learns_a_heated_rooms_day() {
        let flags_per_day = |seasonality| {
            let settings = ModelSettings {
                seasonality,
                ..ModelSettings::default()
            };
            let mut model = SensorModel::default();
            let mut days = [0usize; 14];
            for i in 0..14 * 24 * 6u64 {
                let hour = ((i / 6) % 24) as u8;
                let heated = if (8..20).contains(&hour) { 6.0 } else { 0.0 };
                let wobble = (i as f64 * 12.9898).sin() * 43_758.545;
                let value = 20.0 + heated + 0.6 * (wobble - wobble.floor() - 0.5);
                let value = (value * 100.0).round() / 100.0;
                if model
                    .update(i, value, Some(hour), &settings)
                    .anomaly
                    .is_some()
                {
                    days[(i / (24 * 6)) as usize] += 1;
                }
            }
            days
        };
        let off = flags_per_day(Seasonality::Off);
        let daily = flags_per_day(Seasonality::Daily);
        assert!(off.iter().all(|&n| n > 0), "off: {off:?}");
        println!("flags per day: off {off:?}, daily {daily:?}");
        assert_eq!(daily[9..], [0; 5], "daily: {daily:?}");
        assert!(
            daily.iter().sum::<usize>() * 3 < off.iter().sum::<usize>(),
            "off {off:?}, daily {daily:?}"
        );
    }

    #[test]
    fn the_hour_comes_from_a_decoded_timestamp() {
        assert_eq!(utc_hour("2026-11-28T10:00:05Z"), Some(10));
        assert_eq!(utc_hour("2026-11-28T23:59:59.123Z"), Some(23));
        assert_eq!(utc_hour("2026-11-28T24:00:00Z"), None);
        assert_eq!(utc_hour("2026-11-28T10:00:05+02:00"), None);
        assert_eq!(utc_hour("10:00"), None);
    }

    fn noisy(n: usize) -> Vec<(u64, f64)> {
        // A deterministic wobble of about ±0.4 °C around 22 °C.
        (0..n)
            .map(|i| {
                let x = (i as f64 * 12.9898).sin() * 43_758.545;
                (
                    i as u64,
                    ((22.0 + 0.8 * (x - x.floor() - 0.5)) * 100.0).round() / 100.0,
                )
            })
            .collect()
    }

    fn kinds(series: &[(u64, f64)]) -> Vec<(usize, AnomalyKind)> {
        let settings = ModelSettings::default();
        let mut model = SensorModel::default();
        series
            .iter()
            .enumerate()
            .filter_map(|(i, &(seq, value))| {
                model
                    .update(seq, value, Some(10), &settings)
                    .anomaly
                    .map(|a| (i, a.kind))
            })
            .collect()
    }

    #[test]
    fn a_steady_sensor_raises_nothing_and_each_fault_is_caught_where_it_starts() {
        let clean = noisy(400);
        assert_eq!(kinds(&clean), []);

        let mut spike = clean.clone();
        spike[200].1 += 12.0;
        assert_eq!(
            kinds(&spike),
            [(200, AnomalyKind::Outlier)],
            "one spike, one anomaly"
        );

        let mut shift = clean.clone();
        for reading in &mut shift[200..260] {
            reading.1 += 6.0;
        }
        let found = kinds(&shift);
        assert_eq!(
            found.first(),
            Some(&(200, AnomalyKind::Outlier)),
            "{found:?}"
        );

        let mut stuck = clean.clone();
        for i in 200..230 {
            stuck[i].1 = stuck[199].1;
        }
        let found = kinds(&stuck);
        assert_eq!(
            found.first(),
            Some(&(203, AnomalyKind::Stuck)),
            "the fifth equal value: {found:?}"
        );
        assert!(
            found
                .iter()
                .all(|(i, k)| (203..230).contains(i) && *k == AnomalyKind::Stuck),
            "{found:?}"
        );

        let gap: Vec<_> = clean
            .iter()
            .copied()
            .filter(|(seq, _)| !(200..215).contains(seq))
            .collect();
        assert_eq!(kinds(&gap), [(200, AnomalyKind::Gap)]);

        // Warm-up: the first readings judge nothing, however wild.
        let mut early = clean.clone();
        early[5].1 += 30.0;
        assert_eq!(kinds(&early), []);
    }

    #[test]
    fn state_round_trips_and_other_bytes_are_refused() {
        for (seasonality, len) in [
            (Seasonality::Off, SensorModel::ENCODED_LEN),
            (Seasonality::Daily, SensorModel::SEASONAL_LEN),
        ] {
            let settings = ModelSettings {
                seasonality,
                ..ModelSettings::default()
            };
            let mut model = SensorModel::default();
            model.update(0, 21.5, Some(3), &settings);
            model.update(1, 22.5, Some(3), &settings);
            let mut bytes = Vec::new();
            model.encode(&mut bytes);
            assert_eq!(bytes.len(), len);
            assert_eq!(SensorModel::decode(&bytes), Some(model));
            assert_eq!(SensorModel::decode(&bytes[1..]), None);
            let mut other = bytes;
            other[0] = 3;
            assert_eq!(SensorModel::decode(&other), None);
        }
    }

    #[test]
    fn judging_emits_the_anomaly_then_every_nth_prediction_with_the_readings_fields() {
        // σ at least 0.5 °C: the steady start's half-degree steps stay inside the interval.
        let settings = ModelSettings {
            warmup: 3,
            min_sigma: 0.5,
            ..ModelSettings::default()
        };
        let mut model = SensorModel::default();
        let mut events = Vec::new();
        for (seq, temperature) in [(1, 20.0), (2, 20.5), (3, 20.0), (4, 20.5), (5, 35.0)] {
            let reading = crate::Reading {
                sensor_id: "s-9".into(),
                seq,
                temperature,
                timestamp: format!("2026-11-28T10:00:0{seq}Z").into(),
            };
            judge(&mut model, &reading, &settings, 2, |e| {
                events.push(e.into_owned_json())
            });
        }
        let kinds: Vec<(String, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["seq"].as_u64().unwrap(),
                )
            })
            .collect();
        // Predictions after the 2nd and 4th readings; the 5th is an outlier (no prediction:
        // the model has seen 5).
        assert_eq!(
            kinds,
            [
                ("prediction".to_owned(), 2),
                ("prediction".to_owned(), 4),
                ("anomaly".to_owned(), 5)
            ]
        );
        let anomaly = &events[2];
        assert_eq!(anomaly["sensor_id"], "s-9");
        assert_eq!(anomaly["kind"], "outlier");
        assert_eq!(anomaly["temperature"], 35.0);
        assert_eq!(anomaly["timestamp"], "2026-11-28T10:00:05Z");
        assert!(anomaly["high"].as_f64().unwrap() < 35.0);
    }

    impl ModelEvent<'_> {
        fn into_owned_json(self) -> serde_json::Value {
            serde_json::to_value(&self).unwrap()
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let bad = ModelSettings {
            alpha: 0.0,
            ..ModelSettings::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "alpha");
        let bad = ModelSettings {
            stuck_after: 1,
            ..ModelSettings::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "stuck_after");
        assert!(ModelSettings::default().check().is_ok());
    }
}
