//! Real PostgreSQL servers, run by `scripts/postgres.sh` (Debian's `postgresql`).

use std::process::Command;

use crate::repo_root;

/// The server `scripts/test.sh` started, from `POSTGRES_URL`. Tests that need PostgreSQL fail
/// here, loudly, when there is none.
pub fn shared_url() -> String {
    match std::env::var("POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "POSTGRES_URL is not set: these tests need a real PostgreSQL server. Run them with \
             scripts/test.sh, which starts one, or start one with `scripts/postgres.sh start` \
             and export POSTGRES_URL=<the URL it prints>"
        ),
    }
}

/// A database of the test's own on the shared server (created now, empty), as a URL.
pub fn fresh_database(name: &str) -> String {
    let server = shared_url();
    let mut client = postgres::Client::connect(&server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let (base, _) = server.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

/// A connection to `url`.
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A server of the test's own in a temporary directory (to stop and start it), stopped when
/// dropped.
pub struct PrivateServer {
    dir: tempfile::TempDir,
    url: String,
}

impl PrivateServer {
    /// Initializes and starts a server on a free port.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("private-postgres")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        let url = run(dir.path(), "start");
        Self { dir, url }
    }

    /// Its URL (the `pipeline` database).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops it (fast shutdown: connections are closed).
    pub fn stop(&self) {
        run(self.dir.path(), "stop");
    }

    /// Starts it again, on the same port, with its data.
    pub fn restart(&self) {
        let port = self
            .url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next());
        let output = Command::new(repo_root().join("scripts/postgres.sh"))
            .args(["start", "--dir"])
            .arg(self.dir.path())
            .args(["--port", port.expect("port in URL")])
            .output()
            .expect("running scripts/postgres.sh");
        assert!(
            output.status.success(),
            "scripts/postgres.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        run(self.dir.path(), "stop");
    }
}

fn run(dir: &std::path::Path, command: &str) -> String {
    let output = Command::new(repo_root().join("scripts/postgres.sh"))
        .arg(command)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("running scripts/postgres.sh");
    assert!(
        output.status.success(),
        "scripts/postgres.sh {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
