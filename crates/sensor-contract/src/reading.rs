//! Input records: the version-1 reading and its validation from raw Kafka records.
//!
//! Decoding never panics and never guesses: a record is either a [`Reading`] or a
//! [`DecodeError`] whose message says what was wrong, for the dead-letter topic.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{ABSOLUTE_ZERO_C, MAX_SENSOR_ID_BYTES};

/// A validated temperature reading. Decoding borrows the sensor id and timestamp from the
/// record where it can (`Reading<'static>` owns them: [`Reading::into_owned`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<'a> {
    /// Which sensor took it: 1..=128 bytes of UTF-8.
    pub sensor_id: Cow<'a, str>,
    /// Per-sensor sequence number. Records without one (the original Python producer's) get
    /// their Kafka offset, which is unique and increasing within a partition.
    pub seq: u64,
    /// The temperature in °C: finite and not below absolute zero.
    pub temperature: f64,
    /// When the reading was taken, RFC 3339 in UTC. Records without one get the Kafka record
    /// timestamp.
    pub timestamp: Cow<'a, str>,
}

/// A Kafka record as the decoder sees it: borrowed bytes plus the coordinates it needs.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// The record key, if any.
    pub key: Option<&'a [u8]>,
    /// The record value; `None` for a null value.
    pub payload: Option<&'a [u8]>,
    /// The Kafka record timestamp in milliseconds since the epoch, if the record has one.
    pub timestamp_ms: Option<i64>,
    /// The record's offset in its partition.
    pub offset: i64,
}

/// What decoding needs to know beyond the record.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Sensor id for records with neither a `sensor_id` field nor a key.
    pub default_sensor_id: String,
    /// Largest accepted value, in bytes.
    pub max_record_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            default_sensor_id: "default".to_owned(),
            max_record_bytes: 64 * 1024,
        }
    }
}

/// Why a record is not a usable reading. The `Display` text is the dead letter's `error` header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The record has a null or empty value.
    #[error("record has no value")]
    Empty,
    /// The value is larger than the configured limit.
    #[error("record value is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the value.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The value is not UTF-8 text.
    #[error("record value is not valid UTF-8 (invalid byte at position {position})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        position: usize,
    },
    /// The value is not JSON.
    #[error("record value is not valid JSON: {0}")]
    NotJson(String),
    /// The value is JSON but not an object.
    #[error("record value is JSON {found}, not an object")]
    NotObject {
        /// What kind of JSON value it is.
        found: &'static str,
    },
    /// The object repeats a field or is otherwise malformed for the contract.
    #[error("record value is not a valid reading: {0}")]
    Malformed(String),
    /// No `temperature` field.
    #[error("field `temperature` is missing")]
    MissingTemperature,
    /// A known field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// The type the contract says.
        expected: &'static str,
        /// What the record has.
        found: String,
    },
    /// Temperature is not a finite number.
    #[error("field `temperature` is not a finite number")]
    NotFinite,
    /// Temperature below -273.15 °C.
    #[error("field `temperature` is {0} °C, below absolute zero (-273.15 °C)")]
    BelowAbsoluteZero(f64),
    /// The sensor id is empty.
    #[error("sensor id is empty")]
    EmptySensorId,
    /// The sensor id is longer than 128 bytes.
    #[error("sensor id is {0} bytes long, over the limit of 128 bytes")]
    SensorIdTooLong(usize),
    /// The record key, needed as the sensor id, is not UTF-8.
    #[error("record key is not valid UTF-8 and the value has no `sensor_id`")]
    KeyNotUtf8,
    /// The `sensor_id` field and the record key disagree.
    #[error("field `sensor_id` is {sensor_id:?} but the record key is {key:?}")]
    KeyMismatch {
        /// The record key.
        key: String,
        /// The `sensor_id` field.
        sensor_id: String,
    },
    /// The `timestamp` field is not RFC 3339.
    #[error("field `timestamp` is not an RFC 3339 date-time: {0:?}")]
    BadTimestamp(String),
    /// Neither a `timestamp` field nor a Kafka record timestamp.
    #[error("record has no `timestamp` field and no Kafka timestamp")]
    NoTimestamp,
}

impl DecodeError {
    /// A short, stable name for the kind of error, for metrics and the `error.kind` header.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::NotUtf8 { .. } => "not_utf8",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::NotObject { .. } => "not_object",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::MissingTemperature => "missing_temperature",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::NotFinite => "not_finite",
            DecodeError::BelowAbsoluteZero(_) => "below_absolute_zero",
            DecodeError::EmptySensorId => "empty_sensor_id",
            DecodeError::SensorIdTooLong(_) => "sensor_id_too_long",
            DecodeError::KeyNotUtf8 => "key_not_utf8",
            DecodeError::KeyMismatch { .. } => "key_mismatch",
            DecodeError::BadTimestamp(_) => "bad_timestamp",
            DecodeError::NoTimestamp => "no_timestamp",
        }
    }
}

/// The record's fields, still undecoded, so each can be checked with its own message.
/// `None` means absent; a JSON `null` arrives as the raw value `null`.
#[derive(Deserialize)]
struct WireReading<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    sensor_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    timestamp: Option<&'a RawValue>,
}

/// The four fields of a reading as raw JSON texts (`None`: absent; `"null"`: null).
#[derive(Debug, Default, PartialEq)]
struct Fields<'a> {
    sensor_id: Option<&'a str>,
    seq: Option<&'a str>,
    temperature: Option<&'a str>,
    timestamp: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// With serde_json: any valid JSON object, and the precise error for anything else.
    fn parse(text: &'a str) -> Result<Fields<'a>, DecodeError> {
        let wire: WireReading<'a> = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                DecodeError::Malformed(e.to_string())
            } else {
                DecodeError::NotJson(e.to_string())
            }
        })?;
        Ok(Fields {
            sensor_id: wire.sensor_id.map(RawValue::get),
            seq: wire.seq.map(RawValue::get),
            temperature: wire.temperature.map(RawValue::get),
            timestamp: wire.timestamp.map(RawValue::get),
        })
    }

    /// The hot path's shortcut: a flat object whose values are strings without escapes,
    /// numbers, booleans or null, each field once, is read in one pass. Anything else
    /// (nesting, escapes, duplicates, any syntax error) returns `None` and goes to
    /// [`Fields::parse`]; a property test checks the two agree wherever this one answers.
    fn scan(text: &'a str) -> Option<Fields<'a>> {
        let b = text.as_bytes();
        let mut i = skip_ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        let mut fields = Fields::default();
        i = skip_ws(b, i + 1);
        if b.get(i) == Some(&b'}') {
            return (skip_ws(b, i + 1) == b.len()).then_some(fields);
        }
        loop {
            let (key_start, key_end) = scan_string(b, i)?;
            i = skip_ws(b, key_end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let value_end = scan_value(b, i)?;
            let value = &text[i..value_end];
            let slot = match &text[key_start + 1..key_end - 1] {
                "sensor_id" => Some(&mut fields.sensor_id),
                "seq" => Some(&mut fields.seq),
                "temperature" => Some(&mut fields.temperature),
                "timestamp" => Some(&mut fields.timestamp),
                _ => None,
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    return None; // a duplicate: serde_json's error message says which
                }
                *slot = Some(value);
            }
            i = skip_ws(b, value_end);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => return (skip_ws(b, i + 1) == b.len()).then_some(fields),
                _ => return None,
            }
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string without escapes or control characters starting at `i`: its start and end
/// (past the closing quote).
fn scan_string(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let len = b[i + 1..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    (b[i + 1 + len] == b'"').then_some((i, i + len + 2))
}

/// The end of a scalar JSON value starting at `i` (a string as above, a number in JSON's
/// grammar, `true`, `false` or `null`).
fn scan_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => scan_string(b, i).map(|(_, end)| end),
        b't' => b[i..].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        _ => scan_number(b, i),
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn scan_number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i += digits(b, i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(b, i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(b, i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

/// Keeps `null` as a value instead of letting serde fold it into `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl<'a> Reading<'a> {
    /// Validates a raw record against the version-1 contract (and the original producer's
    /// bare `{"temperature": t}` form). The reading borrows from the record where it can.
    pub fn decode(
        record: &RawRecord<'a>,
        options: &DecodeOptions,
    ) -> Result<Reading<'a>, DecodeError> {
        let payload = match record.payload {
            Some(p) if !p.is_empty() => p,
            _ => return Err(DecodeError::Empty),
        };
        if payload.len() > options.max_record_bytes {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit: options.max_record_bytes,
            });
        }
        let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotUtf8 {
            position: e.valid_up_to(),
        })?;
        if !text.trim_start().starts_with('{') {
            // Tell "some other JSON value" apart from "not JSON at all".
            return Err(match serde_json::from_str::<&RawValue>(text) {
                Ok(value) => DecodeError::NotObject {
                    found: json_kind(value.get()),
                },
                Err(e) => DecodeError::NotJson(e.to_string()),
            });
        }
        let wire = match Fields::scan(text) {
            Some(fields) => fields,
            None => Fields::parse(text)?,
        };

        let temperature = match non_null(wire.temperature) {
            None if wire.temperature.is_none() => return Err(DecodeError::MissingTemperature),
            None => return Err(wrong_type("temperature", "a number", wire.temperature)),
            Some(raw) => {
                if json_kind(raw) != "a number" {
                    return Err(wrong_type("temperature", "a number", Some(raw)));
                }
                // JSON's number grammar is a subset of Rust's float syntax, and both round
                // correctly; a number too large for an f64 (such as 1e999) parses as infinite.
                let t: f64 = raw
                    .parse()
                    .map_err(|_| wrong_type("temperature", "a number", Some(raw)))?;
                if !t.is_finite() {
                    return Err(DecodeError::NotFinite);
                }
                if t < ABSOLUTE_ZERO_C {
                    return Err(DecodeError::BelowAbsoluteZero(t));
                }
                t
            }
        };

        let field_id = match non_null(wire.sensor_id) {
            None => None,
            Some(raw) => {
                Some(json_str(raw).ok_or_else(|| wrong_type("sensor_id", "a string", Some(raw)))?)
            }
        };
        let sensor_id = match (field_id, record.key) {
            (Some(id), Some(key)) => {
                if key != id.as_bytes() {
                    return Err(DecodeError::KeyMismatch {
                        key: String::from_utf8_lossy(key).into_owned(),
                        sensor_id: id.into_owned(),
                    });
                }
                id
            }
            (Some(id), None) => id,
            (None, Some(key)) => {
                Cow::Borrowed(std::str::from_utf8(key).map_err(|_| DecodeError::KeyNotUtf8)?)
            }
            (None, None) => Cow::Owned(options.default_sensor_id.clone()),
        };
        if sensor_id.is_empty() {
            return Err(DecodeError::EmptySensorId);
        }
        if sensor_id.len() > MAX_SENSOR_ID_BYTES {
            return Err(DecodeError::SensorIdTooLong(sensor_id.len()));
        }

        let seq = match non_null(wire.seq) {
            None => u64::try_from(record.offset).unwrap_or(0),
            // A JSON integer is digits with an optional minus; `u64::from_str` takes the
            // unsigned ones and rejects fractions, exponents and overflow, as serde would.
            Some(raw) => raw
                .parse::<u64>()
                .map_err(|_| wrong_type("seq", "an unsigned integer", Some(raw)))?,
        };

        let timestamp = match non_null(wire.timestamp) {
            Some(raw) => {
                let text = json_str(raw)
                    .ok_or_else(|| wrong_type("timestamp", "an RFC 3339 string", Some(raw)))?;
                normalize_timestamp(text)
                    .map_err(|text| DecodeError::BadTimestamp(text.into_owned()))?
            }
            None => match record.timestamp_ms {
                Some(ms) if ms >= 0 => {
                    Cow::Owned(format_millis(ms).ok_or(DecodeError::NoTimestamp)?)
                }
                _ => return Err(DecodeError::NoTimestamp),
            },
        };

        Ok(Reading {
            sensor_id,
            seq,
            temperature,
            timestamp,
        })
    }

    /// The same reading, owning its strings.
    pub fn into_owned(self) -> Reading<'static> {
        Reading {
            sensor_id: Cow::Owned(self.sensor_id.into_owned()),
            seq: self.seq,
            temperature: self.temperature,
            timestamp: Cow::Owned(self.timestamp.into_owned()),
        }
    }

    /// The reading as a version-1 JSON value, as the simulator publishes it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "sensor_id": self.sensor_id,
            "seq": self.seq,
            "temperature": self.temperature,
            "timestamp": self.timestamp,
        }))
        .unwrap_or_default()
    }
}

/// A JSON string's value, borrowed when it has no escapes; `None` if `raw` is not a string.
fn json_str(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        // serde_json has validated the string: no control characters, and without escapes
        // its value is the text between the quotes.
        Some(Cow::Borrowed(inner))
    }
}

/// An optional field that is absent or JSON `null` counts as absent.
fn non_null(raw: Option<&str>) -> Option<&str> {
    raw.filter(|r| *r != "null")
}

fn wrong_type(field: &'static str, expected: &'static str, raw: Option<&str>) -> DecodeError {
    let found = match raw {
        None => "nothing".to_owned(),
        Some(text) => {
            let kind = json_kind(text);
            if text.len() <= 40 {
                format!("{kind} {text}")
            } else {
                kind.to_owned()
            }
        }
    };
    DecodeError::WrongType {
        field,
        expected,
        found,
    }
}

fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Parses an RFC 3339 date-time and returns it in UTC. A UTC value ending in `Z` is kept as
/// written; others are converted. The text back if it is not RFC 3339.
fn normalize_timestamp(text: Cow<'_, str>) -> Result<Cow<'_, str>, Cow<'_, str>> {
    if is_canonical_utc(&text) {
        return Ok(text);
    }
    let Ok(parsed) = OffsetDateTime::parse(&text, &Rfc3339) else {
        return Err(text);
    };
    if text.ends_with('Z') {
        return Ok(text);
    }
    match parsed.to_offset(time::UtcOffset::UTC).format(&Rfc3339) {
        Ok(utc) => Ok(Cow::Owned(utc)),
        Err(_) => Err(text),
    }
}

/// Whether `text` is a valid date-time in the form the simulator writes,
/// `YYYY-MM-DDTHH:MM:SS.sssZ`, checked without a general parser: the hot path's shortcut.
/// Anything else (other precisions, offsets, leap seconds, invalid values) returns `false`
/// and goes through the full RFC 3339 parser.
fn is_canonical_utc(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return false;
    }
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    if !digits.iter().all(|&i| b[i].is_ascii_digit()) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
        && number(11..13) <= 23
        && number(14..16) <= 59
        && number(17..19) <= 59
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC with millisecond precision.
pub fn format_millis(ms: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).ok()
}

#[cfg(test)]
mod tests;
