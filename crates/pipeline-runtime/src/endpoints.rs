//! The operator's HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (alive, and
//! the Kafka clients are not in a fatal state) and `/readyz` (doing its job: the service says
//! when).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Histogram buckets of every `_seconds` metric: 1 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What `/healthz` and `/readyz` answer.
#[derive(Debug)]
pub struct Health {
    fatal: AtomicBool,
    ready: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            fatal: AtomicBool::new(false),
            ready: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// A Kafka client hit a fatal error: `/healthz` fails from now on.
    pub fn set_fatal(&self) {
        self.fatal.store(true, Ordering::Relaxed);
    }

    /// Whether the process is healthy.
    pub fn is_live(&self) -> bool {
        !self.fatal.load(Ordering::Relaxed)
    }

    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the service is doing its job.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
/// Under a lock: services started side by side in one process (the demo) call it at the same
/// time, and only one may install.
pub fn metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::Mutex<Option<PrometheusHandle>> = std::sync::Mutex::new(None);
    let mut installed = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("configuring histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    *installed = Some(handle.clone());
    Ok(handle)
}

#[derive(Clone)]
struct Endpoints {
    metrics: PrometheusHandle,
    health: Arc<Health>,
}

/// Serves the endpoints on `address` until `shutdown`, on tasks of `tasks`; returns the bound address (useful with
/// port 0), and writes it to `address_file` when one is given. An empty `address` serves
/// nothing and returns `None`.
///
/// Only the three routes exist: anything else is a 404 with an empty body (no listing, no
/// debug routes).
pub async fn serve(
    address: &str,
    address_file: Option<&Path>,
    health: Arc<Health>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<Option<SocketAddr>> {
    serve_with(
        address,
        address_file,
        health,
        shutdown,
        tasks,
        Router::new(),
    )
    .await
}

/// As [`serve`], with a service's own routes (`routes`) next to the three: for a service whose
/// job is HTTP (the dashboard), on the same address.
pub async fn serve_with(
    address: &str,
    address_file: Option<&Path>,
    health: Arc<Health>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
    routes: Router,
) -> anyhow::Result<Option<SocketAddr>> {
    if address.is_empty() {
        return Ok(None);
    }
    let metrics = metrics_recorder()?;
    // Histograms keep every sample until upkeep folds them into their buckets. A scrape does
    // that too, but without one (no Prometheus yet, or a long scrape interval) the processor's
    // end-to-end histogram, one sample per reading, would grow without bound: 16 MB per
    // 2 million readings.
    let upkeep = metrics.clone();
    let upkeep_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = every.tick() => upkeep.run_upkeep(),
                _ = upkeep_shutdown.cancelled() => break,
            }
        }
    });
    let state = Endpoints { metrics, health };
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Endpoints>| async move { s.metrics.render() }),
        )
        .route(
            "/healthz",
            get(|State(s): State<Endpoints>| async move {
                if s.health.is_live() {
                    (StatusCode::OK, "ok\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "a Kafka client is in a fatal state\n",
                    )
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(s): State<Endpoints>| async move {
                if s.health.is_ready() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .with_state(state)
        .merge(routes);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the HTTP endpoints to {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
    if let Some(path) = address_file {
        // Written whole under another name, then renamed: a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bound.to_string())
            .and_then(|()| std::fs::rename(&partial, path))
            .with_context(|| format!("writing the HTTP address to {}", path.display()))?;
    }
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the HTTP endpoints stopped");
        }
    });
    Ok(Some(bound))
}
