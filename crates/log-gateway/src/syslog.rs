//! Syslog over TCP: RFC 6587's two framings, and RFC 5424 and RFC 3164 messages read for their
//! time, host and application.
//!
//! **Framing** ([`SyslogFramer`]), decided message by message as RFC 6587 (3.4) allows: a frame
//! that starts with a digit is octet-counted (`MSG-LEN SP SYSLOG-MSG`, the length in decimal,
//! exactly that many bytes), as rsyslog's `omfwd` with `TCP_Framing="octet-counted"` and
//! `logger --tcp --octet-count` send it; any other is non-transparent, ended by `\n` (a `\r`
//! before it dropped), as `logger --tcp` and most daemons send it. A message longer than the
//! bound is never cut silently: its first bytes come out as [`Frame::Oversize`] with its whole
//! length, as on the line listener. A bad length (not a number, or no space after it) cannot
//! be framed past: the rest of the connection is read as newline-framed.
//!
//! **Messages** ([`parse`]): `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (RFC 5424, with an
//! RFC 3339 timestamp or `-`), else `<PRI>Mmm dd hh:mm:ss HOST MSG` (RFC 3164, the BSD format,
//! whose timestamp has no year and no zone: the year is the one that puts the time nearest to
//! when it was received, and the zone UTC). Anything else after a valid `<PRI>` is kept whole as
//! the message, with no event time: senders differ, and losing a message for its header would
//! be worse than counting it at its arrival time.

use bytes::{Buf, Bytes, BytesMut};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::framing::{Frame, LineFramer};

/// Longest octet count read as a length: more digits than a `u32` has is no length.
const MAX_LENGTH_DIGITS: usize = 9;

/// Splits a syslog connection's bytes into messages (see the module's documentation).
#[derive(Debug)]
pub struct SyslogFramer {
    max_message_bytes: usize,
    lines: LineFramer,
    state: State,
    /// The first `max_message_bytes` bytes of the oversize message being skipped.
    pending_prefix: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages.
    Start,
    /// Inside a newline-framed message.
    Newline,
    /// Inside an octet-counted message of `length` bytes.
    Counted { length: usize },
    /// Skipping the rest of an octet-counted message over the bound.
    Skipping { length: u64, left: u64 },
    /// A bad octet count was seen: everything after is newline-framed.
    NewlineOnly,
}

impl SyslogFramer {
    /// A framer for messages of at most `max_message_bytes` bytes.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes: max_message_bytes.max(1),
            lines: LineFramer::new(max_message_bytes),
            state: State::Start,
            pending_prefix: None,
        }
    }

    /// The next complete message in `buffer`, consuming its bytes; `None` when more input is
    /// needed.
    pub fn next_frame(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        loop {
            match self.state {
                State::NewlineOnly => return self.lines.next_frame(buffer),
                State::Newline => {
                    let frame = self.lines.next_frame(buffer)?;
                    self.state = State::Start;
                    return Some(frame);
                }
                State::Start => {
                    // Line endings between octet-counted messages (some senders add one).
                    while matches!(buffer.first(), Some(b'\n' | b'\r')) {
                        buffer.advance(1);
                    }
                    let first = *buffer.first()?;
                    if !first.is_ascii_digit() {
                        self.state = State::Newline;
                        continue;
                    }
                    let digits = buffer.iter().take_while(|b| b.is_ascii_digit()).count();
                    if digits == buffer.len() && digits <= MAX_LENGTH_DIGITS {
                        return None; // the length is not complete yet
                    }
                    let length = (digits <= MAX_LENGTH_DIGITS && buffer[digits] == b' ')
                        .then(|| std::str::from_utf8(&buffer[..digits]).ok())
                        .flatten()
                        .and_then(|d| d.parse::<usize>().ok())
                        .filter(|&n| n > 0 && first != b'0');
                    match length {
                        Some(length) => {
                            buffer.advance(digits + 1);
                            self.state = if length > self.max_message_bytes {
                                State::Skipping {
                                    length: length as u64,
                                    left: length as u64,
                                }
                            } else {
                                State::Counted { length }
                            };
                        }
                        None => self.state = State::NewlineOnly,
                    }
                }
                State::Counted { length } => {
                    if buffer.len() < length {
                        buffer.reserve(length - buffer.len());
                        return None;
                    }
                    self.state = State::Start;
                    return Some(Frame::Line(buffer.split_to(length).freeze()));
                }
                State::Skipping { length, left } => {
                    let prefix_len = self.max_message_bytes;
                    let taken = (length - left) as usize;
                    if taken < prefix_len {
                        // Keep the prefix in the buffer until all of it has arrived.
                        if buffer.len() < prefix_len {
                            return None;
                        }
                        let prefix = buffer.split_to(prefix_len).freeze();
                        self.state = State::Skipping {
                            length,
                            left: left - prefix_len as u64,
                        };
                        self.pending_prefix = Some(prefix);
                        continue;
                    }
                    let skip = (left as usize).min(buffer.len());
                    buffer.advance(skip);
                    let left = left - skip as u64;
                    if left > 0 {
                        self.state = State::Skipping { length, left };
                        return None;
                    }
                    self.state = State::Start;
                    return Some(Frame::Oversize {
                        prefix: self.pending_prefix.take().unwrap_or_default(),
                        length,
                    });
                }
            }
        }
    }

    /// The last message at the end of the stream: a newline-framed one without its `\n`, or
    /// what arrived of an octet-counted one (as an oversize frame if it was over the bound, a
    /// message otherwise: the sender ended the connection inside it).
    pub fn finish(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        match std::mem::replace(&mut self.state, State::Start) {
            State::Skipping { length, .. } => {
                // The sender ended inside the message: what arrived of its prefix, if the
                // prefix was not complete yet.
                let prefix = self
                    .pending_prefix
                    .take()
                    .unwrap_or_else(|| buffer.split().freeze());
                buffer.clear();
                Some(Frame::Oversize { prefix, length })
            }
            State::Counted { .. } if !buffer.is_empty() => {
                Some(Frame::Line(buffer.split().freeze()))
            }
            _ => self.lines.finish(buffer),
        }
    }
}

/// A syslog message's parts that the gateway keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message's time, ms since the epoch, when it has one.
    pub time_ms: Option<i64>,
    /// The sending host, when named.
    pub host: Option<&'a str>,
    /// The application (RFC 5424's APP-NAME, RFC 3164's tag), when named.
    pub app: Option<&'a str>,
    /// The free-form message: what address extraction reads.
    pub body: &'a [u8],
}

/// Why a frame is not a syslog message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSyslog {
    /// No `<PRI>` at the start (RFC 5424 6.2.1: `<` 1-3 digits up to 191 `>`).
    #[error("the message does not start with <PRI> (a priority of 0 to 191)")]
    NoPriority,
    /// An RFC 5424 header that does not parse.
    #[error("bad RFC 5424 header: {0}")]
    Bad5424(&'static str),
}

/// Reads a message: RFC 5424, else RFC 3164, else the whole text after `<PRI>` as its body.
/// `received` settles RFC 3164's missing year.
pub fn parse(frame: &[u8], received: OffsetDateTime) -> Result<Message<'_>, NotSyslog> {
    let rest = priority(frame).ok_or(NotSyslog::NoPriority)?;
    if let Some(after_version) = rest.strip_prefix(b"1 ") {
        return parse_5424(after_version);
    }
    if let Some(message) = parse_3164(rest, received) {
        return Ok(message);
    }
    Ok(Message {
        time_ms: None,
        host: None,
        app: None,
        body: rest,
    })
}

/// What follows a valid `<PRI>`.
fn priority(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"<")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return None;
    }
    let value: u16 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    (value <= 191 && (digits == 1 || rest[0] != b'0')).then(|| &rest[digits + 1..])
}

/// The next space-separated field and what follows its space (or nothing at the end).
fn field(input: &[u8]) -> Option<(&[u8], &[u8])> {
    if input.is_empty() {
        return None;
    }
    Some(match memchr::memchr(b' ', input) {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[]),
    })
}

fn text(field: &[u8]) -> Option<&str> {
    (field != b"-")
        .then(|| std::str::from_utf8(field).ok())
        .flatten()
}

fn parse_5424(input: &[u8]) -> Result<Message<'_>, NotSyslog> {
    let missing = NotSyslog::Bad5424("a header field is missing");
    let (timestamp, rest) = field(input).ok_or(missing.clone())?;
    let (host, rest) = field(rest).ok_or(missing.clone())?;
    let (app, rest) = field(rest).ok_or(missing.clone())?;
    let (_procid, rest) = field(rest).ok_or(missing.clone())?;
    let (_msgid, rest) = field(rest).ok_or(missing)?;
    let time_ms = match timestamp {
        b"-" => None,
        stamp => {
            let stamp = std::str::from_utf8(stamp)
                .map_err(|_| NotSyslog::Bad5424("the timestamp is not RFC 3339"))?;
            let time = OffsetDateTime::parse(stamp, &Rfc3339)
                .map_err(|_| NotSyslog::Bad5424("the timestamp is not RFC 3339"))?;
            Some((time.unix_timestamp_nanos() / 1_000_000) as i64)
        }
    };
    let body = skip_structured_data(rest)?;
    // A UTF-8 message may start with a byte-order mark (RFC 5424 6.4).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    Ok(Message {
        time_ms,
        host: text(host),
        app: text(app),
        body,
    })
}

/// What follows STRUCTURED-DATA (`-`, or `[id param="value" …]` elements, where `\"`, `\\`
/// and `\]` are escaped inside values) and its space.
fn skip_structured_data(input: &[u8]) -> Result<&[u8], NotSyslog> {
    if let Some(rest) = input.strip_prefix(b"-") {
        return Ok(rest.strip_prefix(b" ").unwrap_or(rest));
    }
    let unterminated = NotSyslog::Bad5424("structured data is not terminated");
    let mut at = 0;
    while input.get(at) == Some(&b'[') {
        let mut in_value = false;
        loop {
            at += 1;
            match input.get(at) {
                None => return Err(unterminated),
                Some(b'\\') if in_value => at += 1,
                Some(b'"') => in_value = !in_value,
                Some(b']') if !in_value => break,
                Some(_) => {}
            }
        }
        at += 1;
    }
    if at == 0 {
        return Err(NotSyslog::Bad5424("structured data is neither - nor [...]"));
    }
    let rest = &input[at..];
    Ok(rest.strip_prefix(b" ").unwrap_or(rest))
}

fn parse_3164(input: &[u8], received: OffsetDateTime) -> Option<Message<'_>> {
    // `Mmm dd hh:mm:ss ` (the day space-padded): 16 bytes.
    let stamp = std::str::from_utf8(input.get(..15)?).ok()?;
    if input.get(15) != Some(&b' ') {
        return None;
    }
    let month = match &stamp[..3] {
        "Jan" => Month::January,
        "Feb" => Month::February,
        "Mar" => Month::March,
        "Apr" => Month::April,
        "May" => Month::May,
        "Jun" => Month::June,
        "Jul" => Month::July,
        "Aug" => Month::August,
        "Sep" => Month::September,
        "Oct" => Month::October,
        "Nov" => Month::November,
        "Dec" => Month::December,
        _ => return None,
    };
    let bytes = stamp.as_bytes();
    if bytes[3] != b' ' || bytes[6] != b' ' || bytes[9] != b':' || bytes[12] != b':' {
        return None;
    }
    let number = |s: &str| s.trim_start().parse::<u8>().ok();
    let (day, hour, minute, second) = (
        number(&stamp[4..6])?,
        number(&stamp[7..9])?,
        number(&stamp[10..12])?,
        number(&stamp[13..15])?,
    );
    let time = Time::from_hms(hour, minute, second).ok()?;
    // The year that puts the time nearest to its receipt (a December message read in January
    // is from last year).
    let at = |year: i32| {
        Date::from_calendar_date(year, month, day)
            .ok()
            .map(|date| PrimitiveDateTime::new(date, time).assume_utc())
    };
    let year = received.year();
    let time = [year - 1, year, year + 1]
        .into_iter()
        .filter_map(at)
        .min_by_key(|t| (*t - received).abs())?;
    let (host, rest) = field(&input[16..])?;
    let host = std::str::from_utf8(host).ok()?;
    // The tag: `app:` or `app[pid]:` before the content, when there is one.
    let app = field(rest).and_then(|(tag, _)| {
        let tag = std::str::from_utf8(tag).ok()?.strip_suffix(':')?;
        Some(tag.split('[').next().unwrap_or(tag))
    });
    Some(Message {
        time_ms: Some((time.unix_timestamp_nanos() / 1_000_000) as i64),
        host: Some(host),
        app,
        body: rest,
    })
}

#[cfg(test)]
mod tests;
