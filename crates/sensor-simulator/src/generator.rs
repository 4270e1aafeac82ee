//! The seeded stream of readings: pure, so the same seed gives the same readings.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use sensor_contract::Reading;
use serde::Deserialize;

/// How temperatures are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Each sensor has its own base temperature (15–30 °C), drifts slowly around it with
    /// noise, and now and then (about 1 reading in 100) spikes above 40 °C.
    #[default]
    Realistic,
    /// Uniform 0–50 °C, independent readings: the original Python generator.
    Uniform,
}

/// Chance that a realistic reading is a spike.
const SPIKE_PROBABILITY: f64 = 0.01;

#[derive(Debug, Clone)]
struct SensorState {
    id: String,
    next_seq: u64,
    base: f64,
    drift: f64,
}

/// Produces readings for `sensors` sensors in round-robin order.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: ChaCha8Rng,
    profile: Profile,
    sensors: Vec<SensorState>,
    next_sensor: usize,
    noise: Normal<f64>,
    drift_step: Normal<f64>,
}

impl Generator {
    /// A generator for `sensors` sensors (≥ 1) seeded with `seed`.
    pub fn new(sensors: u32, seed: u64, profile: Profile) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sensors = (0..sensors.max(1))
            .map(|i| SensorState {
                id: sensor_id(i),
                next_seq: 0,
                base: rng.random_range(15.0..30.0),
                drift: 0.0,
            })
            .collect();
        Self {
            rng,
            profile,
            sensors,
            next_sensor: 0,
            // Both are valid normal distributions: finite mean, positive deviation.
            noise: Normal::new(0.0, 0.4).unwrap_or_else(|_| unreachable!()),
            drift_step: Normal::new(0.0, 0.3).unwrap_or_else(|_| unreachable!()),
        }
    }

    /// The number of the sensor the next reading is of (0 for `sensor-0000`).
    pub fn next_index(&self) -> usize {
        self.next_sensor
    }

    /// The next reading, stamped with `timestamp` (RFC 3339, UTC).
    pub fn next_reading(&mut self, timestamp: String) -> Reading<'_> {
        self.next_reading_spiked(timestamp).0
    }

    /// [`Generator::next_reading`], and whether it is one of the realistic profile's spikes
    /// over 40 °C.
    pub fn next_reading_spiked(&mut self, timestamp: String) -> (Reading<'_>, bool) {
        let count = self.sensors.len();
        let sensor = &mut self.sensors[self.next_sensor];
        self.next_sensor = (self.next_sensor + 1) % count;
        let mut spiked = false;
        let temperature = match self.profile {
            Profile::Uniform => self.rng.random_range(0.0..50.0),
            Profile::Realistic => {
                // Mean-reverting drift keeps each sensor near its own base.
                sensor.drift = 0.9 * sensor.drift + self.drift_step.sample(&mut self.rng);
                if self.rng.random_bool(SPIKE_PROBABILITY) {
                    spiked = true;
                    40.0 + self.rng.random_range(0.5..15.0)
                } else {
                    sensor.base + sensor.drift + self.noise.sample(&mut self.rng)
                }
            }
        };
        let seq = sensor.next_seq;
        sensor.next_seq += 1;
        let reading = Reading {
            sensor_id: std::borrow::Cow::Borrowed(&sensor.id),
            seq,
            // Two decimals, as a real sensor reports.
            temperature: (temperature * 100.0).round() / 100.0,
            timestamp: timestamp.into(),
        };
        (reading, spiked)
    }
}

/// The id of sensor number `i`: `sensor-0000`, `sensor-0001`, ...
pub fn sensor_id(i: u32) -> String {
    format!("sensor-{i:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(g: &mut Generator, n: usize) -> Vec<Reading<'static>> {
        (0..n)
            .map(|_| g.next_reading("t".into()).into_owned())
            .collect()
    }

    #[test]
    fn same_seed_same_readings_other_seed_other_readings() {
        let a = take(&mut Generator::new(5, 7, Profile::Realistic), 200);
        let b = take(&mut Generator::new(5, 7, Profile::Realistic), 200);
        let c = take(&mut Generator::new(5, 8, Profile::Realistic), 200);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn round_robin_ids_and_per_sensor_sequence_numbers() {
        let readings = take(&mut Generator::new(3, 1, Profile::Uniform), 7);
        let ids: Vec<_> = readings.iter().map(|r| (&*r.sensor_id, r.seq)).collect();
        assert_eq!(
            ids,
            vec![
                ("sensor-0000", 0),
                ("sensor-0001", 0),
                ("sensor-0002", 0),
                ("sensor-0000", 1),
                ("sensor-0001", 1),
                ("sensor-0002", 1),
                ("sensor-0000", 2)
            ]
        );
    }

    #[test]
    fn uniform_stays_in_range_and_realistic_spikes_over_40() {
        let uniform = take(&mut Generator::new(10, 3, Profile::Uniform), 10_000);
        assert!(
            uniform
                .iter()
                .all(|r| (0.0..=50.0).contains(&r.temperature))
        );
        let over = uniform.iter().filter(|r| r.temperature > 40.0).count();
        assert!(
            (1_700..2_300).contains(&over),
            "uniform: {over} of 10000 over 40"
        );

        let realistic = take(&mut Generator::new(10, 3, Profile::Realistic), 10_000);
        let spikes = realistic.iter().filter(|r| r.temperature > 40.0).count();
        // About 1 % spikes, and the rest near the 15–30 °C bases.
        assert!((50..200).contains(&spikes), "realistic: {spikes} spikes");
        assert!(
            realistic
                .iter()
                .all(|r| (5.0..=55.0).contains(&r.temperature))
        );
    }
}
