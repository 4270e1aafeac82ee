//! Secured clusters, on a real broker with SASL_SSL, SSL (client certificates) and
//! SASL_PLAINTEXT listeners (`scripts/kafka.sh start --secure`): the pipeline and the audit over
//! SASL_SSL with SCRAM, every protocol and mechanism, clear errors for wrong credentials, an
//! untrusted certificate and a name mismatch, and the password in no log line, endpoint body or
//! `--help`. The test harness itself creates and reads topics over the plaintext listener.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::broker::{PrivateBroker, free_port};
use e2e_tests::expect::{actual_events, assert_same_events, expected_events};
use e2e_tests::kafka_io::{read_topic, wait_for_group, wait_until_consumed};
use e2e_tests::service::{Service, binary, http_get, simulator_args};
use e2e_tests::topics::PipelineTopics;
use sensor_contract::ProcessingRules;

/// A settings file for clients of the secured broker.
fn settings_file(dir: &Path, name: &str, kafka: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("{kafka}\n[telemetry]\nlog_format = \"json\"\n"),
    )
    .expect("settings file");
    path
}

fn sasl_ssl(secure: &HashMap<String, String>, mechanism: &str, password_line: &str) -> String {
    format!(
        "[kafka]\nbrokers = \"{}\"\nsecurity_protocol = \"sasl_ssl\"\n\
         [kafka.sasl]\nmechanism = \"{mechanism}\"\nusername = \"pipeline\"\n{password_line}\n\
         [kafka.tls]\nca_file = \"{}\"\n",
        secure["SASL_SSL_BOOTSTRAP"], secure["CA_FILE"]
    )
}

fn password_file_line(secure: &HashMap<String, String>) -> String {
    format!("password_file = \"{}\"", secure["SASL_PASSWORD_FILE"])
}

/// Runs a binary to its end with a settings file; (exit code, stdout and stderr).
fn run(name: &str, args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(binary(name))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the binary");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            let output = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return (output.status.code(), text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    (None, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn the_pipeline_and_the_audit_run_over_sasl_ssl_and_the_password_shows_nowhere() {
    let broker = PrivateBroker::new(free_port());
    broker.start_secure();
    let plaintext = broker.bootstrap();
    let secure = broker.secure();
    let password = std::fs::read_to_string(&secure["SASL_PASSWORD_FILE"]).expect("password");
    let dir = tempfile::tempdir().expect("temporary directory");
    // One replica reads the password from a file, the other from the environment.
    let with_file = settings_file(
        dir.path(),
        "file",
        &sasl_ssl(&secure, "SCRAM-SHA-512", &password_file_line(&secure)),
    );
    let with_env = settings_file(dir.path(), "env", &sasl_ssl(&secure, "SCRAM-SHA-512", ""));

    let topics = PipelineTopics::unique("secure");
    topics.create(&plaintext, 6);
    let processor_args = |file: &Path| -> Vec<String> {
        let mut args = vec!["--config".to_owned(), file.display().to_string()];
        args.extend(
            topics
                .processor_args(&secure["SASL_SSL_BOOTSTRAP"])
                .into_iter()
                .skip(2), // the brokers are in the file
        );
        args
    };
    let mut replicas = [
        Service::processor(&processor_args(&with_file)),
        Service::processor_with_env(
            &processor_args(&with_env),
            &[("PIPELINE__KAFKA__SASL__PASSWORD", password.as_str())],
        ),
    ];
    wait_for_group(&plaintext, &topics.group, 2, Duration::from_secs(60));

    let mut simulator_flags = vec!["--config".to_owned(), with_file.display().to_string()];
    simulator_flags.extend(
        simulator_args(
            &secure["SASL_SSL_BOOTSTRAP"],
            &topics.input,
            &[
                "--count",
                "3000",
                "--sensors",
                "30",
                "--seed",
                "9",
                "--rate",
                "0",
            ],
        )
        .into_iter()
        .skip(2),
    );
    let mut simulator = Service::simulator(&simulator_flags);
    simulator.wait_success(Duration::from_secs(60));
    wait_until_consumed(
        &plaintext,
        &topics.group,
        &topics.input,
        Duration::from_secs(90),
    );

    let input = read_topic(&plaintext, &topics.input);
    assert_eq!(input.len(), 3000);
    let expected = expected_events(&input, ProcessingRules::default(), &HashMap::new());
    let actual = actual_events(&read_topic(&plaintext, &topics.output));
    let comparison = assert_same_events(&expected, &actual);

    // The audit, over SASL_SSL too.
    let with_file_arg = with_file.display().to_string();
    let mut audit_args = vec!["--config", with_file_arg.as_str()];
    let topic_args = topics.processor_args("unused");
    audit_args.extend(topic_args.iter().skip(2).map(String::as_str));
    let (code, audit) = run("sensor-audit", &audit_args, Duration::from_secs(120));
    assert_eq!(code, Some(0), "{audit}");
    assert!(audit.contains("audit OK"), "{audit}");

    // The password is in no log line, no endpoint body, no --help, no audit output.
    let mut seen = vec![audit];
    for service in &replicas {
        let address = service.http_address(Duration::from_secs(10));
        for path in [
            "/metrics",
            "/healthz",
            "/readyz",
            "/",
            "/debug",
            "/../../etc/passwd",
        ] {
            let (status, body) = http_get(&address, path);
            if !["/metrics", "/healthz", "/readyz"].contains(&path) {
                assert_eq!((status, body.as_str()), (404, ""), "{path} is not a route");
            }
            seen.push(body);
        }
    }
    for replica in &mut replicas {
        replica.stop(Duration::from_secs(15));
        seen.push(replica.log());
    }
    seen.push(simulator.log());
    for name in ["processor", "sensor-simulator", "sensor-audit"] {
        seen.push(run(name, &["--help"], Duration::from_secs(10)).1);
    }
    for text in &seen {
        assert!(
            !text.contains(password.trim()),
            "the password leaked:\n{text}"
        );
    }
    println!(
        "secure: 3000 readings over SASL_SSL/SCRAM-SHA-512, {} events as the reference says, audit OK, password in none of {} logs and bodies",
        comparison.actual,
        seen.len()
    );
}

#[test]
fn every_protocol_and_mechanism_connects_and_wrong_settings_fail_clearly() {
    let broker = PrivateBroker::new(free_port());
    broker.start_secure();
    let plaintext = broker.bootstrap();
    let secure = broker.secure();
    let dir = tempfile::tempdir().expect("temporary directory");
    let topics = PipelineTopics::unique("secure-modes");
    topics.create(&plaintext, 1);
    let password = password_file_line(&secure);

    let mtls = format!(
        "[kafka]\nbrokers = \"{}\"\nsecurity_protocol = \"ssl\"\n[kafka.tls]\nca_file = \"{}\"\n\
         certificate_file = \"{}\"\nkey_file = \"{}\"\n",
        secure["SSL_BOOTSTRAP"],
        secure["CA_FILE"],
        secure["CLIENT_CERTIFICATE_FILE"],
        secure["CLIENT_KEY_FILE"]
    );
    let sasl_plaintext = |mechanism: &str| {
        format!(
            "[kafka]\nbrokers = \"{}\"\nsecurity_protocol = \"sasl_plaintext\"\n\
             [kafka.sasl]\nmechanism = \"{mechanism}\"\nusername = \"pipeline\"\n{password}\n",
            secure["SASL_PLAINTEXT_BOOTSTRAP"]
        )
    };
    let working = [
        ("SASL_SSL PLAIN", sasl_ssl(&secure, "PLAIN", &password)),
        (
            "SASL_SSL SCRAM-SHA-256",
            sasl_ssl(&secure, "SCRAM-SHA-256", &password),
        ),
        (
            "SASL_SSL SCRAM-SHA-512",
            sasl_ssl(&secure, "SCRAM-SHA-512", &password),
        ),
        ("SASL_PLAINTEXT PLAIN", sasl_plaintext("PLAIN")),
        (
            "SASL_PLAINTEXT SCRAM-SHA-256",
            sasl_plaintext("SCRAM-SHA-256"),
        ),
        ("SSL with a client certificate", mtls),
    ];
    for (i, (mode, kafka)) in working.iter().enumerate() {
        let file = settings_file(dir.path(), &format!("ok{i}"), kafka);
        let file = file.display().to_string();
        let (code, log) = run(
            "sensor-simulator",
            &[
                "--config",
                &file,
                "--topic",
                &topics.input,
                "--count",
                "10",
                "--http-address",
                "",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(code, Some(0), "{mode}:\n{log}");
    }
    assert_eq!(
        read_topic(&plaintext, &topics.input).len(),
        10 * working.len()
    );

    let wrong_password = dir.path().join("wrong");
    std::fs::write(&wrong_password, "not-the-password").expect("file");
    let failing = [
        (
            "wrong password",
            sasl_ssl(
                &secure,
                "SCRAM-SHA-512",
                &format!("password_file = \"{}\"", wrong_password.display()),
            ),
            "Kafka rejected the credentials",
        ),
        (
            "untrusted certificate",
            sasl_ssl(&secure, "SCRAM-SHA-512", &password)
                .replace(&secure["CA_FILE"], &secure["OTHER_CA_FILE"]),
            "the TLS handshake with Kafka failed",
        ),
        (
            "name mismatch",
            sasl_ssl(&secure, "SCRAM-SHA-512", &password).replace("127.0.0.1", "localhost"),
            "the TLS handshake with Kafka failed",
        ),
    ];
    for (i, (case, kafka, message)) in failing.iter().enumerate() {
        let file = settings_file(dir.path(), &format!("bad{i}"), kafka);
        let file = file.display().to_string();
        let started = Instant::now();
        let (code, log) = run(
            "processor",
            &[
                "--config",
                &file,
                "--input-topic",
                &topics.input,
                "--http-address",
                "",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(code, Some(1), "{case}: not an exit 1 in time\n{log}");
        assert!(log.contains(message), "{case}: no clear message\n{log}");
        assert!(
            !log.contains("not-the-password"),
            "{case}: the password leaked\n{log}"
        );
        println!(
            "{case}: exit 1 after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    // An unreadable CA file is bad configuration: exit 2, naming the setting.
    let kafka = sasl_ssl(&secure, "SCRAM-SHA-512", &password)
        .replace(&secure["CA_FILE"], "/no/such/ca.pem");
    let file = settings_file(dir.path(), "noca", &kafka)
        .display()
        .to_string();
    let (code, log) = run("processor", &["--config", &file], Duration::from_secs(10));
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("configuration key `kafka.tls.ca_file`: cannot read /no/such/ca.pem"),
        "{log}"
    );
}
