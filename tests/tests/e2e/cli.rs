//! The binaries' command lines: bad configuration exits 2 naming the key, --help says it all.

use std::process::Command;

use e2e_tests::service::binary;

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(binary(name))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("PIPELINE_CONFIG")
        .output()
        .expect("run binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout),
    )
}

/// (binary, flags, environment, the key the error must name)
type Case = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_configuration_exits_2_and_names_the_key() {
    let cases: [Case; 10] = [
        (
            "processor",
            &["--window-size", "0"],
            &[],
            "processor.window_size",
        ),
        (
            "processor",
            &[],
            &[("PIPELINE__PROCESSOR__THRESHOLD", "hot")],
            "processor.threshold",
        ),
        (
            "processor",
            &[],
            &[("PIPELINE__PROCESSOR__TRESHOLD", "41")],
            "treshold",
        ),
        (
            "processor",
            &["--config", "/no/such/file.toml"],
            &[],
            "/no/such/file.toml",
        ),
        (
            "sensor-simulator",
            &["--sensors", "0"],
            &[],
            "simulator.sensors",
        ),
        (
            "sensor-simulator",
            &[],
            &[("PIPELINE__KAFKA__BROKERS", "")],
            "kafka.brokers",
        ),
        (
            "pg-sink",
            &["--batch-max-records", "0"],
            &[],
            "pg_sink.batch_max_records",
        ),
        (
            "pg-sink",
            &[],
            &[(
                "PIPELINE__PG_SINK__DATABASE_URL",
                "postgres://u:p@h:port/db",
            )],
            "pg_sink.database_url",
        ),
        (
            "dashboard",
            &["--http-address", "8080"],
            &[],
            "dashboard.http_address",
        ),
        // A section no service knows (a misspelt [pg_sink]) is named, not ignored.
        (
            "dashboard",
            &[],
            &[("PIPELINE__PGSINK__GROUP_ID", "x")],
            "unknown section `pgsink`",
        ),
    ];
    for (name, args, env, key) in cases {
        let (code, output) = run(name, args, env);
        assert_eq!(code, 2, "{name} {args:?} {env:?}: {output}");
        assert!(
            output.contains(key),
            "{name} {args:?} {env:?} must name {key}: {output}"
        );
    }
    // Unknown flags are clap's business, and the same exit code.
    assert_eq!(run("processor", &["--windowsize", "3"], &[]).0, 2);
}

#[test]
fn help_documents_every_option() {
    let (code, help) = run("processor", &["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--brokers",
        "--group-id",
        "--input-topic",
        "--output-topic",
        "--dlq-topic",
        "--window-size",
        "--threshold",
        "--default-sensor-id",
        "--max-record-bytes",
        "--batch-max-records",
        "--commit-interval-ms",
        "PIPELINE__",
    ] {
        assert!(help.contains(flag), "processor --help lacks {flag}");
    }
    let (code, help) = run("sensor-simulator", &["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--brokers",
        "--topic",
        "--sensors",
        "--rate",
        "--count",
        "--seed",
        "--profile",
        "--progress-interval",
        "PIPELINE__",
    ] {
        assert!(help.contains(flag), "sensor-simulator --help lacks {flag}");
    }
}

/// Logs written to a pipe or a file carry no terminal colour codes (they did: `sensor-audit`
/// output piped to a file was full of escape sequences).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    // No broker there: the audit logs librdkafka's connection warnings, then gives up.
    let (code, output) = run(
        "sensor-audit",
        &["--brokers", "127.0.0.1:1"],
        &[("RUST_LOG", "info")],
    );
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("WARN"), "no log line to check:\n{output}");
    assert!(
        !output.contains('\u{1b}'),
        "escape codes in piped logs:\n{output}"
    );
}
