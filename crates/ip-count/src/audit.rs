//! The IP-count pipeline's audit: both stages checked against their specification, on a live
//! deployment too.
//!
//! - Stage 1: the repartition topic must hold, once each, the requests (address, event time) of
//!   every line below the `-lines` group's committed offsets; requests of newer lines may be
//!   there too and are not judged.
//! - Stage 2: running the reference model over each repartition partition, in offset order, up
//!   to the `-counts` group's committed offsets gives the counts that must be in `ip-counts`,
//!   once each and with that count. Counts of later records (the model over the whole partition)
//!   may be there too and are not judged; anything else is unexpected.
//!
//! Reading order makes this right while the pipeline runs: committed offsets first, then
//! `ip-counts`, then the repartition topic, then the lines, so everything committed when the
//! offsets were read is in what is read after. The topics are held in memory (the
//! temperature audit's bucketed passes are not built here yet).

use std::collections::{BTreeMap, HashMap};

use pipeline_runtime::audit_read::{committed_offsets, end_offsets, scan};
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::Message;
use serde::Serialize;

use crate::Count;
use crate::lines::read_line;
use crate::reference::expected;
use crate::service::Config;

const CLIENT: &str = "ip-audit";

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IpAuditReport {
    /// Lines below the committed offsets (judged).
    pub lines_judged: u64,
    /// Lines at or after them (not judged yet).
    pub lines_newer: u64,
    /// Judged lines that hold no usable request.
    pub lines_unusable: u64,
    /// Requests the judged lines hold.
    pub requests_expected: u64,
    /// Records in the repartition topic.
    pub requests_found: u64,
    /// Judged requests not in the repartition topic.
    pub requests_missing: u64,
    /// Requests more often in the repartition topic than in the lines.
    pub requests_duplicated: u64,
    /// Repartition records from no line.
    pub requests_unexpected: u64,
    /// Counts the model gives for the judged requests.
    pub counts_expected: u64,
    /// Records in `ip-counts`.
    pub counts_found: u64,
    /// Expected counts found once with their value.
    pub counts_matched: u64,
    /// Expected counts not found.
    pub counts_missing: u64,
    /// Expected counts found more than once.
    pub counts_duplicated: u64,
    /// Expected (window, address) found with another count.
    pub counts_wrong: u64,
    /// Counts of records after the committed offsets (not judged yet).
    pub counts_newer: u64,
    /// Counts the model gives for no (window, address).
    pub counts_unexpected: u64,
    /// Judged requests that came after their window closed (dead-lettered by the job).
    pub late: u64,
    /// Where the first missing requests came from, `partition:offset` of their lines (at most
    /// [`EXAMPLES`]), in order: where to look when stage 1 lost something.
    pub missing_lines: Vec<String>,
    /// Where the duplicated requests are: runs of `partition:first-last (records)` of the
    /// repartition records holding every copy of them (at most [`EXAMPLES`] runs), to be laid
    /// against the transactions that wrote them.
    pub duplicated_records: Vec<String>,
    /// The lines those duplicated requests came from, as runs of `partition:first-last (lines)`:
    /// to be laid against the input spans of the lines stage's transactions.
    pub duplicated_lines: Vec<String>,
}

/// How many missing requests the report locates.
const EXAMPLES: usize = 20;

impl IpAuditReport {
    /// Whether both stages are exactly right.
    pub fn passed(&self) -> bool {
        self.requests_missing == 0
            && self.requests_duplicated == 0
            && self.requests_unexpected == 0
            && self.counts_missing == 0
            && self.counts_duplicated == 0
            && self.counts_wrong == 0
            && self.counts_unexpected == 0
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "{} lines judged ({} unusable, {} newer not yet), {} requests expected, {} found: {} missing, {} duplicated, {} unexpected; {} counts expected, {} found: {} matched, {} missing, {} duplicated, {} wrong, {} unexpected, {} of newer requests; {} late",
            self.lines_judged,
            self.lines_unusable,
            self.lines_newer,
            self.requests_expected,
            self.requests_found,
            self.requests_missing,
            self.requests_duplicated,
            self.requests_unexpected,
            self.counts_expected,
            self.counts_found,
            self.counts_matched,
            self.counts_missing,
            self.counts_duplicated,
            self.counts_wrong,
            self.counts_unexpected,
            self.counts_newer,
            self.late
        );
        if !self.missing_lines.is_empty() {
            summary.push_str(&format!(
                "; missing requests of lines (partition:offset) {}",
                self.missing_lines.join(", ")
            ));
        }
        if !self.duplicated_records.is_empty() {
            summary.push_str(&format!(
                "; duplicated requests in repartition records (partition:offsets) {}, from lines {}",
                self.duplicated_records.join(", "),
                self.duplicated_lines.join(", ")
            ));
        }
        summary
    }
}

/// `positions` (sorted here) as runs of `partition:first-last (count)`, a run ending where
/// the next position is in another partition or more than `gap` offsets on; at most `limit`.
fn runs(mut positions: Vec<(i32, i64)>, gap: i64, limit: usize) -> Vec<String> {
    positions.sort_unstable();
    let mut runs: Vec<(i32, i64, i64, usize)> = Vec::new();
    for (partition, offset) in positions {
        match runs.last_mut() {
            Some(run) if run.0 == partition && offset - run.2 <= gap => {
                run.2 = offset;
                run.3 += 1;
            }
            _ => runs.push((partition, offset, offset, 1)),
        }
    }
    runs.into_iter()
        .take(limit)
        .map(|(partition, first, last, count)| format!("{partition}:{first}-{last} ({count})"))
        .collect()
}

/// A request as the repartition topic holds it.
type Request = (String, i64);

/// Audits the deployment `config` describes.
pub fn audit(kafka: &KafkaSettings, config: &Config) -> anyhow::Result<IpAuditReport> {
    let s = &config.ip_count;
    let (lines_group, counts_group) = (
        config.lines_engine().group_id,
        config.counts_engine().group_id,
    );
    // 1. What the two stages have committed.
    let lines_committed = committed_offsets(kafka, CLIENT, &lines_group, &s.input_topic)?;
    let counts_committed = committed_offsets(kafka, CLIENT, &counts_group, &s.repartition_topic)?;

    // 2. The counts.
    let mut found: HashMap<(i64, String), Vec<u64>> = HashMap::new();
    let mut report = IpAuditReport::default();
    let ends = end_offsets(kafka, CLIENT, &s.output_topic)?;
    let mut undecodable = 0u64;
    scan(kafka, CLIENT, &s.output_topic, &ends, "ip-counts", |m| {
        report.counts_found += 1;
        match m
            .payload()
            .and_then(|p| serde_json::from_slice::<Count>(p).ok())
        {
            Some(c) => found
                .entry((c.window_start_ms, c.ip))
                .or_default()
                .push(c.count),
            None => undecodable += 1,
        }
    })?;
    report.counts_unexpected += undecodable;

    // 3. The repartition topic, by partition in offset order.
    let mut partitions: BTreeMap<i32, Vec<(i64, Option<Request>)>> = BTreeMap::new();
    // Where each request's copies are: their count, and where duplicates are.
    let mut copies_at: HashMap<Request, Vec<(i32, i64)>> = HashMap::new();
    let ends = end_offsets(kafka, CLIENT, &s.repartition_topic)?;
    scan(
        kafka,
        CLIENT,
        &s.repartition_topic,
        &ends,
        "requests",
        |m| {
            report.requests_found += 1;
            let request = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .zip(
                    m.payload()
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()),
                )
                .map(|(ip, time)| (ip.to_owned(), time));
            if let Some(request) = &request {
                copies_at
                    .entry(request.clone())
                    .or_default()
                    .push((m.partition(), m.offset()));
            }
            partitions
                .entry(m.partition())
                .or_default()
                .push((m.offset(), request));
        },
    )?;

    // 4. The lines.
    let mut judged: HashMap<Request, u64> = HashMap::new();
    let mut newer: HashMap<Request, u64> = HashMap::new();
    // The last judged line of each request, to locate a missing one.
    let mut located: HashMap<Request, (i32, i64)> = HashMap::new();
    let ends = end_offsets(kafka, CLIENT, &s.input_topic)?;
    scan(kafka, CLIENT, &s.input_topic, &ends, "lines", |m| {
        let is_judged = lines_committed
            .as_ref()
            .is_none_or(|c| c.get(&m.partition()).is_some_and(|o| m.offset() < *o));
        let read = read_line(m.payload().unwrap_or_default(), m.timestamp().to_millis());
        if is_judged {
            report.lines_judged += 1;
        } else {
            report.lines_newer += 1;
        }
        let Ok(read) = read else {
            report.lines_unusable += u64::from(is_judged);
            return;
        };
        let into = if is_judged { &mut judged } else { &mut newer };
        for address in &read.addresses {
            let request = (address.to_string(), read.time_ms);
            if is_judged {
                located.insert(request.clone(), (m.partition(), m.offset()));
            }
            *into.entry(request).or_default() += 1;
        }
    })?;

    // Stage 1.
    report.requests_expected = judged.values().sum();
    let mut missing_at = Vec::new();
    for (request, &want) in &judged {
        let have = copies_at.get(request).map_or(0, |at| at.len() as u64);
        report.requests_missing += want.saturating_sub(have);
        if want > have {
            missing_at.extend(located.get(request).copied());
        }
    }
    missing_at.sort_unstable();
    report.missing_lines = missing_at
        .iter()
        .take(EXAMPLES)
        .map(|(partition, offset)| format!("{partition}:{offset}"))
        .collect();
    let (mut duplicated_at, mut duplicated_from) = (Vec::new(), Vec::new());
    for (request, at) in &copies_at {
        let have = at.len() as u64;
        let allowed =
            judged.get(request).copied().unwrap_or(0) + newer.get(request).copied().unwrap_or(0);
        if allowed == 0 {
            report.requests_unexpected += have;
        } else if have > allowed {
            report.requests_duplicated += have - allowed;
            duplicated_at.extend(at.iter().copied());
            duplicated_from.extend(located.get(request).copied());
        }
    }
    // Transaction markers and other requests sit between a batch's records: runs tolerate gaps.
    report.duplicated_records = runs(duplicated_at, 50, EXAMPLES);
    report.duplicated_lines = runs(duplicated_from, 50, EXAMPLES);

    // Stage 2.
    let rules = config.rules();
    let mut expected_counts: HashMap<(i64, String), u64> = HashMap::new();
    let mut all_counts: HashMap<(i64, String), u64> = HashMap::new();
    for (partition, records) in &partitions {
        let limit = counts_committed
            .as_ref()
            .map_or(i64::MAX, |c| c.get(partition).copied().unwrap_or(0));
        let below: Vec<Option<Request>> = records
            .iter()
            .filter(|(offset, _)| *offset < limit)
            .map(|(_, r)| r.clone())
            .collect();
        let model = expected(rules, &below);
        report.late += model.late as u64;
        for c in model.closed {
            expected_counts.insert((c.window_start_ms, c.ip), c.count);
        }
        let every: Vec<Option<Request>> = records.iter().map(|(_, r)| r.clone()).collect();
        for c in expected(rules, &every).closed {
            all_counts.insert((c.window_start_ms, c.ip), c.count);
        }
    }
    report.counts_expected = expected_counts.len() as u64;
    for (key, want) in &expected_counts {
        match found.get(key).map(Vec::as_slice) {
            None | Some([]) => report.counts_missing += 1,
            Some([have]) if have == want => report.counts_matched += 1,
            Some(values) if values.iter().all(|v| v == want) => report.counts_duplicated += 1,
            Some(_) => report.counts_wrong += 1,
        }
    }
    for (key, values) in &found {
        if expected_counts.contains_key(key) {
            continue;
        }
        match all_counts.get(key) {
            Some(want) if values.len() == 1 && values[0] == *want => report.counts_newer += 1,
            Some(want) if values.iter().all(|v| v == want) => report.counts_duplicated += 1,
            Some(_) => report.counts_wrong += 1,
            None => report.counts_unexpected += values.len() as u64,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_told_as_runs_per_partition_within_the_gap() {
        let positions = vec![(1, 10), (0, 5), (1, 12), (1, 100), (0, 6), (1, 11)];
        assert_eq!(
            runs(positions, 50, 10),
            ["0:5-6 (2)", "1:10-12 (3)", "1:100-100 (1)"]
        );
        assert_eq!(runs(vec![(0, 1), (2, 2)], 50, 1), ["0:1-1 (1)"]);
        assert!(runs(Vec::new(), 50, 10).is_empty());
    }
}
