//! Real Apache Kafka brokers, run by `scripts/kafka.sh`.

use std::path::PathBuf;
use std::process::Command;

use crate::repo_root;

/// The broker `scripts/test.sh` started, from `KAFKA_BOOTSTRAP`. Tests that need Kafka fail
/// here, loudly, when there is none: they never pass without a broker.
pub fn shared_bootstrap() -> String {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(bootstrap) if !bootstrap.is_empty() => bootstrap,
        _ => panic!(
            "KAFKA_BOOTSTRAP is not set: these tests need a real Kafka broker. \
             Run them with scripts/test.sh, which starts one, or start one with \
             `scripts/kafka.sh start` and export KAFKA_BOOTSTRAP=<the address it prints>"
        ),
    }
}

/// A broker of the test's own, in a temporary directory, stopped when dropped.
pub struct PrivateBroker {
    dir: tempfile::TempDir,
    host: String,
    port: u16,
}

impl PrivateBroker {
    /// Sets up a broker for `port` without starting it.
    pub fn new(port: u16) -> Self {
        Self::on_host("127.0.0.1", port)
    }

    /// Sets up a broker listening at the local address `host` (one that clients in a network
    /// namespace reach, say: see [`crate::netns`]) without starting it.
    pub fn on_host(host: &str, port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("private-kafka")
            .tempdir()
            .expect("temporary directory for a broker");
        Self {
            dir,
            host: host.to_owned(),
            port,
        }
    }

    /// The address clients use.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Starts (or restarts, keeping its data) the broker and waits until it answers.
    pub fn start(&self) {
        let output = self
            .script("start")
            .output()
            .expect("running scripts/kafka.sh start");
        assert!(
            output.status.success(),
            "scripts/kafka.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the broker with its secured listeners (`scripts/kafka.sh start --secure`): a
    /// throwaway CA and certificates, a SCRAM and PLAIN user. See [`PrivateBroker::secure`].
    pub fn start_secure(&self) {
        let output = self
            .script("start")
            .arg("--secure")
            .output()
            .expect("running scripts/kafka.sh start --secure");
        assert!(
            output.status.success(),
            "scripts/kafka.sh start --secure failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// What `start --secure` made: listener addresses, the user, the password file, the CA and
    /// client certificate files (the keys of `secure.env`).
    pub fn secure(&self) -> std::collections::HashMap<String, String> {
        std::fs::read_to_string(self.dir.path().join("secure.env"))
            .expect("secure.env: start the broker with start_secure")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Stops the broker and waits until it is gone.
    pub fn stop(&self) {
        let _ = self.script("stop").output();
    }

    fn script(&self, command: &str) -> Command {
        let mut cmd = Command::new(repo_root().join("scripts/kafka.sh"));
        cmd.arg(command).arg("--dir").arg(self.dir.path());
        if command == "start" {
            cmd.arg("--port").arg(self.port.to_string());
            cmd.arg("--host").arg(&self.host);
        }
        cmd
    }

    /// The directory holding the broker's data and logs.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that is free now, below the kernel's ephemeral range: a port from bind(0)
/// can be taken by any outgoing connection's source port before the server binds it (or binds
/// it again after a restart); these are only taken by someone asking for them by number.
///
/// Tests run side by side, and a broker stopped and restarted under chaos leaves its port free
/// for a moment: each port handed out is reserved for an hour by a file in
/// `$TMPDIR/sensor-pipeline-ports`, as `scripts/free-port.py` does.
pub fn free_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("/proc/sys/net/ipv4/ip_local_port_range");
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the ephemeral range's lower bound");
    let mut rng = rand::rng();
    for _ in 0..1000 {
        let port = rand::RngExt::random_range(&mut rng, 10_000..low);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && reserve(port) {
            return port;
        }
    }
    panic!("no free port below the ephemeral range ({low})")
}

/// Claims `port` for this test run (see [`free_port`]): false if another test holds it.
fn reserve(port: u16) -> bool {
    const HOLD: std::time::Duration = std::time::Duration::from_secs(3600);
    let dir = std::env::temp_dir().join("sensor-pipeline-ports");
    std::fs::create_dir_all(&dir).expect("the port reservation directory");
    let path = dir.join(port.to_string());
    let stale = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > HOLD);
    if stale {
        let _ = std::fs::remove_file(&path);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .is_ok()
}

/// A three-node KRaft cluster of the test's own (`scripts/kafka.sh cluster start`): each node
/// broker and controller, replication 3, `min.insync.replicas` 2, topic auto-creation and
/// unclean leader election off. Stopped when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl Cluster {
    /// Starts the cluster and waits until every node answers.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kafka-cluster")
            .tempdir()
            .expect("temporary directory for a cluster");
        let output = Command::new(repo_root().join("scripts/kafka.sh"))
            .args(["cluster", "start", "--dir"])
            .arg(dir.path())
            .output()
            .expect("running scripts/kafka.sh cluster start");
        assert!(
            output.status.success(),
            "scripts/kafka.sh cluster start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bootstrap = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Self { dir, bootstrap }
    }

    /// The three nodes' addresses, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// SIGKILLs node `node` (1 to 3) and waits until it is gone.
    pub fn kill(&self, node: u32) {
        self.script(&["node", "kill", &node.to_string()]);
    }

    /// Stops node `node` with SIGTERM (a controlled shutdown) and waits until it is gone.
    pub fn stop(&self, node: u32) {
        self.script(&["node", "stop", &node.to_string()]);
    }

    /// Starts node `node` again on its data and waits until it answers.
    pub fn restart(&self, node: u32) {
        self.script(&["node", "start", &node.to_string()]);
    }

    /// The node leading `topic`'s `partition`.
    pub fn leader(&self, topic: &str, partition: i32) -> u32 {
        self.node_of(&["leader", topic, &partition.to_string()])
    }

    /// The node coordinating consumer group `group`.
    pub fn group_coordinator(&self, group: &str) -> u32 {
        self.node_of(&["group-coordinator", group])
    }

    /// The node coordinating transactional id `id`.
    pub fn txn_coordinator(&self, id: &str) -> u32 {
        self.node_of(&["txn-coordinator", id])
    }

    fn node_of(&self, args: &[&str]) -> u32 {
        let out = self.script(args);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("scripts/kafka.sh {args:?} printed {out:?}"))
    }

    fn script(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join("scripts/kafka.sh"))
            .args(args)
            .arg("--dir")
            .arg(self.dir.path())
            .output()
            .expect("running scripts/kafka.sh");
        assert!(
            output.status.success(),
            "scripts/kafka.sh {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Cluster {
    /// Copies each node's broker log into `dir` (`node-1.log`, ...).
    pub fn save_logs(&self, dir: &std::path::Path) {
        let _ = std::fs::create_dir_all(dir);
        for node in 1..=3 {
            let _ = std::fs::copy(
                self.dir.path().join(format!("node-{node}/broker.log")),
                dir.join(format!("node-{node}.log")),
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/kafka.sh"))
            .args(["cluster", "stop", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}
