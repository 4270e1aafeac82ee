//! The Kafka Streams baselines of the benchmarks (`bench/kafka-streams`, built by
//! `scripts/bench.sh`): one JVM per application, run from `target/classes` and `target/lib`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::repo_root;
use crate::service::cpu_seconds;

/// A running Kafka Streams application.
pub struct StreamsApp {
    child: Child,
    _log_dir: tempfile::TempDir,
    log_path: std::path::PathBuf,
    /// When the process started.
    pub started: Instant,
    /// When it printed `RUNNING` (partitions assigned, state restored).
    pub ready: Instant,
}

impl StreamsApp {
    /// Starts `bench.<class>` with `args` and waits until it is running.
    pub fn start(class: &str, args: &[&str]) -> Self {
        let target = repo_root().join("bench/kafka-streams/target");
        let classpath = format!(
            "{}:{}/*",
            target.join("classes").display(),
            target.join("lib").display()
        );
        let log_dir = tempfile::tempdir().expect("log directory");
        let log_path = log_dir.path().join("streams.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let started = Instant::now();
        let child = Command::new("java")
            .args([
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                &classpath,
                &format!("bench.{class}"),
            ])
            .args(args)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting java (bench/kafka-streams: run scripts/bench.sh, which builds it)");
        let mut app = Self {
            child,
            _log_dir: log_dir,
            log_path,
            started,
            ready: started,
        };
        while !app.log().lines().any(|l| l == "RUNNING") {
            app.check_alive();
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "Kafka Streams never ran:\n{}",
                app.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        app.ready = Instant::now();
        app
    }

    /// What it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics, with its output, if it has exited.
    pub fn check_alive(&mut self) {
        assert!(
            self.child.try_wait().ok().flatten().is_none(),
            "Kafka Streams exited:\n{}",
            self.log()
        );
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds of the whole JVM so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// SIGTERM, and waits for it to exit.
    pub fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
