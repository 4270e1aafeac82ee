//! The temperature job: a reading updates its sensor's window of the last `window_size`
//! temperatures; an alert for a reading over the threshold, an average for each full window.
//! Everything else (batches, transactions, the changelog, restores) is the engine's.

use sensor_contract::state::step_each;
use sensor_contract::{DecodeError, DecodeOptions, ProcessingRules, RawRecord, Reading, Window};
use stream_engine::{ApplyContext, InputRecord, Job, Outputs, Rejection};

/// Header naming the event type on the output topic (`alert` or `average`).
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// Index of the events topic among the job's outputs.
pub const EVENTS: usize = 0;

/// The temperature job.
#[derive(Debug, Clone)]
pub struct TemperatureJob {
    rules: ProcessingRules,
    options: DecodeOptions,
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
        Self { rules, options }
    }
}

impl Job for TemperatureJob {
    type Input<'r> = Reading<'r>;
    type State = Window;
    type Reject = Unusable;

    /// Version 1: the number of values (u32, big-endian), then each, oldest first (f64,
    /// little-endian). Version 0 was JSON `{"offset":…,"values":[…]}`.
    const STATE_VERSION: u16 = 1;

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

    fn new_state(&self) -> Window {
        Window::new(self.rules.window_size)
    }

    fn apply(
        &self,
        reading: &Reading<'_>,
        window: &mut Window,
        _context: &ApplyContext,
        out: &mut Outputs,
    ) -> Result<(), Unusable> {
        step_each(window, reading, self.rules, |event| {
            out.emit(
                EVENTS,
                event.sensor_id().as_bytes(),
                event.kind(),
                |value| event.write_json(value),
            );
        });
        Ok(())
    }

    fn encode_state(&self, window: &Window, out: &mut Vec<u8>) {
        out.extend_from_slice(&(window.len() as u32).to_be_bytes());
        let (older, newer) = window.as_slices();
        for value in older.iter().chain(newer) {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// A window of the configured size (the newest values are kept if it was larger when
    /// written).
    fn decode_state(&self, version: u16, bytes: &[u8]) -> Result<Window, String> {
        let mut window = Window::new(self.rules.window_size);
        match version {
            0 => {
                #[derive(serde::Deserialize)]
                struct V0 {
                    values: Vec<f64>,
                }
                let v0: V0 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                v0.values.into_iter().for_each(|v| window.push(v));
            }
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
        Ok(window)
    }
}

#[cfg(test)]
mod tests;
