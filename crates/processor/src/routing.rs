//! What one consumed record becomes: events for the output topic, or a dead letter.
//!
//! Pure: windows are kept per input partition so that a revoked partition's sensors can be
//! dropped as a unit, and so a sensor's window lives only where its partition is assigned.

use std::collections::HashMap;

use sensor_contract::{
    DecodeError, DecodeOptions, Event, ProcessingRules, RawRecord, Reading, SensorWindows,
};

/// Header naming the event type on the output topic (`alert` or `average`).
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// The windows of every assigned partition and the decoding rules.
#[derive(Debug)]
pub struct Router {
    rules: ProcessingRules,
    options: DecodeOptions,
    partitions: HashMap<i32, SensorWindows>,
}

impl Router {
    /// No partition yet.
    pub fn new(rules: ProcessingRules, options: DecodeOptions) -> Self {
        Self {
            rules,
            options,
            partitions: HashMap::new(),
        }
    }

    /// Decodes a record of `partition` and applies it to its sensor's window, pushing the
    /// events it causes onto `out`; an unusable record is returned as the error.
    pub fn route(
        &mut self,
        partition: i32,
        record: &RawRecord<'_>,
        out: &mut Vec<Event>,
    ) -> Result<(), DecodeError> {
        let reading = Reading::decode(record, &self.options)?;
        let rules = self.rules;
        self.partitions
            .entry(partition)
            .or_insert_with(|| SensorWindows::new(rules))
            .apply(&reading, out);
        Ok(())
    }

    /// Forgets the windows of a partition that is no longer assigned here.
    pub fn drop_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Sensors with a window, over all partitions.
    pub fn sensors(&self) -> usize {
        self.partitions.values().map(SensorWindows::len).sum()
    }
}

/// The headers of a dead letter: the reason and where the record came from.
pub fn dead_letter_headers(
    error: &DecodeError,
    topic: &str,
    partition: i32,
    offset: i64,
) -> [(&'static str, String); 5] {
    [
        ("error", error.to_string()),
        ("error.kind", error.kind().to_owned()),
        ("source.topic", topic.to_owned()),
        ("source.partition", partition.to_string()),
        ("source.offset", offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> RawRecord<'_> {
        RawRecord {
            key: None,
            payload: Some(value),
            timestamp_ms: Some(0),
            offset: 5,
        }
    }

    #[test]
    fn windows_are_kept_per_partition_and_dropped_with_it() {
        let rules = ProcessingRules {
            window_size: 2,
            threshold: 40.0,
        };
        let mut router = Router::new(rules, DecodeOptions::default());
        let mut out = Vec::new();
        router
            .route(0, &record(br#"{"temperature":1}"#), &mut out)
            .unwrap();
        router
            .route(1, &record(br#"{"temperature":2}"#), &mut out)
            .unwrap();
        assert!(out.is_empty(), "one reading per partition fills no window");
        assert_eq!(router.sensors(), 2);
        router.drop_partition(0);
        assert_eq!(router.sensors(), 1);
        router
            .route(1, &record(br#"{"temperature":41}"#), &mut out)
            .unwrap();
        assert_eq!(
            out.iter().map(Event::kind).collect::<Vec<_>>(),
            ["alert", "average"]
        );
    }

    #[test]
    fn dead_letters_carry_reason_and_source() {
        let mut router = Router::new(ProcessingRules::default(), DecodeOptions::default());
        let err = router
            .route(3, &record(b"nope"), &mut Vec::new())
            .unwrap_err();
        let headers = dead_letter_headers(&err, "in", 3, 5);
        assert_eq!(
            headers.map(|(k, v)| format!("{k}={v}")),
            [
                "error=record value is not valid JSON: expected ident at line 1 column 2",
                "error.kind=not_json",
                "source.topic=in",
                "source.partition=3",
                "source.offset=5",
            ]
        );
    }
}
