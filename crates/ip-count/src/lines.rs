//! Stage 1 of the IP-count pipeline: log lines in, one record per address out, keyed by the
//! address, to the repartition topic (Kafka Streams' `flatMap` + `groupByKey` through a
//! repartition topic). Stateless: the engine commits its outputs and its input offsets in one
//! transaction, so each line's addresses are repartitioned exactly once.
//!
//! A record's value is the request's event time in ms (decimal ASCII): the line's own
//! timestamp (`[22/Nov/2026:10:00:00 +0000]`, the first bracketed field of the combined
//! format that is a time: a bracketed IPv6 address before it is passed over), or the Kafka
//! timestamp when the line has none.

use std::net::IpAddr;

use stream_engine::{ApplyContext, InputRecord, Job, Outputs, Rejection};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::extract::addresses;

/// Index of the repartition topic among the job's outputs.
pub const REQUESTS: usize = 0;

const COMBINED_TIME: &[BorrowedFormatItem<'static>] = format_description!(
    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
);

/// Why a line is not counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// The record has no value.
    #[error("the record has no value")]
    Empty,
    /// The line is not UTF-8.
    #[error("the line is not UTF-8 (byte {valid_up_to} is not)")]
    NotUtf8 {
        /// Bytes before the first invalid one.
        valid_up_to: usize,
    },
    /// No IP address in the line.
    #[error("the line holds no IP address")]
    NoAddress,
    /// The bracketed timestamp does not parse.
    #[error("the timestamp [{0}] is not dd/Mon/yyyy:HH:MM:SS +zzzz")]
    BadTimestamp(String),
    /// Neither a timestamp in the line nor a Kafka timestamp.
    #[error("the line has no timestamp and the record has no Kafka timestamp")]
    NoTime,
}

impl Rejection for Unusable {
    fn kind(&self) -> &'static str {
        match self {
            Unusable::Empty => "empty",
            Unusable::NotUtf8 { .. } => "not_utf8",
            Unusable::NoAddress => "no_address",
            Unusable::BadTimestamp(_) => "bad_timestamp",
            Unusable::NoTime => "no_event_time",
        }
    }
}

/// A line's addresses and its event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requests {
    /// Every address in the line, in order.
    pub addresses: Vec<IpAddr>,
    /// The line's event time, ms since the epoch.
    pub time_ms: i64,
}

/// Reads a line: its addresses and event time, or why it is unusable.
pub fn read_line(value: &[u8], kafka_timestamp_ms: Option<i64>) -> Result<Requests, Unusable> {
    if value.is_empty() {
        return Err(Unusable::Empty);
    }
    let line = std::str::from_utf8(value).map_err(|e| Unusable::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let time_ms = match bracketed(line) {
        Some(stamp) => time::OffsetDateTime::parse(stamp, COMBINED_TIME)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|_| Unusable::BadTimestamp(stamp.to_owned()))?,
        None => kafka_timestamp_ms.ok_or(Unusable::NoTime)?,
    };
    let addresses = addresses(value);
    if addresses.is_empty() {
        return Err(Unusable::NoAddress);
    }
    Ok(Requests { addresses, time_ms })
}

/// The first `[...]` field that is a time: one whose third byte is the `/` after its day
/// (`[22/Nov/2026:10:00:00 +0000]`). Bracketed fields before it that are not times, such as an
/// IPv6 address with its port (`[2001:db8::1]:443`), are passed over.
fn bracketed(line: &str) -> Option<&str> {
    let mut rest = line;
    loop {
        let start = rest.find('[')?;
        rest = &rest[start + 1..];
        let end = rest.find(']')?;
        let field = &rest[..end];
        if field.as_bytes().get(2) == Some(&b'/') {
            return Some(field);
        }
        rest = &rest[end + 1..];
    }
}

/// The line job.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineJob;

impl Job for LineJob {
    type Input<'r> = Requests;
    type State = ();
    type Reject = Unusable;
    const STATEFUL: bool = false;

    fn decode<'r>(&self, record: &InputRecord<'r>) -> Result<Requests, Unusable> {
        read_line(record.value.unwrap_or_default(), record.timestamp_ms)
    }

    fn key<'i>(&self, _requests: &'i Requests) -> &'i str {
        ""
    }

    fn event_time_ms(&self, requests: &Requests, _record: &InputRecord<'_>) -> Option<i64> {
        Some(requests.time_ms)
    }

    fn new_state(&self) {}

    fn apply(
        &self,
        requests: &Requests,
        _state: &mut (),
        _context: &ApplyContext,
        out: &mut Outputs,
    ) -> Result<(), Unusable> {
        let time = requests.time_ms.to_string();
        for address in &requests.addresses {
            out.emit(
                REQUESTS,
                address.to_string().as_bytes(),
                "request",
                |value| {
                    value.extend_from_slice(time.as_bytes());
                },
            );
        }
        Ok(())
    }

    fn encode_state(&self, _state: &(), _out: &mut Vec<u8>) {}

    fn decode_state(&self, _version: u16, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combined_line_gives_its_addresses_at_its_own_time() {
        let line = br#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0" "198.51.100.1, 2001:db8::1""#;
        let read = read_line(line, Some(1)).expect("usable");
        assert_eq!(
            read.time_ms, 1_795_338_000_000,
            "10:00 at +01:00 is 09:00 UTC"
        );
        let addresses: Vec<String> = read.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(addresses, ["203.0.113.7", "198.51.100.1", "2001:db8::1"]);
    }

    #[test]
    fn without_a_timestamp_the_kafka_timestamp_is_the_event_time() {
        let read = read_line(b"client 192.0.2.1 connected", Some(1234)).expect("usable");
        assert_eq!(read.time_ms, 1234);
        assert_eq!(
            read_line(b"[2001:db8::1]:443 up", Some(5))
                .expect("usable")
                .time_ms,
            5
        );
        assert_eq!(read_line(b"192.0.2.1", None), Err(Unusable::NoTime));
    }

    #[test]
    fn a_bracketed_address_before_the_timestamp_is_not_taken_for_it() {
        let line = br#"[2001:db8::99]:443 - - [06/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5"#;
        let read = read_line(line, Some(1)).expect("usable");
        assert_eq!(read.time_ms, 1_796_551_200_000, "the line's own time");
        let addresses: Vec<String> = read.addresses.iter().map(ToString::to_string).collect();
        assert_eq!(addresses, ["2001:db8::99"]);
        // A bad timestamp after a bracketed address is still reported, not skipped.
        assert_eq!(
            read_line(b"[2001:db8::99]:443 [99/Foo/2026:25:61:61 +0000]", Some(1)),
            Err(Unusable::BadTimestamp(
                "99/Foo/2026:25:61:61 +0000".to_owned()
            ))
        );
    }

    #[test]
    fn unusable_lines_say_why() {
        assert_eq!(read_line(b"", Some(1)), Err(Unusable::Empty));
        assert_eq!(
            read_line(b"1.2.3.4 \xff", Some(1)),
            Err(Unusable::NotUtf8 { valid_up_to: 8 })
        );
        assert_eq!(
            read_line(b"- - [22/Nov/2026:10:00:00 +0000] x", Some(1)),
            Err(Unusable::NoAddress)
        );
        assert_eq!(
            read_line(b"1.2.3.4 [99/Foo/2026:25:61:61 +0000]", Some(1)),
            Err(Unusable::BadTimestamp(
                "99/Foo/2026:25:61:61 +0000".to_owned()
            ))
        );
        assert_eq!(Unusable::NoAddress.kind(), "no_address");
    }
}
