use super::*;

fn decode(key: Option<&[u8]>, value: &[u8]) -> Result<Reading<'static>, DecodeError> {
    Reading::decode(
        &RawRecord {
            key,
            payload: Some(value),
            timestamp_ms: Some(1_795_000_000_123),
            offset: 42,
        },
        &DecodeOptions::default(),
    )
    .map(Reading::into_owned)
}

#[test]
fn decodes_a_version_1_reading() {
    let r = decode(
        Some(b"sensor-0007"),
        br#"{"sensor_id":"sensor-0007","seq":1234,"temperature":41.27,"timestamp":"2026-11-22T01:02:03.456Z","extra":[1]}"#,
    )
    .unwrap();
    assert_eq!(
        r,
        Reading {
            sensor_id: "sensor-0007".into(),
            seq: 1234,
            temperature: 41.27,
            timestamp: "2026-11-22T01:02:03.456Z".into(),
        }
    );
    let back = decode(Some(b"sensor-0007"), &r.to_json()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn decodes_the_original_producers_bare_record() {
    // No key: the configured default id; no seq: the offset; no timestamp: the Kafka one.
    let r = decode(None, br#"{"temperature": 23.5}"#).unwrap();
    assert_eq!(r.sensor_id, "default");
    assert_eq!(r.seq, 42);
    assert_eq!(r.temperature, 23.5);
    assert_eq!(r.timestamp, "2026-11-18T11:06:40.123Z");
    // With a key, the key names the sensor.
    let r = decode(Some(b"boiler"), br#"{"temperature": 23}"#).unwrap();
    assert_eq!(r.sensor_id, "boiler");
    assert_eq!(r.temperature, 23.0);
}

#[test]
fn converts_other_offsets_to_utc_and_treats_null_optionals_as_absent() {
    let r = decode(
        None,
        br#"{"sensor_id":"s","temperature":1,"seq":null,"timestamp":"2026-11-22T03:00:00.5+02:00"}"#,
    )
    .unwrap();
    assert_eq!(r.timestamp, "2026-11-22T01:00:00.5Z");
    assert_eq!(r.seq, 42);
}

/// (key, value, expected kind, expected message)
type Case<'a> = (Option<&'a [u8]>, &'a [u8], &'a str, &'a str);

/// Every kind of unusable record the design lists, and more, with the exact reason.
#[test]
fn rejects_each_kind_of_bad_record_with_its_reason() {
    let long_id = "x".repeat(129);
    let long_id_json = format!(r#"{{"sensor_id":"{long_id}","temperature":1}}"#);
    let big = format!(r#"{{"temperature":1,"pad":"{}"}}"#, "p".repeat(70_000));
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        (None, b"", "empty", "record has no value"),
        (None, big.as_bytes(), "too_large", "record value is 70026 bytes, over the limit of 65536 bytes"),
        (None, b"{\"temperature\":\xff1}", "not_utf8", "record value is not valid UTF-8 (invalid byte at position 15)"),
        (None, b"hello", "not_json", "record value is not valid JSON: expected value at line 1 column 1"),
        (None, b"{\"temperature\":", "not_json", "record value is not valid JSON: EOF while parsing a value at line 1 column 15"),
        (None, b"[1,2]", "not_object", "record value is JSON an array, not an object"),
        (None, b"42.5", "not_object", "record value is JSON a number, not an object"),
        (None, b"\"hot\"", "not_object", "record value is JSON a string, not an object"),
        (None, b"{}", "missing_temperature", "field `temperature` is missing"),
        (None, br#"{"temp":20}"#, "missing_temperature", "field `temperature` is missing"),
        (None, br#"{"temperature":"hot"}"#, "wrong_type", "field `temperature` must be a number, found a string \"hot\""),
        (None, br#"{"temperature":null}"#, "wrong_type", "field `temperature` must be a number, found null null"),
        (None, br#"{"temperature":[1]}"#, "wrong_type", "field `temperature` must be a number, found an array [1]"),
        (None, br#"{"temperature":1e999}"#, "not_finite", "field `temperature` is not a finite number"),
        (None, br#"{"temperature":-300}"#, "below_absolute_zero", "field `temperature` is -300 °C, below absolute zero (-273.15 °C)"),
        (None, br#"{"temperature":1,"temperature":2}"#, "malformed", "record value is not a valid reading: duplicate field `temperature` at line 1 column 30"),
        (None, br#"{"sensor_id":"","temperature":1}"#, "empty_sensor_id", "sensor id is empty"),
        (Some(b""), br#"{"temperature":1}"#, "empty_sensor_id", "sensor id is empty"),
        (None, long_id_json.as_bytes(), "sensor_id_too_long", "sensor id is 129 bytes long, over the limit of 128 bytes"),
        (None, br#"{"sensor_id":7,"temperature":1}"#, "wrong_type", "field `sensor_id` must be a string, found a number 7"),
        (Some(b"\xfe\xff"), br#"{"temperature":1}"#, "key_not_utf8", "record key is not valid UTF-8 and the value has no `sensor_id`"),
        (Some(b"a"), br#"{"sensor_id":"b","temperature":1}"#, "key_mismatch", "field `sensor_id` is \"b\" but the record key is \"a\""),
        (None, br#"{"temperature":1,"seq":-1}"#, "wrong_type", "field `seq` must be an unsigned integer, found a number -1"),
        (None, br#"{"temperature":1,"seq":1.5}"#, "wrong_type", "field `seq` must be an unsigned integer, found a number 1.5"),
        (None, br#"{"temperature":1,"seq":"7"}"#, "wrong_type", "field `seq` must be an unsigned integer, found a string \"7\""),
        (None, br#"{"temperature":1,"timestamp":"yesterday"}"#, "bad_timestamp", "field `timestamp` is not an RFC 3339 date-time: \"yesterday\""),
        (None, br#"{"temperature":1,"timestamp":1700000000}"#, "wrong_type", "field `timestamp` must be an RFC 3339 string, found a number 1700000000"),
    ];
    for (key, value, kind, message) in cases {
        let err = decode(key, value).expect_err(&String::from_utf8_lossy(value));
        assert_eq!(
            (err.kind(), err.to_string().as_str()),
            (kind, message),
            "for {:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn null_value_and_missing_kafka_timestamp() {
    let options = DecodeOptions::default();
    let record = RawRecord {
        key: None,
        payload: None,
        timestamp_ms: None,
        offset: 0,
    };
    assert_eq!(Reading::decode(&record, &options), Err(DecodeError::Empty));
    let record = RawRecord {
        payload: Some(br#"{"temperature":1}"#),
        ..record
    };
    assert_eq!(
        Reading::decode(&record, &options),
        Err(DecodeError::NoTimestamp)
    );
}

/// The hot path's timestamp shortcut accepts only what the full RFC 3339 parser accepts, and
/// everything of its shape that the parser accepts (so no valid reading takes the slow path
/// needlessly, and no invalid one gets through).
mod canonical_timestamps {
    use super::*;
    use proptest::prelude::*;

    fn full_parser_accepts(text: &str) -> bool {
        OffsetDateTime::parse(text, &Rfc3339).is_ok()
    }

    #[test]
    fn edge_dates() {
        for (text, valid) in [
            ("2024-02-29T23:59:59.999Z", true),
            ("2023-02-29T00:00:00.000Z", false),
            ("2000-02-29T00:00:00.000Z", true),
            ("1900-02-29T00:00:00.000Z", false),
            ("2026-04-31T00:00:00.000Z", false),
            ("2026-12-31T24:00:00.000Z", false),
            ("2026-00-10T00:00:00.000Z", false),
        ] {
            assert_eq!(is_canonical_utc(text), valid, "{text}");
            assert_eq!(full_parser_accepts(text), valid, "{text}");
        }
        // Valid, but not the canonical shape: left to the full parser.
        assert!(!is_canonical_utc("2026-11-22T01:02:03Z"));
        assert!(!is_canonical_utc("2026-11-22T01:02:03.456+00:00"));
        assert!(!is_canonical_utc("2026-11-22T01:02:03.456z"));
        assert!(!is_canonical_utc("2026-11-22 01:02:03.456Z"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn agrees_with_the_full_parser(
            year in 0u32..10000, month in 0u32..14, day in 0u32..33,
            hour in 0u32..26, minute in 0u32..62, second in 0u32..62, millis in 0u32..1000,
        ) {
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"
            );
            if is_canonical_utc(&text) {
                prop_assert!(full_parser_accepts(&text), "{}", text);
            } else if second < 60 {
                prop_assert!(!full_parser_accepts(&text), "{}", text);
            }
        }
    }
}

#[test]
fn strings_are_borrowed_from_the_record_unless_escaped() {
    let value = br#"{"sensor_id":"sensor-1","seq":1,"temperature":20.5,"timestamp":"2026-11-22T01:02:03.456Z"}"#;
    let options = DecodeOptions::default();
    let record = RawRecord {
        key: Some(b"sensor-1"),
        payload: Some(value),
        timestamp_ms: Some(0),
        offset: 0,
    };
    let r = Reading::decode(&record, &options).unwrap();
    assert!(matches!(r.sensor_id, Cow::Borrowed("sensor-1")));
    assert!(matches!(
        r.timestamp,
        Cow::Borrowed("2026-11-22T01:02:03.456Z")
    ));

    let escaped = br#"{"sensor_id":"sensor\u002d1","temperature":20.5,"timestamp":"2026-11-22T01:02:03.456Z"}"#;
    let record = RawRecord {
        payload: Some(escaped),
        ..record
    };
    let r = Reading::decode(&record, &options).unwrap();
    assert!(matches!(r.sensor_id, Cow::Owned(ref id) if id == "sensor-1"));
    // Keyless record without a sensor_id: the configured default.
    let record = RawRecord {
        key: None,
        payload: Some(br#"{"temperature":1,"timestamp":"2026-11-22T01:02:03+01:00"}"#),
        ..record
    };
    let r = Reading::decode(&record, &options).unwrap();
    assert_eq!(r.sensor_id, "default");
    assert_eq!(r.timestamp, "2026-11-22T00:02:03Z");
}

/// The one-pass scanner answers only where serde_json agrees with it, field for field.
mod flat_scanner {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "sensor_id",
            "seq",
            "temperature",
            "timestamp",
            "other",
            "se\\u0071",
            "Seq",
            "",
        ])
        .prop_map(|k| format!("\"{k}\""))
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "\"sensor-1\"",
                "\"a\\\"b\"",
                "\"\\u00e9\"",
                "\"\"",
                "\"2026-11-22T01:02:03.456Z\"",
                "0",
                "-0",
                "01",
                "1.",
                ".5",
                "1.5e3",
                "1E+2",
                "-",
                "1e",
                "2.5e-3",
                "123456789012345678901234",
                "true",
                "false",
                "null",
                "nul",
                "tru",
                "{}",
                "{\"a\":1}",
                "[1,2]",
                "[]",
                "\"\t\"",
            ])
            .prop_map(str::to_owned),
            any::<f64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            "\"[ -~é]{0,12}\"",
        ]
    }

    fn ws() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "", " ", "\n", "\t ", "\r\n"]).prop_map(str::to_owned)
    }

    fn object() -> impl Strategy<Value = String> {
        (
            prop::collection::vec((ws(), key(), ws(), ws(), value(), ws()), 0..7),
            ws(),
            ws(),
            prop::sample::select(vec!["", "", "", ",", "x", "}"]),
        )
            .prop_map(|(fields, lead, trail, junk)| {
                let body: Vec<String> = fields
                    .into_iter()
                    .map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"))
                    .collect();
                format!("{lead}{{{}}}{trail}{junk}", body.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn agrees_with_serde_json(text in object()) {
            if let Some(fields) = Fields::scan(&text) {
                prop_assert_eq!(Fields::parse(&text), Ok(fields), "{}", text);
            }
        }
    }

    #[test]
    fn takes_the_simulator_s_records_and_leaves_the_rest() {
        let record = r#"{"sensor_id":"sensor-0007","seq":1234,"temperature":41.27,"timestamp":"2026-11-22T01:02:03.456Z"}"#;
        let fields = Fields::scan(record).expect("the simulator's records take the shortcut");
        assert_eq!(fields.temperature, Some("41.27"));
        assert_eq!(fields.sensor_id, Some("\"sensor-0007\""));
        for other in [
            r#"{"temperature":1,"temperature":2}"#,
            r#"{"temperature":1,"extra":{"a":1}}"#,
            r#"{"sensor_id":"a\"b","temperature":1}"#,
            r#"{"temperature":1} x"#,
            r#"{"temperature":01}"#,
        ] {
            assert_eq!(Fields::scan(other), None, "{other}");
        }
    }
}
