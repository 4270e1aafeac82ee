use super::*;

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (
            vec!["--window-size", "0"],
            "configuration key `processor.window_size`: must be between 1 and 100000",
        ),
        (
            vec!["--brokers", ""],
            "configuration key `kafka.brokers`: must list one or more host:port pairs, separated by commas",
        ),
        (
            vec!["--output-topic", "temperature-readings"],
            "configuration key `processor.input_topic`: must differ from processor.output_topic and processor.dlq_topic",
        ),
        (
            vec!["--commit-interval-ms", "0"],
            "configuration key `processor.commit_interval_ms`: must be between 1 and 60000",
        ),
        (
            vec!["--anomalies", "--anomalies-topic", "temperature-events"],
            "configuration key `processor.anomalies.topic`: must be a topic of its own, not the input, output, dead-letter or state topic",
        ),
        (
            vec!["--anomaly-sensitivity", "0"],
            "configuration key `processor.anomalies.sensitivity`: must be > 0, not 0",
        ),
        (
            vec!["--anomalies", "--seasonality", "weekly"],
            "configuration: enum Seasonality does not have variant constructor weekly for key `processor.anomalies.seasonality`",
        ),
        (
            vec!["--onnx-model", "model.onnx"],
            "configuration key `processor.anomalies.onnx_model`: needs processor.anomalies.enabled = true (its events go to the anomalies topic)",
        ),
        (
            vec!["--anomalies", "--onnx-threshold", "NaN"],
            "configuration key `processor.anomalies.onnx_threshold`: must be a finite number",
        ),
    ];
    for (args, message) in cases {
        let cli = Cli::parse_from(std::iter::once("processor").chain(args));
        assert_eq!(cli.load().unwrap_err().to_string(), message);
    }
}

#[test]
fn guarantee_defaults_to_exactly_once_and_parses() {
    assert_eq!(
        Cli::parse_from(["processor"])
            .load()
            .unwrap()
            .processor
            .processing_guarantee,
        Guarantee::ExactlyOnce
    );
    let cli = Cli::parse_from(["processor", "--processing-guarantee", "at_least_once"]);
    assert_eq!(
        cli.load().unwrap().processor.processing_guarantee,
        Guarantee::AtLeastOnce
    );
    let err = Cli::parse_from(["processor", "--processing-guarantee", "maybe"])
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("processor.processing_guarantee"), "{err}");
    let settings = ProcessorSettings::default();
    assert_eq!(settings.state_topic(), "temperature-processor-window-state");
}

#[test]
fn every_flag_reaches_its_key() {
    let cli = Cli::parse_from([
        "processor",
        "--brokers",
        "b:1",
        "--group-id",
        "g",
        "--input-topic",
        "i",
        "--output-topic",
        "o",
        "--dlq-topic",
        "d",
        "--window-size",
        "3",
        "--threshold",
        "1.5",
        "--default-sensor-id",
        "s",
        "--max-record-bytes",
        "99",
        "--batch-max-records",
        "7",
        "--commit-interval-ms",
        "5",
        "--processing-guarantee",
        "at_least_once",
        "--instance-id",
        "r1",
        "--state-topic",
        "st",
        "--transaction-timeout-ms",
        "2000",
        "--http-address",
        "127.0.0.1:0",
    ]);
    let config = cli.load().unwrap();
    let p = config.processor;
    assert_eq!(config.kafka.brokers, "b:1");
    assert_eq!(
        (
            p.group_id.as_str(),
            p.input_topic.as_str(),
            p.output_topic.as_str(),
            p.dlq_topic.as_str()
        ),
        ("g", "i", "o", "d")
    );
    assert_eq!(
        (p.window_size, p.threshold, p.default_sensor_id.as_str()),
        (3, 1.5, "s")
    );
    assert_eq!(
        (
            p.max_record_bytes,
            p.batch_max_records,
            p.commit_interval_ms
        ),
        (99, 7, Duration::from_millis(5))
    );
    assert_eq!(p.processing_guarantee, Guarantee::AtLeastOnce);
    assert_eq!(
        (p.instance_id.as_deref(), p.state_topic.as_deref()),
        (Some("r1"), Some("st"))
    );
    assert_eq!(
        (p.transaction_timeout_ms, p.http_address.as_str()),
        (Duration::from_secs(2), "127.0.0.1:0")
    );
}

#[test]
fn guarded_kafka_properties_are_configuration_errors() {
    let mut config = Config::default();
    config
        .kafka
        .properties
        .insert("enable.auto.commit".into(), "true".into());
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "configuration key `kafka.properties.enable.auto.commit`: cannot be overridden: the \
         service sets enable.auto.commit=false and its delivery guarantee depends on it"
    );
    let mut config = Config::default();
    config
        .kafka
        .properties
        .insert("linger.ms".into(), "50".into());
    assert!(config.validate().is_ok());
}

#[test]
fn negative_thresholds_are_accepted() {
    let cli = Cli::parse_from(["processor", "--threshold", "-5.5"]);
    assert_eq!(cli.load().unwrap().processor.threshold, -5.5);
}

#[test]
fn the_shipped_files_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
    let default = Cli {
        common: CommonArgs {
            config: Some(format!("{dir}/default.toml").into()),
            ..CommonArgs::default()
        },
        ..Cli::default()
    };
    assert_eq!(default.load().unwrap(), Config::default());
    let docker = Cli {
        common: CommonArgs {
            config: Some(format!("{dir}/docker.toml").into()),
            ..CommonArgs::default()
        },
        ..Cli::default()
    };
    let docker = docker.load().unwrap();
    assert_eq!(docker.kafka.brokers, "kafka:9092");
    assert_eq!(docker.processor, ProcessorSettings::default());
}

#[test]
fn anomalies_add_their_topic_to_the_outputs() {
    let off = Cli::parse_from(["processor"]).load().unwrap();
    assert_eq!(off.engine().output_topics, ["temperature-events"]);
    let on = Cli::parse_from([
        "processor",
        "--anomalies",
        "--anomaly-warmup",
        "7",
        "--prediction-every",
        "0",
    ])
    .load()
    .unwrap();
    assert_eq!(
        on.engine().output_topics,
        ["temperature-events", "temperature-anomalies"]
    );
    let a = &on.processor.anomalies;
    assert_eq!((a.enabled, a.warmup, a.prediction_every), (true, 7, 0));
}
