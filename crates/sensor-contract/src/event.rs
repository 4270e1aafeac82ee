//! Output records on the events topic: alerts and averages, keyed by sensor id.

use serde::{Deserialize, Serialize};

/// A reading whose temperature was strictly above the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The sensor that took the reading.
    pub sensor_id: String,
    /// The reading's per-sensor sequence number.
    pub seq: u64,
    /// The reading's temperature, °C.
    pub temperature: f64,
    /// The threshold it exceeded, °C.
    pub threshold: f64,
    /// When the reading was taken (RFC 3339, UTC).
    pub timestamp: String,
}

/// The mean of a full window, emitted for the reading that completed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Average {
    /// The sensor the window belongs to.
    pub sensor_id: String,
    /// Sequence number of the newest reading in the window.
    pub seq: u64,
    /// Mean temperature of the window, °C.
    pub average: f64,
    /// Number of readings averaged.
    pub window_size: usize,
    /// When the newest reading was taken (RFC 3339, UTC).
    pub timestamp: String,
}

/// One output record. Serialized with a `type` field: `"alert"` or `"average"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// See [`Alert`].
    Alert(Alert),
    /// See [`Average`].
    Average(Average),
}

impl Event {
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
        // Serializing these plain structs cannot fail: every field is a string or a number,
        // and temperatures are finite by construction.
        serde_json::to_vec(self).unwrap_or_default()
    }
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
        let back: Event = serde_json::from_slice(&average.to_json()).unwrap();
        assert_eq!(back, average);
        assert_eq!(average.kind(), "average");
    }
}
