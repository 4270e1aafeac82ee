//! deploy/kubernetes renders with kustomize, every object validates offline against the
//! Kubernetes schemas (strict: unknown fields are errors), and the manifests agree with the
//! services: probe paths and ports, the settings they pass, the shutdown deadline.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use e2e_tests::repo_root;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// A validator installed by scripts/tools.sh (which scripts/test.sh and .ci/run call), found on
/// PATH or in its cache directory. Missing is a failure, never a skip.
fn tool(name: &str) -> PathBuf {
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|home| std::env::var_os("XDG_CACHE_HOME").map_or(home.join(".cache"), PathBuf::from))
        .map(|cache| cache.join("sensor-pipeline/bin").join(name));
    if let Some(path) = cached.filter(|p| p.exists()) {
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| panic!("{name} is not installed: run scripts/tools.sh"))
}

/// `kustomize build deploy/kubernetes`.
fn rendered() -> String {
    let output = Command::new(tool("kustomize"))
        .args(["build", "deploy/kubernetes"])
        .current_dir(repo_root())
        .output()
        .expect("kustomize runs");
    assert!(
        output.status.success(),
        "kustomize build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 manifests")
}

fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn int(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value:?} is not an integer"))
}

/// The container exposes the port of `http_address` (the service's setting) and probes
/// `/readyz` and `/healthz` on it. Returns the port.
fn assert_probes(container: &Value, http_address: &str) -> u64 {
    let port: u64 = http_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert_eq!(int(&container["ports"][0]["containerPort"]), port);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    port
}

/// The environment a container of `deployment` gets from the settings ConfigMap and its own
/// `env` literals (valueFrom entries as `from-field`).
fn environment(objects: &[Value], deployment: &Value) -> Vec<(String, String)> {
    let container = container(deployment);
    let mut env = Vec::new();
    for source in container["envFrom"].as_sequence().expect("envFrom") {
        let name = source["configMapRef"]["name"]
            .as_str()
            .expect("a ConfigMap");
        let map = find(objects, "ConfigMap", name);
        for (key, value) in map["data"].as_mapping().expect("data") {
            env.push((
                key.as_str().expect("key").to_owned(),
                value.as_str().expect("value").to_owned(),
            ));
        }
    }
    for var in container["env"].as_sequence().into_iter().flatten() {
        let value = var["value"].as_str().unwrap_or("from-field").to_owned();
        env.push((var["name"].as_str().expect("name").to_owned(), value));
    }
    env
}

#[test]
fn manifests_render_and_validate_against_the_kubernetes_schemas() {
    let yaml = rendered();
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(yaml.as_bytes()).expect("write");
    let output = Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--no-warn"])
        .arg(file.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("kubernetes-validate runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "kubernetes-validate:\n{report}");
    let kinds: Vec<String> = objects(&yaml)
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        report.matches(" passed for resource ").count(),
        kinds.len(),
        "every object is checked against a schema: {kinds:?}\n{report}"
    );
    for expected in [
        "Namespace/sensor-pipeline",
        "Deployment/processor",
        "Deployment/simulator",
        "PodDisruptionBudget/processor",
        "Service/processor-metrics",
        "Deployment/log-gateway",
        "Service/log-gateway",
        "Deployment/ip-counter",
        "PodDisruptionBudget/ip-counter",
        "Deployment/log-simulator",
        "Deployment/pg-sink",
        "Deployment/dashboard",
        "Service/dashboard",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} in {kinds:?}"
        );
    }
}

#[test]
fn the_validator_rejects_an_unknown_field() {
    // The check above would be worthless if the validator let typos through.
    let yaml = rendered().replacen("periodSeconds:", "periodSecond:", 1);
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(yaml.as_bytes()).expect("write");
    let output = Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--quiet", "--no-warn"])
        .arg(file.path())
        .output()
        .expect("kubernetes-validate runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("'periodSecond' was unexpected")
            || String::from_utf8_lossy(&output.stderr).contains("'periodSecond' was unexpected")
    );
}

#[test]
fn the_processor_deployment_matches_the_service() {
    let objects = objects(&rendered());
    let deployment = find(&objects, "Deployment", "processor");
    let container = container(deployment);
    assert_eq!(container["command"][0], "processor");

    // The settings the pod gets load and validate, over the image's config file.
    let env = environment(&objects, deployment);
    let overrides = pipeline_runtime::settings::Overrides::default();
    let config: processor::settings::Config = pipeline_runtime::settings::load_with_env(
        Some(&repo_root().join("config/docker.toml")),
        overrides,
        env.clone(),
    )
    .unwrap_or_else(|e| panic!("the manifest's settings: {e}"));
    config.validate().expect("valid settings");
    assert_eq!(config.processor.instance_id.as_deref(), Some("from-field"));
    let brokers = env
        .iter()
        .find(|(k, _)| k == "PIPELINE__KAFKA__BROKERS")
        .map(|(_, v)| v.clone());
    assert_eq!(Some(config.kafka.brokers.clone()), brokers);

    // Probes on the endpoints, on the port the service listens on.
    let port = assert_probes(container, &config.processor.http_address);
    let template = &deployment["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["prometheus.io/port"],
        port.to_string().as_str()
    );

    // The grace period covers the worst shutdown: the last transaction, then the producer's
    // flush (10 s).
    let grace = int(&template["spec"]["terminationGracePeriodSeconds"]);
    let worst = (config.processor.transaction_timeout_ms.as_millis() as u64).div_ceil(1000) + 10;
    assert!(
        grace > worst,
        "terminationGracePeriodSeconds {grace} <= {worst}"
    );

    // Requests and a memory limit are set; selectors match the pod labels.
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let pdb = find(&objects, "PodDisruptionBudget", "processor");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        template["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .map(|name| {
                let mut m = serde_yaml_ng::Mapping::new();
                m.insert("app.kubernetes.io/name".into(), name.into());
                Value::Mapping(m)
            })
            .expect("label")
    );
}

#[test]
fn the_simulator_deployment_matches_the_service() {
    let objects = objects(&rendered());
    let deployment = find(&objects, "Deployment", "simulator");
    let container = container(deployment);
    assert_eq!(container["command"][0], "sensor-simulator");
    let config: sensor_simulator::settings::Config = pipeline_runtime::settings::load_with_env(
        Some(&repo_root().join("config/docker.toml")),
        pipeline_runtime::settings::Overrides::default(),
        environment(&objects, deployment),
    )
    .unwrap_or_else(|e| panic!("the manifest's settings: {e}"));
    config.validate().expect("valid settings");
    assert_probes(container, &config.simulator.http_address);
}

/// The environment of `deployment` with the database URL, which comes from a Secret the user
/// creates, set to a valid one (after checking that the manifest takes it from that Secret).
fn environment_with_database(
    objects: &[Value],
    deployment: &Value,
    var: &str,
) -> Vec<(String, String)> {
    let container = container(deployment);
    let from_secret = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|v| v["name"] == var)
        .unwrap_or_else(|| panic!("{var} is set"));
    assert_eq!(
        from_secret["valueFrom"]["secretKeyRef"]["name"],
        "postgres-credentials"
    );
    environment(objects, deployment)
        .into_iter()
        .map(|(k, v)| {
            if k == var {
                (
                    k,
                    "postgres://pipeline:secret@db.example:5432/pipeline".to_owned(),
                )
            } else {
                (k, v)
            }
        })
        .collect()
}

fn grace(deployment: &Value) -> u64 {
    int(&deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
}

#[test]
fn the_log_pipeline_deployments_match_the_services() {
    let objects = objects(&rendered());
    let docker_toml = repo_root().join("config/docker.toml");

    let gateway = find(&objects, "Deployment", "log-gateway");
    assert_eq!(container(gateway)["command"][0], "log-gateway");
    let config: log_gateway::settings::Config = pipeline_runtime::settings::load_with_env(
        Some(&docker_toml),
        pipeline_runtime::settings::Overrides::default(),
        environment(&objects, gateway),
    )
    .unwrap_or_else(|e| panic!("the gateway's settings: {e}"));
    config.validate().expect("valid settings");
    assert_probes(container(gateway), &config.gateway.http_address);
    let listen_port: u64 = config
        .gateway
        .listen_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert_eq!(
        int(&container(gateway)["ports"][1]["containerPort"]),
        listen_port
    );
    let service = find(&objects, "Service", "log-gateway");
    assert_eq!(int(&service["spec"]["ports"][0]["port"]), listen_port);
    assert!(grace(gateway) > config.gateway.shutdown_grace_secs.as_secs());

    let counter = find(&objects, "Deployment", "ip-counter");
    assert_eq!(container(counter)["command"][0], "ip-counter");
    let config: ip_count::service::Config = pipeline_runtime::settings::load_with_env(
        Some(&docker_toml),
        pipeline_runtime::settings::Overrides::default(),
        environment(&objects, counter),
    )
    .unwrap_or_else(|e| panic!("ip-counter's settings: {e}"));
    assert_eq!(config.ip_count.instance_id.as_deref(), Some("from-field"));
    assert_probes(container(counter), &config.ip_count.http_address);

    // The simulator sends to the gateway's Service.
    let simulator = find(&objects, "Deployment", "log-simulator");
    let command: Vec<&str> = container(simulator)["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        command[..3],
        ["log-simulator", "--gateway", "log-gateway:5140"]
    );
}

#[test]
fn the_results_deployments_match_the_services() {
    let objects = objects(&rendered());
    let docker_toml = repo_root().join("config/docker.toml");

    let sink = find(&objects, "Deployment", "pg-sink");
    assert_eq!(container(sink)["command"][0], "pg-sink");
    let config: pg_sink::Config = pipeline_runtime::settings::load_with_env(
        Some(&docker_toml),
        pipeline_runtime::settings::Overrides::default(),
        environment_with_database(&objects, sink, "PIPELINE__PG_SINK__DATABASE_URL"),
    )
    .unwrap_or_else(|e| panic!("pg-sink's settings: {e}"));
    config.validate().expect("valid settings");
    assert_eq!(
        config.pg_sink.database_url.expose(),
        "postgres://pipeline:secret@db.example:5432/pipeline",
        "the Secret's URL wins over the image's file"
    );
    assert_probes(container(sink), &config.pg_sink.http_address);
    assert!(grace(sink) > config.pg_sink.shutdown_grace_secs.as_secs());

    let dashboard = find(&objects, "Deployment", "dashboard");
    assert_eq!(container(dashboard)["command"][0], "dashboard");
    let config: dashboard::Config = pipeline_runtime::settings::load_with_env(
        Some(&docker_toml),
        pipeline_runtime::settings::Overrides::default(),
        environment_with_database(&objects, dashboard, "PIPELINE__DASHBOARD__DATABASE_URL"),
    )
    .unwrap_or_else(|e| panic!("the dashboard's settings: {e}"));
    config.validate().expect("valid settings");
    let port = assert_probes(container(dashboard), &config.dashboard.http_address);
    let service = find(&objects, "Service", "dashboard");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        dashboard["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
        port.to_string().as_str()
    );
}
