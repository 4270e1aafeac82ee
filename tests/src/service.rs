//! The service binaries as child processes, with their logs captured to a file.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::repo_root;

/// A running service binary. Killed when dropped.
pub struct Service {
    name: String,
    child: Child,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// The last `n` lines of `text` (all of them if it has fewer).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A log filter for replicas under chaos: INFO, and each committed transaction (its input
/// spans and membership) at DEBUG, to trace an audit's duplicate or gap back to a commit.
pub const TRACE_COMMITS: &str = "info,stream_engine::transactions=debug";

/// Where cargo put the binaries: next to this test executable's `deps` directory.
pub fn binary(name: &str) -> PathBuf {
    let path = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join(name)))
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "{} is not built; run the tests with scripts/test.sh (it builds every target first)",
        path.display()
    );
    path
}

impl Service {
    /// Starts the processor with the docker profile (as compose does, unless `args` has a
    /// `--config`) and `args`.
    pub fn processor(args: &[String]) -> Self {
        Self::start("processor", args, &[])
    }

    /// As [`Service::processor`], with extra environment variables.
    pub fn processor_with_env(args: &[String], env: &[(&str, &str)]) -> Self {
        Self::start("processor", args, env)
    }

    /// Starts the simulator with the docker profile and `args`.
    pub fn simulator(args: &[String]) -> Self {
        Self::start("sensor-simulator", args, &[])
    }

    /// Starts the log gateway with the docker profile and `args`, listening on a port the
    /// kernel picks unless `args` name one: see [`Service::listen_address`].
    pub fn gateway(args: &[String]) -> Self {
        Self::gateway_with_env(args, &[])
    }

    /// As [`Service::gateway`], with extra environment variables.
    pub fn gateway_with_env(args: &[String], env: &[(&str, &str)]) -> Self {
        let mut args = args.to_vec();
        if !args.iter().any(|a| a == "--listen-address") {
            args.extend(["--listen-address".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        Self::start("log-gateway", &args, env)
    }

    /// Starts binary `name` with the docker profile and `args`.
    pub fn start_binary(name: &str, args: &[String]) -> Self {
        Self::start(name, args, &[])
    }

    /// As [`Service::start_binary`], with extra environment variables.
    pub fn start_binary_with_env(name: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        Self::start(name, args, env)
    }

    /// Starts binary `name` with the docker profile and `args` inside network namespace
    /// `netns` (`ip netns exec`, which execs it: signals reach the service itself). Its HTTP
    /// endpoints are inside the namespace too.
    pub fn start_in_netns(netns: &str, name: &str, args: &[String]) -> Self {
        Self::start_with(Some(netns), name, args, &[])
    }

    fn start(name: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        Self::start_with(None, name, args, env)
    }

    fn start_with(netns: Option<&str>, name: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        let log_dir = tempfile::Builder::new()
            .prefix(name)
            .tempdir()
            .expect("log directory");
        let log_path = log_dir.path().join("service.log");
        let log = File::create(&log_path).expect("log file");
        // Each service gets a port of its own for its HTTP endpoints; see `http_address`.
        let own_port = if args.iter().any(|a| a == "--http-address") {
            vec![]
        } else {
            vec!["--http-address".to_owned(), "127.0.0.1:0".to_owned()]
        };
        // The docker profile, unless the test gives a configuration file of its own.
        let config = if args.iter().any(|a| a == "--config") {
            vec![]
        } else {
            vec![
                "--config".to_owned(),
                repo_root().join("config/docker.toml").display().to_string(),
            ]
        };
        // The service writes the address it bound there: several replicas on one host.
        let address_file = log_dir.path().join("http-address");
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(binary(name));
                command
            }
            None => Command::new(binary(name)),
        };
        let child = command
            .args(config)
            .args(args)
            .args(own_port)
            .arg("--http-address-file")
            .arg(&address_file)
            .env_remove("PIPELINE_CONFIG")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log_path,
            _log_dir: log_dir,
        }
    }

    /// Copies the log to `path` (to keep it past the test).
    pub fn save_log(&self, path: &std::path::Path) {
        let _ = std::fs::copy(&self.log_path, path);
    }

    /// Everything the service has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The JSON log lines whose message is `message`.
    pub fn log_events(&self, message: &str) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    /// The address the service serves `/metrics`, `/healthz` and `/readyz` on, as it wrote it
    /// to its `--http-address-file`.
    pub fn http_address(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let file = self.log_path.with_file_name("http-address");
        loop {
            if let Ok(address) = std::fs::read_to_string(&file) {
                return address;
            }
            assert!(
                Instant::now() < deadline,
                "no HTTP address written\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The address the log gateway receives lines on, from its "receiving log lines" event.
    /// A port picked by the test and released before the gateway binds it can be taken in
    /// between (by any outgoing connection's ephemeral port): the gateway binds port 0 instead.
    pub fn listen_address(&mut self, timeout: Duration) -> String {
        self.logged_address("receiving log lines", timeout)
    }

    /// The `address` field of the first log event whose message is `message`.
    pub fn logged_address(&mut self, message: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(address) = self
                .log_events(message)
                .first()
                .and_then(|event| event["address"].as_str().map(str::to_owned))
            {
                return address;
            }
            assert!(
                self.child.try_wait().ok().flatten().is_none(),
                "{} exited before listening\n{}",
                self.name,
                self.log_tail()
            );
            assert!(
                Instant::now() < deadline,
                "{} never logged {message:?}\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a log line contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The process id (for /proc figures in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (SIGTERM for a graceful stop, SIGKILL for a crash).
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Waits up to `timeout` for the process to exit, and asserts that it succeeded.
    pub fn wait_success(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not finish successfully ({status:?})\n{}",
            self.name,
            self.log_tail()
        );
    }

    /// Sends SIGTERM and asserts a successful exit within `timeout`; returns the time taken.
    pub fn stop(&mut self, timeout: Duration) -> Duration {
        let (status, took) = self.terminate(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not stop cleanly ({status:?})\n{}",
            self.name,
            self.log_tail()
        );
        took
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit, returning it and the time taken.
    pub fn terminate(&mut self, timeout: Duration) -> (Option<ExitStatus>, Duration) {
        let started = Instant::now();
        self.signal(Signal::SIGTERM);
        let status = self.wait(timeout);
        (status, started.elapsed())
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- last lines of {} log ---\n{}",
            self.name,
            last_lines(&self.log(), 40)
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to a minute) until the service at `address` answers `/readyz` with 200.
pub fn wait_ready(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(address, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "{address} never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GETs `path` from `address` over plain HTTP/1.0: (status code, body).
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    try_http_get(address, path).unwrap_or_else(|e| panic!("GET {path} from {address}: {e}"))
}

/// [`http_get`] for a server that may not be listening yet.
pub fn try_http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// An HTTP answer: status, headers (names in lower case), body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `path` over `stream` (plain TCP or TLS) as HTTP/1.1 with `Connection:
/// close`, and reads the answer to the end. The body must come back with a `Content-Length`
/// (as axum answers), not chunked.
pub fn http_post(
    mut stream: impl std::io::Read + std::io::Write,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {response:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpAnswer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// `name{labels}` → value, from a service's `/metrics` (the Prometheus text format).
pub fn scrape(address: &str) -> std::collections::HashMap<String, f64> {
    let (status, body) = http_get(address, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Command-line flags for the simulator publishing to `topic`, followed by `extra`.
pub fn simulator_args(bootstrap: &str, topic: &str, extra: &[&str]) -> Vec<String> {
    ["--brokers", bootstrap, "--topic", topic]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// User + system CPU seconds of a process, from /proc/<pid>/stat (USER_HZ = 100).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
