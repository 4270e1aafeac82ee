//! The dashboard page in Debian's headless Chromium, through `tests/browser/dashboard.mjs`
//! (playwright-core): JSON lines from the driver, one command to it, a screenshot.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

use crate::repo_root;

/// The driver, with the page at `url` open.
pub struct Page {
    driver: Child,
    out: Lines<BufReader<ChildStdout>>,
    screenshot: PathBuf,
}

impl Page {
    /// Opens `url`; the screenshot the driver saves at the end is
    /// `target/screenshots/<screenshot>`. Fails loudly when playwright-core is missing.
    pub fn open(url: &str, screenshot: &str) -> Self {
        let node_modules = repo_root().join("tests/browser/node_modules/playwright-core");
        assert!(
            node_modules.is_dir(),
            "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
        );
        let dir = repo_root().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let screenshot = dir.join(screenshot);
        let _ = std::fs::remove_file(&screenshot);
        let mut driver = Command::new("node")
            .arg(repo_root().join("tests/browser/dashboard.mjs"))
            .arg(url)
            .arg(&screenshot)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (Node.js is a prerequisite)");
        let out = BufReader::new(driver.stdout.take().expect("piped")).lines();
        Self {
            driver,
            out,
            screenshot,
        }
    }

    /// The driver's next report.
    pub fn report(&mut self) -> Value {
        let line = self
            .out
            .next()
            .expect("the browser driver ended early")
            .unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Sends the driver its one command (after the idle report), then closes its input.
    pub fn command(&mut self, command: &str) {
        let mut stdin = self.driver.stdin.take().expect("one command");
        writeln!(stdin, "{command}").unwrap();
    }

    /// Waits for the driver to end, and checks it did and saved a real screenshot; returns
    /// the screenshot's path.
    pub fn finish(mut self) -> PathBuf {
        let status = self.driver.wait().unwrap();
        assert!(status.success(), "the browser driver failed: {status}");
        let png = std::fs::read(&self.screenshot).expect("screenshot saved");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000);
        self.screenshot.clone()
    }
}
