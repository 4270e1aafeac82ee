//! Replicas of a service under chaos: started under stable names, SIGKILLed, stopped, and
//! restarted when they exit on their own, as a container supervisor would.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::service::Service;

/// `count` replica slots; replica `i` is started by the function given to [`Replicas::new`].
pub struct Replicas {
    start_replica: Box<dyn Fn(usize) -> Service>,
    /// The running incarnation of each replica, if any.
    pub running: Vec<Option<Service>>,
    /// Stopped and killed incarnations, kept for their logs.
    pub retired: Vec<Service>,
    /// SIGKILLs sent.
    pub kills: u32,
    /// Replicas that exited on their own and were restarted.
    pub crashes: u32,
}

impl Replicas {
    /// `count` empty slots; nothing is started yet.
    pub fn new(count: usize, start_replica: impl Fn(usize) -> Service + 'static) -> Self {
        Self {
            start_replica: Box::new(start_replica),
            running: (0..count).map(|_| None).collect(),
            retired: Vec::new(),
            kills: 0,
            crashes: 0,
        }
    }

    /// Starts replica `i` (retiring a previous incarnation).
    pub fn start(&mut self, i: usize) {
        let replica = (self.start_replica)(i);
        if let Some(old) = self.running[i].replace(replica) {
            self.retired.push(old);
        }
    }

    /// Restarts replicas that exited on their own.
    pub fn supervise(&mut self) {
        for i in 0..self.running.len() {
            if let Some(replica) = &mut self.running[i]
                && !replica.is_running()
            {
                eprintln!(
                    "chaos: replica-{i} exited on its own ({:?}); restarting it",
                    replica.wait(Duration::ZERO)
                );
                self.crashes += 1;
                self.start(i);
            }
        }
    }

    /// Waits `duration`, supervising.
    pub fn pause(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.supervise();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILLs replica `i` and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut replica) = self.running[i].take() {
            replica.signal(Signal::SIGKILL);
            replica.wait(Duration::from_secs(10));
            self.retired.push(replica);
            self.kills += 1;
        }
    }

    /// Stops replica `i` with SIGTERM; it must exit within 30 s.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut replica) = self.running[i].take() {
            let (status, _) = replica.terminate(Duration::from_secs(30));
            assert!(
                status.is_some(),
                "replica-{i} did not stop on SIGTERM\n{}",
                replica.log_tail()
            );
            self.retired.push(replica);
        }
    }

    /// Every incarnation, retired first.
    pub fn all(&self) -> impl Iterator<Item = &Service> {
        self.retired.iter().chain(self.running.iter().flatten())
    }

    /// JSON log lines with `message`, over every incarnation.
    pub fn count_in_logs(&self, message: &str) -> usize {
        self.all().map(|r| r.log_events(message).len()).sum()
    }

    /// Copies every incarnation's log into `dir`.
    pub fn save_logs(&self, dir: &std::path::Path) {
        let _ = std::fs::create_dir_all(dir);
        for (n, replica) in self.all().enumerate() {
            replica.save_log(&dir.join(format!("incarnation-{n:02}.log")));
        }
        eprintln!("chaos: logs kept in {}", dir.display());
    }
}
