//! Blocking client calls with a deadline of our own.
//!
//! librdkafka's transactional calls take a timeout, and nearly always honour it. One does not:
//! `rd_kafka_send_offsets_to_transaction` can block for good when the group coordinator's
//! broker goes away while it waits (librdkafka 2.12, confluentinc/librdkafka#5456 and #5511),
//! and the replica then stalls silently with its partitions held. A [`Watchdog`] runs such calls
//! on a thread of its own and stops waiting at a deadline: the caller then treats the client as
//! lost and builds a new one, and the thread, still blocked inside librdkafka, is left behind
//! with its handle on the old client (a thread and a client leaked per occurrence, bounded by
//! the engine's limit on recoveries).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

type Call<T> = Box<dyn FnOnce(&T) + Send>;

/// How long a call still in flight is waited for once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a call did not return a result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// It was still blocked at the deadline.
    Stuck,
    /// Shutdown was asked for and the call did not return within its grace period.
    ShutDown,
}

/// A thread that makes blocking calls on one client, one at a time, in order.
pub(crate) struct Watchdog<T> {
    calls: mpsc::Sender<Call<T>>,
}

impl<T: Send + Sync + 'static> Watchdog<T> {
    /// Starts the thread, named `name`, which holds `client` until the watchdog is dropped
    /// (or for good, if a call never returns).
    pub(crate) fn new(client: Arc<T>, name: &str) -> std::io::Result<Self> {
        let (calls, queue) = mpsc::channel::<Call<T>>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Ok(call) = queue.recv() {
                    call(&client);
                }
            })?;
        Ok(Self { calls })
    }

    /// Runs `call` on the thread and waits for its result until `deadline` has passed, or
    /// until [`SHUTDOWN_GRACE`] after `shutdown` is cancelled.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        deadline: Duration,
        shutdown: &CancellationToken,
        call: impl FnOnce(&T) -> R + Send + 'static,
    ) -> Result<R, Unfinished> {
        let (answer, result) = oneshot::channel();
        let sent = self.calls.send(Box::new(move |client: &T| {
            let _ = answer.send(call(client));
        }));
        if sent.is_err() {
            // The thread is gone only if a call panicked: as good as stuck.
            return Err(Unfinished::Stuck);
        }
        tokio::select! {
            result = result => result.map_err(|_| Unfinished::Stuck),
            _ = tokio::time::sleep(deadline) => Err(Unfinished::Stuck),
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => Err(Unfinished::ShutDown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    #[tokio::test]
    async fn calls_run_in_order_and_return_their_results() {
        let watchdog = Watchdog::new(Arc::new(AtomicU32::new(0)), "test-calls").unwrap();
        let shutdown = CancellationToken::new();
        for expected in 0..5 {
            let seen = watchdog
                .run(Duration::from_secs(5), &shutdown, |n: &AtomicU32| {
                    n.fetch_add(1, Ordering::SeqCst)
                })
                .await;
            assert_eq!(seen, Ok(expected));
        }
    }

    #[tokio::test]
    async fn a_call_blocked_past_its_deadline_is_given_up_and_the_next_watchdog_works() {
        let client = Arc::new(AtomicU32::new(0));
        let shutdown = CancellationToken::new();
        let stuck = Watchdog::new(client.clone(), "test-stuck").unwrap();
        let started = Instant::now();
        let result = stuck
            .run(Duration::from_millis(200), &shutdown, |_: &AtomicU32| {
                std::thread::sleep(Duration::from_secs(3600))
            })
            .await;
        assert_eq!(result, Err(Unfinished::Stuck));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        // Calls queued behind the blocked one never run: a new watchdog replaces it.
        let queued = stuck
            .run(Duration::from_millis(100), &shutdown, |n: &AtomicU32| {
                n.fetch_add(1, Ordering::SeqCst)
            })
            .await;
        assert_eq!(queued, Err(Unfinished::Stuck));
        let fresh = Watchdog::new(client.clone(), "test-fresh").unwrap();
        let result = fresh
            .run(Duration::from_secs(5), &shutdown, |n: &AtomicU32| {
                n.fetch_add(1, Ordering::SeqCst)
            })
            .await;
        assert_eq!(result, Ok(0));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_a_grace_period_for_a_call_in_flight_not_its_whole_deadline() {
        let watchdog = Watchdog::new(Arc::new(()), "test-shutdown").unwrap();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let started = tokio::time::Instant::now();
        let result = watchdog
            .run(Duration::from_secs(600), &shutdown, |_: &()| {
                std::thread::sleep(Duration::from_secs(3600))
            })
            .await;
        assert_eq!(result, Err(Unfinished::ShutDown));
        let waited = started.elapsed();
        assert!(
            waited >= SHUTDOWN_GRACE && waited < Duration::from_secs(600),
            "{waited:?}"
        );
    }
}
