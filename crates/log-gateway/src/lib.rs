//! `log-gateway`: the network-log pipeline's front door. Log shippers connect over TCP and send
//! lines; each line becomes one Kafka record on `access-logs` (value: the line's bytes without
//! its line ending; headers `sender` and `received-at-ms`; timestamp: when it was read).
//!
//! - No line is dropped to keep up: at `max_in_flight` unacknowledged records the connections
//!   stop being read and TCP flow control slows the senders ([`sink`]).
//! - A line longer than `max_line_bytes` is dead-lettered with the reason and the sender, and
//!   the connection carries on ([`framing`]).
//! - At most `max_connections` connections, each a task, closed after `idle_timeout_secs` of
//!   silence ([`connection`]); more are refused, logged and counted.
//! - SIGTERM: stop accepting, read what the connections have already sent, flush, exit 0 within
//!   `shutdown_grace_secs`.
//! - Syslog on a second listener (`syslog_listen_address`): RFC 6587 framing, RFC 5424 and RFC
//!   3164 messages; the body becomes the record, the message's own time its timestamp
//!   ([`syslog`]).
//! - Acknowledged ingestion over HTTP on a third listener (`http_listen_address`): `POST
//!   /v1/logs` is answered 200 only once Kafka has every line of the request ([`http`]).
//! - TLS on every listener, and client certificates checked against a CA, when `[gateway.tls]`
//!   says so ([`tls`]).

pub mod connection;
pub mod framing;
pub mod http;
pub mod metrics;
pub mod settings;
pub mod sink;
pub mod syslog;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ::metrics::{counter, gauge};
use anyhow::Context;
use pipeline_runtime::endpoints::{self, Health};
use pipeline_runtime::kafka::wait_for_topics;
use tokio::io::AsyncRead;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// On SIGTERM, connections still waiting to be accepted are taken until none comes for this long
/// (or [`BACKLOG_MAX`] has passed): see `run`.
const BACKLOG_QUIET: Duration = Duration::from_millis(50);
/// At most this long after SIGTERM, the listener is closed whatever still arrives.
const BACKLOG_MAX: Duration = Duration::from_secs(1);

pub use settings::{Cli, Config, GatewaySettings};

use crate::connection::{Connection, Ended, Framing};
use crate::sink::Sink;
use crate::tls::TlsServer;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Lines Kafka acknowledged.
    pub lines: u64,
    /// Oversize lines Kafka acknowledged on the dead-letter topic.
    pub dead_letters: u64,
    /// Records that could not be delivered.
    pub failed: u64,
    /// Records still unacknowledged when the grace period ended (lost).
    pub unflushed: usize,
}

/// Runs the gateway until `shutdown`, then drains and flushes.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Summary> {
    let settings = &config.gateway;
    let health = Arc::new(Health::default());
    let tasks = TaskTracker::new();
    endpoints::serve(
        &settings.http_address,
        config.telemetry.http_address_file.as_deref(),
        health.clone(),
        shutdown.clone(),
        &tasks,
    )
    .await
    .context("starting the HTTP endpoints (gateway.http_address)")?;
    // After the recorder is installed (by `serve`), or the series would go nowhere.
    metrics::describe();

    let sink = Arc::new(Sink::new(&config.kafka, settings, health.clone())?);
    tracing::info!(
        brokers = %config.kafka.brokers,
        topic = %settings.topic,
        dlq_topic = %settings.dlq_topic,
        "log gateway starting"
    );
    let topics = [settings.topic.as_str(), settings.dlq_topic.as_str()];
    if wait_for_topics(sink.client(), &topics, &shutdown)
        .await?
        .is_none()
    {
        return Ok(Summary {
            lines: 0,
            dead_letters: 0,
            failed: 0,
            unflushed: 0,
        });
    }
    let tls = TlsServer::new(&settings.tls)?.map(Arc::new);
    let lines = bind(&settings.listen_address, "gateway.listen_address").await?;
    let syslog = bind_if_set(
        &settings.syslog_listen_address,
        "gateway.syslog_listen_address",
    )
    .await?;
    let http = bind_if_set(&settings.http_listen_address, "gateway.http_listen_address").await?;
    for (listener, what) in [
        (Some(&lines), "log lines"),
        (syslog.as_ref(), "syslog"),
        (http.as_ref(), "log lines over HTTP (POST /v1/logs)"),
    ] {
        if let Some(listener) = listener {
            tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), client_certificates = settings.tls.ca_file.is_some(), "receiving {what}");
        }
    }
    health.set_ready(true);

    let shared = Shared {
        settings,
        sink: sink.clone(),
        tls,
        health: health.clone(),
        shutdown: shutdown.clone(),
        connections: Arc::new(tokio::sync::Semaphore::new(settings.max_connections)),
        drain_deadline: Arc::new(std::sync::OnceLock::new()),
        open: TaskTracker::new(),
    };
    let (_, _, served) = tokio::join!(
        accept(lines, Framing::Lines, &shared),
        async {
            if let Some(syslog) = syslog {
                accept(syslog, Framing::Syslog, &shared).await;
            }
        },
        async {
            match http {
                Some(http) => serve_http(http, &shared).await,
                None => Ok(()),
            }
        }
    );
    served?;
    let Shared {
        drain_deadline,
        open,
        ..
    } = shared;

    // SIGTERM: no new connections; the open ones read what their senders already sent.
    let deadline = *drain_deadline.get_or_init(|| Instant::now() + settings.shutdown_grace_secs);
    open.close();
    let drained = tokio::time::timeout_at(deadline.into(), open.wait())
        .await
        .is_ok();
    if !drained {
        tracing::warn!("connections still busy at the end of gateway.shutdown_grace_secs");
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let flush_sink = sink.clone();
    let unflushed = tokio::task::spawn_blocking(move || flush_sink.flush(left))
        .await
        .context("flushing the producer")?;
    tasks.close();
    let deliveries = sink.deliveries();
    let summary = Summary {
        lines: deliveries.lines.load(Ordering::Relaxed),
        dead_letters: deliveries.dead_letters.load(Ordering::Relaxed),
        failed: deliveries.failed.load(Ordering::Relaxed),
        unflushed,
    };
    Ok(summary)
}

/// What both listeners share.
struct Shared<'a> {
    settings: &'a GatewaySettings,
    sink: Arc<Sink>,
    tls: Option<Arc<TlsServer>>,
    health: Arc<Health>,
    shutdown: CancellationToken,
    /// Open connections, over both listeners.
    connections: Arc<tokio::sync::Semaphore>,
    /// When draining must end at the latest (set once the shutdown begins).
    drain_deadline: Arc<std::sync::OnceLock<Instant>>,
    /// The connections' tasks.
    open: TaskTracker,
}

/// Serves the HTTP endpoint until shutdown, then lets the requests in progress finish (until
/// the drain deadline at the latest).
async fn serve_http(listener: TcpListener, shared: &Shared<'_>) -> anyhow::Result<()> {
    let settings = shared.settings;
    let ingest = Arc::new(http::Ingest {
        sink: shared.sink.clone(),
        health: shared.health.clone(),
        max_line_bytes: settings.max_line_bytes,
        max_request_bytes: settings.max_request_bytes,
        max_in_flight: settings.max_in_flight,
        request_timeout: settings.request_timeout_secs,
    });
    let listener = http::HttpListener::new(
        listener,
        shared.tls.clone(),
        shared.connections.clone(),
        settings.max_connections,
        shared.shutdown.clone(),
    )
    .context("starting the HTTP listener (gateway.http_listen_address)")?;
    let app = http::router(ingest).into_make_service_with_connect_info::<http::Peer>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shared.shutdown.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    let drained = async {
        shared.shutdown.cancelled().await;
        let deadline = *shared
            .drain_deadline
            .get_or_init(|| Instant::now() + settings.shutdown_grace_secs);
        tokio::time::sleep_until(deadline.into()).await;
    };
    tokio::select! {
        served = &mut server => served.context("serving HTTP (gateway.http_listen_address)"),
        _ = drained => {
            tracing::warn!("HTTP requests still waiting at the end of gateway.shutdown_grace_secs");
            Ok(())
        }
    }
}

/// Binds a listener when `address` is set (not empty).
async fn bind_if_set(address: &str, key: &str) -> anyhow::Result<Option<TcpListener>> {
    if address.is_empty() {
        return Ok(None);
    }
    bind(address, key).await.map(Some)
}

/// Binds a listener, naming the setting on failure.
async fn bind(address: &str, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address} ({key})"))
}

/// Accepts `listener`'s connections, each served in a task of its own with `framing`, until
/// shutdown (and then the backlog already waiting).
async fn accept(listener: TcpListener, framing: Framing, shared: &Shared<'_>) {
    let (mut stopping, mut stopped_at) = (false, Instant::now());
    loop {
        let accepted = if stopping {
            // The kernel completes connections before they are accepted, and their senders may
            // have written already: those waiting in the backlog when SIGTERM came are served
            // and drained too (they were reset with the listener, and their lines lost, when a
            // test's connect-write-SIGTERM came faster than the accept). Done when none comes
            // for a moment.
            match tokio::time::timeout(BACKLOG_QUIET, listener.accept()).await {
                Ok(accepted) if stopped_at.elapsed() < BACKLOG_MAX => accepted,
                _ => break,
            }
        } else {
            tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shared.shutdown.cancelled() => {
                    // Before any connection drains, even one still to be accepted.
                    shared.health.set_ready(false);
                    let _ = shared.drain_deadline.set(Instant::now() + shared.settings.shutdown_grace_secs);
                    stopping = true;
                    stopped_at = Instant::now();
                    continue;
                }
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) if stopping => break,
            Err(error) => {
                // Out of file descriptors, for example: wait a little and go on.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = shared.connections.clone().try_acquire_owned() else {
            counter!(metrics::CONNECTIONS_REFUSED).increment(1);
            tracing::warn!(%peer, max_connections = shared.settings.max_connections, "connection refused: gateway.max_connections are open");
            drop(stream);
            continue;
        };
        counter!(metrics::CONNECTIONS_ACCEPTED).increment(1);
        gauge!(metrics::CONNECTIONS_OPEN).increment(1.0);
        tracing::debug!(%peer, "connection accepted");
        let (sink, shutdown, drain_deadline, tls) = (
            shared.sink.clone(),
            shared.shutdown.clone(),
            shared.drain_deadline.clone(),
            shared.tls.clone(),
        );
        let (max_line_bytes, idle_timeout) = (
            shared.settings.max_line_bytes,
            shared.settings.idle_timeout_secs,
        );
        shared.open.spawn(async move {
            let stream: Box<dyn AsyncRead + Unpin + Send + Sync> = match &tls {
                None => Box::new(stream),
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => Box::new(stream),
                    Err(error) => {
                        counter!(metrics::TLS_HANDSHAKE_FAILURES).increment(1);
                        tracing::warn!(%peer, "connection closed: {error:#}");
                        gauge!(metrics::CONNECTIONS_OPEN).decrement(1.0);
                        drop(slot);
                        return;
                    }
                },
            };
            let connection = Connection {
                stream,
                framing,
                peer,
                sink,
                max_line_bytes,
                idle_timeout,
                shutdown,
                drain_deadline,
            };
            let ended = connection.serve().await;
            gauge!(metrics::CONNECTIONS_OPEN).decrement(1.0);
            if ended == Ended::Idle {
                tracing::info!(%peer, "connection closed after gateway.idle_timeout_secs of silence");
            } else {
                tracing::debug!(%peer, ?ended, "connection ended");
            }
            drop(slot);
        });
    }
}
