//! Rate-limited logging of unusable records: a flood of bad input must not flood the logs.

use std::time::{Duration, Instant};

/// Logs at most `burst` bad records per `period`, then one line with how many were not logged.
#[derive(Debug)]
pub struct BadInputLog {
    period: Duration,
    burst: u32,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl BadInputLog {
    /// A limiter logging at most `burst` records per `period`.
    pub fn new(period: Duration, burst: u32) -> Self {
        Self {
            period,
            burst,
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    /// Records one bad record; logs it unless the limit is reached.
    pub fn record(&mut self, partition: i32, offset: i64, kind: &str, reason: &str) {
        self.roll(Instant::now());
        if self.logged < self.burst {
            self.logged += 1;
            tracing::warn!(
                partition,
                offset,
                kind,
                reason,
                "unusable record sent to the dead-letter topic"
            );
        } else {
            self.suppressed += 1;
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.window_start) < self.period {
            return;
        }
        if self.suppressed > 0 {
            tracing::warn!(
                suppressed = self.suppressed,
                period_secs = self.period.as_secs(),
                "more unusable records sent to the dead-letter topic (not logged one by one)"
            );
        }
        self.window_start = now;
        self.logged = 0;
        self.suppressed = 0;
    }

    /// How many records were not logged in the current period.
    #[cfg(test)]
    fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_a_burst_then_counts() {
        let mut log = BadInputLog::new(Duration::from_secs(3600), 3);
        for offset in 0..10 {
            log.record(0, offset, "not_json", "x");
        }
        assert_eq!(log.suppressed(), 7);
    }
}
