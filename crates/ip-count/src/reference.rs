//! The counting semantics in their plainest form, for one input partition in offset order:
//! stream time is the largest event time seen; a record whose window has closed (its end plus
//! the lateness is at or before the stream time before it) is late; every other record adds one
//! to its (window, IP) count; a window's counts are final once the stream time reaches its end
//! plus the lateness.

use std::collections::BTreeMap;

use crate::{Count, WindowRules};

/// What a partition's records come to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The final counts, by (window start, IP).
    pub closed: Vec<Count>,
    /// Records that came after their window closed.
    pub late: usize,
    /// Records that are not (IP, event time) pairs.
    pub unusable: usize,
}

/// Runs the model over `(ip, event time)` records (`None`: unusable).
pub fn expected(rules: WindowRules, records: &[Option<(String, i64)>]) -> Expected {
    let mut open: BTreeMap<(i64, String), u64> = BTreeMap::new();
    let mut stream_time: Option<i64> = None;
    let mut out = Expected::default();
    for record in records {
        let Some((ip, time)) = record else {
            out.unusable += 1;
            continue;
        };
        let start = time.div_euclid(rules.size_ms) * rules.size_ms;
        if stream_time.is_some_and(|t| start + rules.size_ms + rules.lateness_ms <= t) {
            out.late += 1;
            continue;
        }
        *open.entry((start, ip.clone())).or_default() += 1;
        let now = stream_time.map_or(*time, |t| t.max(*time));
        stream_time = Some(now);
        let closing: Vec<_> = open
            .keys()
            .filter(|(start, _)| start + rules.size_ms + rules.lateness_ms <= now)
            .cloned()
            .collect();
        for key in closing {
            let count = open.remove(&key).unwrap_or_default();
            out.closed.push(Count {
                window_start_ms: key.0,
                window_end_ms: key.0 + rules.size_ms,
                ip: key.1,
                count,
            });
        }
    }
    out.closed.sort();
    out
}
