//! The periodic progress line: committed work only, so it agrees with the metrics.

use std::time::{Duration, Instant};

use crate::metrics::BatchTally;

/// How often the line is written.
const EVERY: Duration = Duration::from_secs(30);

/// Counters for the progress line.
#[derive(Debug)]
pub(crate) struct Progress {
    pub consumed: u64,
    pub produced: u64,
    pub dead_letters: u64,
    /// Inputs already applied to their key's state (replayed after an at-least-once crash).
    pub skipped: u64,
    /// Inputs replayed into the state after a restore from an older snapshot.
    pub replayed: u64,
    pub transactions: u64,
    pub aborts: u64,
    last_report: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            consumed: 0,
            produced: 0,
            dead_letters: 0,
            skipped: 0,
            replayed: 0,
            transactions: 0,
            aborts: 0,
            last_report: Instant::now(),
        }
    }
}

impl Progress {
    /// Adds a committed batch.
    pub fn add(&mut self, tally: &BatchTally) {
        self.consumed += tally.consumed;
        self.produced += tally.produced.iter().map(|(_, n)| n).sum::<u64>();
        self.dead_letters += tally.dead_letters.iter().map(|(_, n)| n).sum::<u64>();
    }

    /// Writes the line if it is due.
    pub fn maybe_report(&mut self, keys: usize) {
        if self.last_report.elapsed() < EVERY {
            return;
        }
        self.last_report = Instant::now();
        tracing::info!(
            consumed = self.consumed,
            produced = self.produced,
            dead_letters = self.dead_letters,
            already_applied = self.skipped,
            replayed = self.replayed,
            transactions = self.transactions,
            aborts = self.aborts,
            keys,
            "progress"
        );
    }
}
