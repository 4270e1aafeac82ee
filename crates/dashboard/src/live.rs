//! Live updates: a connection of its own `LISTEN`s on pg-sink's channel; each notification
//! (sent by a transaction of new rows, delivered when it commits) goes to every open page.

use std::time::Duration;

use futures::StreamExt;
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
