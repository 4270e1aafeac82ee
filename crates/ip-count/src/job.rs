//! The counting job: per IP address, a count per open window; windows close on stream time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stream_engine::{ApplyContext, InputRecord, Job, Outputs, PartitionView, Rejection};

/// Index of the counts topic among the job's outputs.
pub const COUNTS: usize = 0;

/// The windows: tumbling, `size_ms` long, aligned to the epoch, each accepting records until
/// the stream time passes its end plus `lateness_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRules {
    /// Window length, ms (> 0).
    pub size_ms: i64,
    /// Allowed lateness, ms (≥ 0).
    pub lateness_ms: i64,
}

impl WindowRules {
    fn start(&self, time: i64) -> i64 {
        time.div_euclid(self.size_ms) * self.size_ms
    }

    /// The stream time at which the window starting at `start` closes.
    fn closes_at(&self, start: i64) -> i64 {
        start + self.size_ms + self.lateness_ms
    }
}

/// A final count: the value of an output record (key = the IP address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Count {
    /// Window start, ms since the epoch (inclusive).
    pub window_start_ms: i64,
    /// Window end, ms since the epoch (exclusive).
    pub window_end_ms: i64,
    /// The address.
    pub ip: String,
    /// Requests from it in the window.
    pub count: u64,
}

/// Why a record is not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// No key, or a key that is not UTF-8 text.
    #[error("record key is not an IP address in UTF-8")]
    NoAddress,
    /// The value is not an event time.
    #[error("record value is not an event time in ms")]
    NoTime,
    /// The record's window had closed when it came.
    #[error(
        "event time {time_ms} is in the window starting {window_start_ms}, which closed at stream time {closed_at_ms} (stream time now {stream_time_ms})"
    )]
    Late {
        /// The record's event time.
        time_ms: i64,
        /// Its window's start.
        window_start_ms: i64,
        /// When that window closed.
        closed_at_ms: i64,
        /// The partition's stream time.
        stream_time_ms: i64,
    },
}

impl Rejection for Unusable {
    fn kind(&self) -> &'static str {
        match self {
            Unusable::NoAddress => "no_address",
            Unusable::NoTime => "no_event_time",
            Unusable::Late { .. } => "late",
        }
    }
}

/// A repartitioned request: the address and its event time.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    ip: &'r str,
    time_ms: i64,
}

/// The counting job.
#[derive(Debug, Clone)]
pub struct CountJob {
    rules: WindowRules,
}

impl CountJob {
    /// A job with these windows.
    pub fn new(rules: WindowRules) -> Self {
        Self { rules }
    }
}

impl Job for CountJob {
    type Input<'r> = Request<'r>;
    /// Open windows' counts by window start.
    type State = BTreeMap<i64, u64>;
    type Reject = Unusable;

    /// Version 1: the number of windows (u32), then each start (i64) and count (u64), all
    /// big-endian.
    const STATE_VERSION: u16 = 1;

    fn decode<'r>(&self, record: &InputRecord<'r>) -> Result<Request<'r>, Unusable> {
        let ip = record
            .key
            .and_then(|k| std::str::from_utf8(k).ok())
            .filter(|k| !k.is_empty())
            .ok_or(Unusable::NoAddress)?;
        let time_ms = record
            .value
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or(Unusable::NoTime)?;
        Ok(Request { ip, time_ms })
    }

    fn key<'i>(&self, request: &'i Request<'_>) -> &'i str {
        request.ip
    }

    fn event_time_ms(&self, request: &Request<'_>, _record: &InputRecord<'_>) -> Option<i64> {
        Some(request.time_ms)
    }

    fn new_state(&self) -> Self::State {
        BTreeMap::new()
    }

    fn apply(
        &self,
        request: &Request<'_>,
        windows: &mut Self::State,
        context: &ApplyContext,
        _out: &mut Outputs,
    ) -> Result<(), Unusable> {
        let start = self.rules.start(request.time_ms);
        let closed_at = self.rules.closes_at(start);
        if let Some(now) = context.stream_time_ms
            && closed_at <= now
        {
            return Err(Unusable::Late {
                time_ms: request.time_ms,
                window_start_ms: start,
                closed_at_ms: closed_at,
                stream_time_ms: now,
            });
        }
        *windows.entry(start).or_default() += 1;
        Ok(())
    }

    /// Emits and forgets the windows that close, in (window, IP) order. Windows close only at
    /// aligned boundaries, so most advances of stream time cross none and cost nothing.
    fn on_stream_time(
        &self,
        previous_ms: Option<i64>,
        now: i64,
        partition: &mut PartitionView<'_, Self::State>,
        out: &mut Outputs,
    ) {
        // The latest window start that has closed by `now`, and by `previous_ms`.
        let closed_by = |t: i64| {
            self.rules
                .start(t - self.rules.size_ms - self.rules.lateness_ms)
        };
        if previous_ms.is_some_and(|p| closed_by(p) == closed_by(now)) {
            return;
        }
        let rules = self.rules;
        // Empty ones too: an address whose only records came late.
        let keys = partition.keys_where(|_, windows| {
            windows
                .first_key_value()
                .is_none_or(|(start, _)| rules.closes_at(*start) <= now)
        });
        let mut closed = Vec::new();
        for ip in keys {
            let Some(windows) = partition.get_mut(&ip) else {
                continue;
            };
            let open = windows.split_off(&(closed_by(now) + self.rules.size_ms));
            let done = std::mem::replace(windows, open);
            let empty = windows.is_empty();
            for (start, count) in done {
                closed.push(Count {
                    window_start_ms: start,
                    window_end_ms: start + self.rules.size_ms,
                    ip: ip.to_string(),
                    count,
                });
            }
            if empty {
                partition.remove(&ip);
            }
        }
        closed.sort();
        for count in closed {
            out.emit(COUNTS, count.ip.as_bytes(), "count", |value| {
                // Serializing integers and a string into a Vec cannot fail.
                let _ = serde_json::to_writer(value, &count);
            });
        }
    }

    fn encode_state(&self, windows: &Self::State, out: &mut Vec<u8>) {
        out.extend_from_slice(&(windows.len() as u32).to_be_bytes());
        for (start, count) in windows {
            out.extend_from_slice(&start.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
        }
    }

    fn decode_state(&self, version: u16, bytes: &[u8]) -> Result<Self::State, String> {
        if version != 1 {
            return Err(format!("window counts version {version} is unknown"));
        }
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or("window counts shorter than their length")?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() != len * 16 {
            return Err(format!(
                "window counts say {len} windows but hold {} bytes",
                rest.len()
            ));
        }
        Ok(rest
            .chunks_exact(16)
            .map(|c| {
                let mut start = [0u8; 8];
                let mut count = [0u8; 8];
                start.copy_from_slice(&c[..8]);
                count.copy_from_slice(&c[8..]);
                (i64::from_be_bytes(start), u64::from_be_bytes(count))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
