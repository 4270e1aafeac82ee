//! Output records on the events topic: alerts and averages, keyed by sensor id.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A reading whose temperature was strictly above the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert<'a> {
    /// The sensor that took the reading.
    pub sensor_id: Cow<'a, str>,
    /// The reading's per-sensor sequence number.
    pub seq: u64,
    /// The reading's temperature, °C.
    pub temperature: f64,
    /// The threshold it exceeded, °C.
    pub threshold: f64,
    /// When the reading was taken (RFC 3339, UTC).
    pub timestamp: Cow<'a, str>,
}

/// The mean of a full window, emitted for the reading that completed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Average<'a> {
    /// The sensor the window belongs to.
    pub sensor_id: Cow<'a, str>,
    /// Sequence number of the newest reading in the window.
    pub seq: u64,
    /// Mean temperature of the window, °C.
    pub average: f64,
    /// Number of readings averaged.
    pub window_size: usize,
    /// When the newest reading was taken (RFC 3339, UTC).
    pub timestamp: Cow<'a, str>,
}

/// One output record. Serialized with a `type` field: `"alert"` or `"average"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event<'a> {
    /// See [`Alert`].
    Alert(Alert<'a>),
    /// See [`Average`].
    Average(Average<'a>),
}

impl Event<'_> {
    /// The sensor the event is about; it is also the record key.
    pub fn sensor_id(&self) -> &str {
        match self {
            Event::Alert(a) => &a.sensor_id,
            Event::Average(a) => &a.sensor_id,
        }
    }

    /// Sequence number of the reading that produced the event.
    pub fn seq(&self) -> u64 {
        match self {
            Event::Alert(a) => a.seq,
            Event::Average(a) => a.seq,
        }
    }

    /// The value of the `type` field and of the `event-type` header.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Alert(_) => "alert",
            Event::Average(_) => "average",
        }
    }

    /// The JSON value written to the events topic.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.write_json(&mut out);
        out
    }

    /// Appends [`Event::to_json`]'s bytes to `out`, allocating nothing beyond `out`'s growth.
    ///
    /// Written field by field rather than through serde's derive: the same bytes (a property
    /// test compares them with serde_json's), without serde_json's byte-by-byte escaping of
    /// strings that need none. Numbers go through serde_json's own formatting.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Event::Alert(a) => {
                out.extend_from_slice(br#"{"type":"alert","sensor_id":"#);
                write_str(&a.sensor_id, out);
                out.extend_from_slice(br#","seq":"#);
                write_number(a.seq, out);
                out.extend_from_slice(br#","temperature":"#);
                write_number(a.temperature, out);
                out.extend_from_slice(br#","threshold":"#);
                write_number(a.threshold, out);
                out.extend_from_slice(br#","timestamp":"#);
                write_str(&a.timestamp, out);
            }
            Event::Average(a) => {
                out.extend_from_slice(br#"{"type":"average","sensor_id":"#);
                write_str(&a.sensor_id, out);
                out.extend_from_slice(br#","seq":"#);
                write_number(a.seq, out);
                out.extend_from_slice(br#","average":"#);
                write_number(a.average, out);
                out.extend_from_slice(br#","window_size":"#);
                write_number(a.window_size, out);
                out.extend_from_slice(br#","timestamp":"#);
                write_str(&a.timestamp, out);
            }
        }
        out.push(b'}');
    }

    /// The same event, owning its strings.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Alert(a) => Event::Alert(Alert {
                sensor_id: Cow::Owned(a.sensor_id.into_owned()),
                seq: a.seq,
                temperature: a.temperature,
                threshold: a.threshold,
                timestamp: Cow::Owned(a.timestamp.into_owned()),
            }),
            Event::Average(a) => Event::Average(Average {
                sensor_id: Cow::Owned(a.sensor_id.into_owned()),
                seq: a.seq,
                average: a.average,
                window_size: a.window_size,
                timestamp: Cow::Owned(a.timestamp.into_owned()),
            }),
        }
    }
}

/// A JSON string: copied between quotes when nothing in it needs escaping, else serde_json's.
fn write_str(text: &str, out: &mut Vec<u8>) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = serde_json::to_writer(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// A JSON number as serde_json writes it (cannot fail: finite by construction, and a
/// non-finite float would be written as `null`, as serde_json does).
fn write_number<N: Serialize>(n: N, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, &n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_contract_fields() {
        let alert = Event::Alert(Alert {
            sensor_id: "sensor-0007".into(),
            seq: 1234,
            temperature: 41.27,
            threshold: 40.0,
            timestamp: "2026-11-22T01:02:03.456Z".into(),
        });
        assert_eq!(
            String::from_utf8(alert.to_json()).unwrap(),
            r#"{"type":"alert","sensor_id":"sensor-0007","seq":1234,"temperature":41.27,"threshold":40.0,"timestamp":"2026-11-22T01:02:03.456Z"}"#
        );
        let average = Event::Average(Average {
            sensor_id: "sensor-0007".into(),
            seq: 1234,
            average: 23.456,
            window_size: 10,
            timestamp: "2026-11-22T01:02:03.456Z".into(),
        });
        assert_eq!(
            String::from_utf8(average.to_json()).unwrap(),
            r#"{"type":"average","sensor_id":"sensor-0007","seq":1234,"average":23.456,"window_size":10,"timestamp":"2026-11-22T01:02:03.456Z"}"#
        );
        let back: Event<'_> = serde_json::from_slice(&average.to_json()).unwrap();
        assert_eq!(back, average);
        assert_eq!(average.kind(), "average");
    }

    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{1,20}",
            any::<String>(),
            "[\"\\\\\u{0}-\u{1f}a\u{7f}é☃]{0,8}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn hand_written_json_is_serde_json_byte_for_byte(
            sensor_id in text(), timestamp in text(), seq in any::<u64>(),
            value in prop_oneof![any::<f64>().prop_filter("finite", |v| v.is_finite()), -300.0..300.0f64],
            threshold in -300.0..300.0f64, window_size in 1usize..1000, alert in any::<bool>(),
        ) {
            let event = if alert {
                Event::Alert(Alert { sensor_id: sensor_id.into(), seq, temperature: value, threshold, timestamp: timestamp.into() })
            } else {
                Event::Average(Average { sensor_id: sensor_id.into(), seq, average: value, window_size, timestamp: timestamp.into() })
            };
            prop_assert_eq!(
                String::from_utf8(event.to_json()).unwrap(),
                serde_json::to_string(&event).unwrap()
            );
        }
    }
}
