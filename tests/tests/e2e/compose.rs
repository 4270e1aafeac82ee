//! docker-compose.yml is valid and runs the topology the native tests run: the same Kafka
//! version, the same topic script and partition count, the same config profile, and a
//! processor that can be scaled.

use std::collections::BTreeMap;
use std::process::Command;

use e2e_tests::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of each service in `services:`, by name (two-space indented keys).
fn services(compose: &str) -> BTreeMap<String, String> {
    let mut services = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_services = false;
    for line in compose.lines() {
        if line == "services:" {
            in_services = true;
            continue;
        }
        // Another top-level key (volumes:) ends the services.
        if in_services && !line.is_empty() && !line.starts_with(' ') && !line.starts_with('#') {
            break;
        }
        if !in_services || line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("  ")
            .and_then(|l| l.strip_suffix(':'))
            .filter(|n| !n.starts_with(' '))
        {
            current = Some(name.to_owned());
            services.insert(name.to_owned(), String::new());
        } else if let Some(service) = current.as_ref().and_then(|name| services.get_mut(name)) {
            service.push_str(line);
            service.push('\n');
        }
    }
    services
}

#[test]
fn docker_compose_validates_offline() {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(repo_root())
        .output()
        .expect(
            "docker-compose must be installed (Debian package docker-compose; .ci/run installs it)",
        );
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The cluster variant merges onto the stack: three nodes with replication 3 and
/// `min.insync.replicas` 2, and every service that talks to Kafka bootstraps from all three.
#[test]
fn the_cluster_variant_has_three_brokers_and_every_client_knows_them() {
    let output = Command::new("docker-compose")
        .args([
            "-f",
            "docker-compose.yml",
            "-f",
            "docker-compose.cluster.yml",
            "config",
        ])
        .current_dir(repo_root())
        .output()
        .expect("docker-compose must be installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let merged: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&output.stdout).unwrap();
    let services = &merged["services"];
    let env = |service: &str, key: &str| -> String {
        match &services[service]["environment"][key] {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            other => panic!("{service}: {key} is {other:?}"),
        }
    };
    let voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093";
    for (node, id) in [("kafka", "1"), ("kafka-2", "2"), ("kafka-3", "3")] {
        assert_eq!(env(node, "KAFKA_NODE_ID"), id);
        assert_eq!(env(node, "KAFKA_CONTROLLER_QUORUM_VOTERS"), voters);
        assert_eq!(env(node, "KAFKA_DEFAULT_REPLICATION_FACTOR"), "3");
        assert_eq!(env(node, "KAFKA_MIN_INSYNC_REPLICAS"), "2");
        assert_eq!(
            env(node, "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"),
            "3"
        );
        assert_eq!(env(node, "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"), "false");
    }
    for service in [
        "simulator",
        "processor",
        "log-gateway",
        "ip-counter",
        "pg-sink",
    ] {
        assert_eq!(
            env(service, "PIPELINE__KAFKA__BROKERS"),
            "kafka:9092,kafka-2:9092,kafka-3:9092",
            "{service}"
        );
        // The base file's settings are kept.
        assert_eq!(env(service, "PIPELINE_CONFIG"), "/app/config/docker.toml");
    }
}

#[test]
fn compose_runs_what_the_native_tests_run() {
    let compose = read("docker-compose.yml");
    let services = services(&compose);
    assert_eq!(
        services.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "dashboard",
            "grafana",
            "ip-counter",
            "kafka",
            "log-gateway",
            "log-simulator",
            "pg-sink",
            "postgres",
            "processor",
            "prometheus",
            "simulator",
            "topics"
        ]
    );
    // PostgreSQL: a pinned major, a volume, a healthcheck the sink and the dashboard wait for.
    let postgres = &services["postgres"];
    assert!(postgres.contains("image: postgres:15-bookworm"));
    assert!(postgres.contains("postgres-data:/var/lib/postgresql/data"));
    assert!(
        postgres.contains(r#"test: ["CMD", "pg_isready", "-U", "pipeline", "-d", "pipeline"]"#)
    );
    for name in ["pg-sink", "dashboard"] {
        assert!(services[name].contains("<<: *pipeline-image"));
        assert!(
            services[name].contains("postgres:\n        condition: service_healthy"),
            "{name} waits for a healthy PostgreSQL"
        );
    }
    assert!(services["dashboard"].contains(r#"- "8080:8080""#));
    assert!(
        read("config/docker.toml")
            .contains(r#"database_url = "postgres://pipeline:pipeline@postgres:5432/pipeline""#)
    );
    for name in ["grafana", "prometheus"] {
        assert!(
            services[name].contains(r#"profiles: ["observability"]"#),
            "{name} only with --profile observability"
        );
    }
    assert!(
        services["prometheus"]
            .contains("./observability/prometheus.yml:/etc/prometheus/prometheus.yml:ro")
    );
    assert!(
        services["grafana"]
            .contains("./observability/grafana/dashboards:/var/lib/grafana/dashboards:ro")
    );

    let kafka_version = read("scripts/kafka.sh")
        .lines()
        .find_map(|l| l.strip_prefix("KAFKA_VERSION="))
        .expect("KAFKA_VERSION in scripts/kafka.sh")
        .to_owned();
    for name in ["kafka", "topics"] {
        assert!(
            services[name].contains(&format!("image: apache/kafka:{kafka_version}")),
            "{name} must use apache/kafka:{kafka_version}, the version the tests run"
        );
    }
    assert!(services["kafka"].contains("healthcheck:"));

    let topics = &services["topics"];
    assert!(topics.contains("./scripts/create-topics.sh:/create-topics.sh:ro"));
    assert!(topics.contains("/bin/bash /create-topics.sh kafka:9092 || exit 1;"));
    assert!(
        topics.contains("PARTITIONS: 6"),
        "compose and the tests both use 6 partitions"
    );
    assert!(topics.contains("condition: service_healthy"));

    // Both services use the docker profile the tests start the binaries with.
    assert!(compose.contains("PIPELINE_CONFIG: /app/config/docker.toml"));
    assert!(read("Dockerfile").contains("COPY config /app/config"));
    assert!(read("config/docker.toml").contains(r#"brokers = "kafka:9092""#));
    for name in ["processor", "simulator"] {
        assert!(
            services[name].contains("<<: *pipeline-image"),
            "{name} runs the project's image"
        );
    }
    // Built once: a second `build:` under the same image name is how --scale came to recreate
    // containers (tests/tests/compose_stack.rs checks both run the tagged image).
    assert_eq!(compose.matches("build: .").count(), 1);
    assert!(services["processor"].contains("build: ."));

    // Scaling: no fixed name or host port on the processor.
    let processor = &services["processor"];
    assert!(
        !processor.contains("container_name"),
        "--scale needs no container_name"
    );
    assert!(!processor.contains("ports:"), "--scale needs no host ports");
    assert!(processor.contains(r#"command: ["processor"]"#));
    assert!(services["simulator"].contains(r#"command: ["sensor-simulator"]"#));
    // Healthchecks use the services' own /healthz, on the ports the image defaults to.
    assert!(
        processor.contains(r#"test: ["CMD", "curl", "-fsS", "http://localhost:9100/healthz"]"#)
    );
    assert!(
        services["simulator"]
            .contains(r#"test: ["CMD", "curl", "-fsS", "http://localhost:9101/healthz"]"#)
    );
    assert!(read("config/default.toml").contains(r#"http_address = "0.0.0.0:9100""#));
    assert!(read("config/default.toml").contains(r#"http_address = "0.0.0.0:9101""#));
}

#[test]
fn the_image_runs_as_a_non_root_user_from_a_slim_runtime() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("AS build"), "multi-stage");
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains("USER 10001"));
    for binary in [
        "processor",
        "sensor-audit",
        "sensor-simulator",
        "log-gateway",
        "log-simulator",
        "ip-counter",
        "ip-audit",
        "pg-sink",
        "dashboard",
    ] {
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "the image ships {binary}"
        );
    }
}

/// Every metric a dashboard query names is one the services export, and the dashboard covers
/// what an operator asks: throughput, alerts, averages, lag, latency, dead letters.
#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("observability/grafana/dashboards/pipeline.json"))
            .expect("the dashboard is JSON");
    let exported: Vec<&str> = vec![
        processor::metrics::READINGS_CONSUMED,
        processor::metrics::EVENTS_PRODUCED,
        processor::metrics::DEAD_LETTERS,
        processor::metrics::CONSUMER_LAG,
        processor::metrics::ASSIGNED_PARTITIONS,
        processor::metrics::SENSORS_IN_MEMORY,
        processor::metrics::REBALANCES,
        processor::metrics::BATCHES,
        processor::metrics::COMMIT_SECONDS,
        processor::metrics::PROCESSING_SECONDS,
        processor::metrics::END_TO_END_SECONDS,
        processor::metrics::RESTORE_SECONDS,
        sensor_simulator::publisher::READINGS_SENT,
        sensor_simulator::publisher::SEND_ERRORS,
        sensor_simulator::publisher::SEND_RATE,
    ];
    let mut used = std::collections::BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !token.starts_with("sensor_") {
                    continue;
                }
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .fold(token, |t, s| t.strip_suffix(s).unwrap_or(t));
                assert!(
                    exported.contains(&base),
                    "panel {:?} queries {token}, which nothing exports",
                    panel["title"]
                );
                used.insert(base.to_owned());
            }
        }
    }
    for needed in [
        processor::metrics::READINGS_CONSUMED,
        processor::metrics::EVENTS_PRODUCED,
        processor::metrics::CONSUMER_LAG,
        processor::metrics::END_TO_END_SECONDS,
        processor::metrics::DEAD_LETTERS,
    ] {
        assert!(used.contains(needed), "the dashboard shows no {needed}");
    }
    let provisioning = read("observability/grafana/provisioning/dashboards/dashboards.yml");
    assert!(provisioning.contains("path: /var/lib/grafana/dashboards"));
    assert!(
        read("observability/grafana/provisioning/datasources/prometheus.yml")
            .contains("url: http://prometheus:9090")
    );
}
