//! From Kafka records to rows: [`decode`] one record, then [`Rows`] holds a batch column by
//! column, ready for one multi-row `INSERT ... SELECT * FROM UNNEST(...)` per table.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ip_count::Count;
use sensor_contract::event::Event;
use stream_engine::job::Rejection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What a topic's records become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// `temperature-events`: alerts and averages.
    Events,
    /// `ip-counts`: final counts per (window, address).
    IpCounts,
    /// `temperature-anomalies`: the sensors' models' anomalies and predictions.
    Anomalies,
}

/// Why a record cannot become a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unusable {
    /// No value (a tombstone) or a value that is not the topic's JSON.
    #[error("record value is not a {what}: {reason}")]
    NotJson {
        /// What the topic holds.
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// An event whose timestamp is not RFC 3339.
    #[error("event timestamp {0:?} is not an RFC 3339 time")]
    BadTimestamp(String),
    /// A count whose address does not parse.
    #[error("ip {0:?} is not an IP address")]
    BadAddress(String),
    /// A number PostgreSQL cannot store (an unsigned value over i64::MAX, a window time out of
    /// range).
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
}

impl Rejection for Unusable {
    fn kind(&self) -> &'static str {
        match self {
            Unusable::NotJson { .. } => "not_json",
            Unusable::BadTimestamp(_) => "bad_timestamp",
            Unusable::BadAddress(_) => "bad_address",
            Unusable::OutOfRange(_) => "out_of_range",
        }
    }
}

/// Columns of `temperature_alerts`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Alerts {
    pub partition: Vec<i32>,
    pub offset: Vec<i64>,
    pub sensor_id: Vec<String>,
    pub seq: Vec<i64>,
    pub temperature: Vec<f64>,
    pub threshold: Vec<f64>,
    pub event_time: Vec<OffsetDateTime>,
}

/// Columns of `temperature_averages`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Averages {
    pub partition: Vec<i32>,
    pub offset: Vec<i64>,
    pub sensor_id: Vec<String>,
    pub seq: Vec<i64>,
    pub average: Vec<f64>,
    pub window_size: Vec<i32>,
    pub event_time: Vec<OffsetDateTime>,
}

/// Columns of `ip_counts`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IpCounts {
    pub window_start: Vec<OffsetDateTime>,
    pub window_end: Vec<OffsetDateTime>,
    pub ip: Vec<IpAddr>,
    pub count: Vec<i64>,
    pub partition: Vec<i32>,
    pub offset: Vec<i64>,
}

/// Columns of `sensor_anomalies`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Anomalies {
    pub partition: Vec<i32>,
    pub offset: Vec<i64>,
    pub sensor_id: Vec<String>,
    pub seq: Vec<i64>,
    pub kind: Vec<String>,
    pub score: Vec<f64>,
    pub temperature: Vec<f64>,
    pub expected: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
    pub event_time: Vec<OffsetDateTime>,
}

/// Columns of `sensor_predictions`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Predictions {
    pub partition: Vec<i32>,
    pub offset: Vec<i64>,
    pub sensor_id: Vec<String>,
    pub seq: Vec<i64>,
    pub temperature: Vec<Option<f64>>,
    pub expected: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
    pub event_time: Vec<OffsetDateTime>,
}

/// One sensor's change in a batch, folded into its `sensors` row.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SensorDelta {
    pub last_seq: i64,
    pub last_event_time: Option<OffsetDateTime>,
    pub last_average: Option<(i64, f64)>,
    pub last_alert: Option<(i64, f64)>,
    pub alerts: i64,
    pub averages: i64,
}

/// The rows of one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    pub alerts: Alerts,
    pub averages: Averages,
    pub ip_counts: IpCounts,
    pub anomalies: Anomalies,
    pub predictions: Predictions,
    /// Per sensor, in sensor-id order (the order rows are locked in, so two sinks never
    /// deadlock on them).
    pub sensors: BTreeMap<String, SensorDelta>,
}

impl Rows {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.alerts.offset.len()
            + self.averages.offset.len()
            + self.ip_counts.offset.len()
            + self.anomalies.offset.len()
            + self.predictions.offset.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a decoded record's row.
    pub fn add(&mut self, partition: i32, offset: i64, row: Row) {
        match row {
            Row::Alert(a) => {
                self.fold(&a.sensor_id, a.seq, a.event_time, |s| {
                    s.alerts += 1;
                    s.last_alert = Some((a.seq, a.temperature));
                });
                let t = &mut self.alerts;
                t.partition.push(partition);
                t.offset.push(offset);
                t.sensor_id.push(a.sensor_id);
                t.seq.push(a.seq);
                t.temperature.push(a.temperature);
                t.threshold.push(a.threshold);
                t.event_time.push(a.event_time);
            }
            Row::Average(a) => {
                self.fold(&a.sensor_id, a.seq, a.event_time, |s| {
                    s.averages += 1;
                    s.last_average = Some((a.seq, a.average));
                });
                let t = &mut self.averages;
                t.partition.push(partition);
                t.offset.push(offset);
                t.sensor_id.push(a.sensor_id);
                t.seq.push(a.seq);
                t.average.push(a.average);
                t.window_size.push(a.window_size);
                t.event_time.push(a.event_time);
            }
            Row::Anomaly(a) => {
                let t = &mut self.anomalies;
                t.partition.push(partition);
                t.offset.push(offset);
                t.sensor_id.push(a.sensor_id);
                t.seq.push(a.seq);
                t.kind.push(a.kind);
                t.score.push(a.score);
                t.temperature.push(a.temperature);
                t.expected.push(a.expected);
                t.low.push(a.low);
                t.high.push(a.high);
                t.event_time.push(a.event_time);
            }
            Row::Prediction(p) => {
                let t = &mut self.predictions;
                t.partition.push(partition);
                t.offset.push(offset);
                t.sensor_id.push(p.sensor_id);
                t.seq.push(p.seq);
                t.temperature.push(p.temperature);
                t.expected.push(p.expected);
                t.low.push(p.low);
                t.high.push(p.high);
                t.event_time.push(p.event_time);
            }
            Row::Count(c) => {
                let t = &mut self.ip_counts;
                t.window_start.push(c.window_start);
                t.window_end.push(c.window_end);
                t.ip.push(c.ip);
                t.count.push(c.count);
                t.partition.push(partition);
                t.offset.push(offset);
            }
        }
    }

    fn fold(
        &mut self,
        sensor_id: &str,
        seq: i64,
        time: OffsetDateTime,
        update: impl FnOnce(&mut SensorDelta),
    ) {
        // A sensor's events come in partition order, so the last one added is the newest.
        let sensor = self.sensors.entry(sensor_id.to_owned()).or_default();
        sensor.last_seq = seq;
        sensor.last_event_time = Some(time);
        update(sensor);
    }
}

/// One record's row, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A `temperature_alerts` row.
    Alert(AlertRow),
    /// A `temperature_averages` row.
    Average(AverageRow),
    /// An `ip_counts` row.
    Count(CountRow),
    /// A `sensor_anomalies` row.
    Anomaly(AnomalyRow),
    /// A `sensor_predictions` row.
    Prediction(PredictionRow),
}

/// A model's anomaly, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRow {
    pub sensor_id: String,
    pub seq: i64,
    pub kind: String,
    pub score: f64,
    pub temperature: f64,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    pub event_time: OffsetDateTime,
}

/// A model's prediction, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    pub sensor_id: String,
    pub seq: i64,
    pub temperature: Option<f64>,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    pub event_time: OffsetDateTime,
}

/// An alert, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub sensor_id: String,
    pub seq: i64,
    pub temperature: f64,
    pub threshold: f64,
    pub event_time: OffsetDateTime,
}

/// An average, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AverageRow {
    pub sensor_id: String,
    pub seq: i64,
    pub average: f64,
    pub window_size: i32,
    pub event_time: OffsetDateTime,
}

/// A count, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CountRow {
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    pub ip: IpAddr,
    pub count: i64,
}

/// Decodes a record value of a topic of `kind` into its row, or says why it cannot be one.
pub fn decode(kind: TopicKind, value: Option<&[u8]>) -> Result<Row, Unusable> {
    let value = value.unwrap_or_default();
    match kind {
        TopicKind::Events => decode_event(value),
        TopicKind::IpCounts => decode_count(value),
        TopicKind::Anomalies => decode_model_event(value),
    }
}

fn decode_model_event(value: &[u8]) -> Result<Row, Unusable> {
    use sensor_contract::model::ModelEvent;
    let event: ModelEvent<'_> = serde_json::from_slice(value).map_err(|e| Unusable::NotJson {
        what: "model event",
        reason: e.to_string(),
    })?;
    let time = |t: &str| {
        OffsetDateTime::parse(t, &Rfc3339).map_err(|_| Unusable::BadTimestamp(t.to_owned()))
    };
    let seq = |seq: u64| i64::try_from(seq).map_err(|_| Unusable::OutOfRange("seq"));
    Ok(match event {
        ModelEvent::Anomaly {
            sensor_id,
            seq: s,
            kind,
            score,
            temperature,
            expected,
            low,
            high,
            timestamp,
        } => Row::Anomaly(AnomalyRow {
            sensor_id: sensor_id.into_owned(),
            seq: seq(s)?,
            kind: kind.into_owned(),
            score,
            temperature,
            expected,
            low,
            high,
            event_time: time(&timestamp)?,
        }),
        ModelEvent::Prediction {
            sensor_id,
            seq: s,
            temperature,
            expected,
            low,
            high,
            timestamp,
        } => Row::Prediction(PredictionRow {
            sensor_id: sensor_id.into_owned(),
            seq: seq(s)?,
            temperature,
            expected,
            low,
            high,
            event_time: time(&timestamp)?,
        }),
    })
}

fn decode_event(value: &[u8]) -> Result<Row, Unusable> {
    let event: Event<'_> = serde_json::from_slice(value).map_err(|e| Unusable::NotJson {
        what: "temperature event",
        reason: e.to_string(),
    })?;
    let seq = i64::try_from(event.seq()).map_err(|_| Unusable::OutOfRange("seq"))?;
    let timestamp = match &event {
        Event::Alert(a) => &a.timestamp,
        Event::Average(a) => &a.timestamp,
    };
    let event_time = OffsetDateTime::parse(timestamp, &Rfc3339)
        .map_err(|_| Unusable::BadTimestamp(timestamp.to_string()))?;
    Ok(match event {
        Event::Alert(a) => Row::Alert(AlertRow {
            sensor_id: a.sensor_id.into_owned(),
            seq,
            temperature: a.temperature,
            threshold: a.threshold,
            event_time,
        }),
        Event::Average(a) => Row::Average(AverageRow {
            window_size: i32::try_from(a.window_size)
                .map_err(|_| Unusable::OutOfRange("window_size"))?,
            sensor_id: a.sensor_id.into_owned(),
            seq,
            average: a.average,
            event_time,
        }),
    })
}

fn decode_count(value: &[u8]) -> Result<Row, Unusable> {
    let count: Count = serde_json::from_slice(value).map_err(|e| Unusable::NotJson {
        what: "count",
        reason: e.to_string(),
    })?;
    let ip: IpAddr = count
        .ip
        .parse()
        .map_err(|_| Unusable::BadAddress(count.ip.clone()))?;
    let at = |ms: i64, what| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map_err(|_| Unusable::OutOfRange(what))
    };
    Ok(Row::Count(CountRow {
        window_start: at(count.window_start_ms, "window_start_ms")?,
        window_end: at(count.window_end_ms, "window_end_ms")?,
        ip,
        count: i64::try_from(count.count).map_err(|_| Unusable::OutOfRange("count"))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_rows_and_fold_into_their_sensor() {
        let mut rows = Rows::default();
        let alert = br#"{"type":"alert","sensor_id":"s-1","seq":11,"temperature":41.5,"threshold":40.0,"timestamp":"2026-11-22T10:00:01Z"}"#;
        let average = br#"{"type":"average","sensor_id":"s-1","seq":11,"average":30.25,"window_size":10,"timestamp":"2026-11-22T10:00:01Z"}"#;
        rows.add(2, 7, decode(TopicKind::Events, Some(alert)).unwrap());
        rows.add(2, 8, decode(TopicKind::Events, Some(average)).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.alerts.offset, [7]);
        assert_eq!(rows.alerts.temperature, [41.5]);
        assert_eq!(rows.averages.average, [30.25]);
        assert_eq!(rows.averages.window_size, [10]);
        let s = &rows.sensors["s-1"];
        assert_eq!((s.alerts, s.averages, s.last_seq), (1, 1, 11));
        assert_eq!(s.last_average, Some((11, 30.25)));
        assert_eq!(s.last_alert, Some((11, 41.5)));
    }

    #[test]
    fn counts_become_rows_with_their_window() {
        let mut rows = Rows::default();
        let v = br#"{"window_start_ms":1795860000000,"window_end_ms":1795860060000,"ip":"2001:db8::1","count":3}"#;
        rows.add(0, 1, decode(TopicKind::IpCounts, Some(v)).unwrap());
        assert_eq!(rows.ip_counts.count, [3]);
        assert_eq!(
            rows.ip_counts.window_start[0].unix_timestamp(),
            1_795_860_000
        );
        assert_eq!(
            rows.ip_counts.ip[0],
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn model_events_become_rows() {
        let mut rows = Rows::default();
        let anomaly = br#"{"type":"anomaly","sensor_id":"s-2","seq":40,"kind":"outlier","score":7.5,"temperature":33.1,"expected":21.0,"low":19.2,"high":22.8,"timestamp":"2026-11-22T10:00:01Z"}"#;
        let prediction = br#"{"type":"prediction","sensor_id":"s-2","seq":40,"temperature":21.3,"expected":21.2,"low":19.4,"high":23.0,"timestamp":"2026-11-22T10:00:01Z"}"#;
        rows.add(1, 3, decode(TopicKind::Anomalies, Some(anomaly)).unwrap());
        rows.add(
            1,
            4,
            decode(TopicKind::Anomalies, Some(prediction)).unwrap(),
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.anomalies.kind, ["outlier"]);
        assert_eq!(rows.anomalies.score, [7.5]);
        assert_eq!(rows.predictions.offset, [4]);
        assert_eq!(rows.predictions.high, [23.0]);
        assert_eq!(rows.predictions.temperature, [Some(21.3)]);
        assert!(
            rows.sensors.is_empty(),
            "model events do not change the sensors table"
        );
        let error = decode(TopicKind::Anomalies, Some(br#"{"type":"alert"}"#)).unwrap_err();
        assert_eq!(error.kind(), "not_json");
    }

    #[test]
    fn unusable_records_say_why() {
        for (kind, value, expected) in [
            (TopicKind::Events, &b"{"[..], "not_json"),
            (TopicKind::Events, &br#"{"type":"gust"}"#[..], "not_json"),
            (
                TopicKind::Events,
                &br#"{"type":"alert","sensor_id":"s","seq":1,"temperature":41,"threshold":40,"timestamp":"yesterday"}"#[..],
                "bad_timestamp",
            ),
            (
                TopicKind::IpCounts,
                &br#"{"window_start_ms":0,"window_end_ms":60000,"ip":"999.1.2.3","count":1}"#[..],
                "bad_address",
            ),
            (
                TopicKind::IpCounts,
                &br#"{"window_start_ms":0,"window_end_ms":60000,"ip":"10.0.0.1","count":18446744073709551615}"#[..],
                "out_of_range",
            ),
        ] {
            let error = decode(kind, Some(value)).unwrap_err();
            assert_eq!(error.kind(), expected, "{error}");
        }
        assert_eq!(
            decode(TopicKind::Events, None).unwrap_err().kind(),
            "not_json"
        );
    }
}
