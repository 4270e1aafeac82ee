//! Live updates: each transaction of new rows that pg-sink commits goes to every open page.
//! PostgreSQL: a connection of its own `LISTEN`s on pg-sink's channel (the NOTIFY is delivered
//! when the transaction commits). SQLite: the `sink_commits` rows written in those transactions
//! are read every [`POLL`].

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use pg_sink::store::read::Reader;
use pipeline_runtime::endpoints::Health;
use pipeline_runtime::secret::Secret;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// Listens on `channel` until `shutdown`, reconnecting with back-off; the dashboard is ready
/// only while it listens.
pub async fn listen(
    url: Secret,
    channel: String,
    live: broadcast::Sender<String>,
    health: std::sync::Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut wait = Duration::from_secs(1);
    while !shutdown.is_cancelled() {
        match url.expose().parse::<tokio_postgres::Config>() {
            Ok(config) => match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let listening = async {
                        client
                            .batch_execute(&format!("LISTEN {channel}"))
                            .await
                            .map(|()| {
                                tracing::info!(%channel, "listening for new results");
                                health.set_ready(true);
                            })
                    };
                    // The connection makes progress only while its messages are polled, so the
                    // LISTEN runs next to the loop that reads them.
                    let read = async {
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    // No page open: nobody to tell.
                                    let _ = live.send(n.payload().to_owned());
                                }
                                Ok(_) => {}
                                Err(error) => {
                                    tracing::warn!(%error, "listening connection failed");
                                    break;
                                }
                            }
                        }
                    };
                    tokio::select! {
                        (result, ()) = futures::future::join(listening, read) => {
                            if let Err(error) = result {
                                tracing::warn!(%error, "LISTEN failed");
                            }
                        }
                        () = shutdown.cancelled() => return,
                    }
                    health.set_ready(false);
                    wait = Duration::from_secs(1);
                }
                Err(error) => {
                    health.set_ready(false);
                    tracing::warn!(
                        "database unreachable for live updates, retrying in {} s: {error}",
                        wait.as_secs()
                    );
                }
            },
            Err(error) => {
                tracing::error!(%error, "bad connection string");
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// How often the SQLite file's announcements are read.
pub const POLL: Duration = Duration::from_millis(250);

/// Reads the announcements of the SQLite file at `path` every [`POLL`] until `shutdown`; the
/// dashboard is ready while the file answers.
pub async fn poll_file(
    path: PathBuf,
    live: broadcast::Sender<String>,
    health: std::sync::Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut last = None;
    let mut failing = false;
    while !shutdown.is_cancelled() {
        match Reader::announcements(&path, last).await {
            Ok((newest, payloads)) => {
                for payload in payloads {
                    // No page open: nobody to tell.
                    let _ = live.send(payload);
                }
                last = Some(newest);
                if failing || !health.is_ready() {
                    tracing::info!(path = %path.display(), "reading new results from the file");
                }
                failing = false;
                health.set_ready(true);
            }
            Err(error) => {
                if !failing {
                    tracing::warn!("reading new results failed: {error:#}");
                }
                failing = true;
                health.set_ready(false);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
