//! `dashboard`: the pipelines' results from their SQLite file or PostgreSQL, over HTTP.
//!
//! - `/`: one page (plain HTML, CSS, JavaScript and SVG, embedded in the binary; no build step,
//!   no third-party code): live alerts, a sensor table with a trend per sensor, and bar charts
//!   of the top IP addresses in the current and previous windows.
//! - `/api/...`: the JSON API ([`api`]), described in `/openapi.json`.
//! - `/api/events`: server-sent events, pushed when pg-sink commits new rows ([`live`]).
//!
//! [`serve`] runs it on a listener and a store of the caller's (the demo's, in one process with
//! the pipelines); [`run`] is the service.
//! - `/metrics`, `/healthz`, `/readyz`, as every service.

pub mod api;
pub mod live;
pub mod settings;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use pg_sink::store::read::Reader;
use pipeline_runtime::endpoints::{self, Health};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::{Cli, Config};

const INDEX: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/style.css");
const OPENAPI: &str = include_str!("../static/openapi.json");

fn asset(
    content_type: &'static str,
    body: &'static str,
) -> impl Fn() -> std::future::Ready<([(header::HeaderName, &'static str); 2], &'static str)> + Clone
{
    move || {
        std::future::ready((
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        ))
    }
}

/// The page, the API and the live updates.
pub fn routes(api: api::Api) -> Router {
    Router::new()
        .route("/", get(asset("text/html; charset=utf-8", INDEX)))
        .route(
            "/app.js",
            get(asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route("/style.css", get(asset("text/css; charset=utf-8", STYLE)))
        .route("/openapi.json", get(asset("application/json", OPENAPI)))
        .route("/api/sensors", get(api::sensors))
        .route("/api/sensors/{id}/averages", get(api::sensor_averages))
        .route("/api/alerts", get(api::alerts))
        .route("/api/anomalies", get(api::anomalies))
        .route(
            "/api/sensors/{id}/predictions",
            get(api::sensor_predictions),
        )
        .route("/api/ip/windows", get(api::ip_windows))
        .route("/api/ip/top", get(api::ip_top))
        .route("/api/ip/top-recent", get(api::ip_top_recent))
        .route("/api/events", get(api::events))
        .route("/api/{*rest}", get(api::not_found))
        .with_state(api)
}

/// Serves until `shutdown`.
pub async fn run(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let d = &config.dashboard;
    let database = pg_sink::store::describe(&d.database_url);
    // The schema is the sink's; whichever starts first creates it (under the same lock).
    let Some(mut store) = pg_sink::store::Store::connect_until(&d.database_url, &shutdown).await
    else {
        return Ok(());
    };
    store.migrate().await?;
    drop(store);
    tracing::info!(%database, "database reachable, schema up to date");

    let reader = Reader::new(d.database_url.expose(), d.max_connections)?;
    let (live, _) = tokio::sync::broadcast::channel(256);
    let health = Arc::new(Health::default());
    let tasks = TaskTracker::new();
    match &reader {
        Reader::Sqlite(path) => {
            tasks.spawn(live::poll_file(
                path.clone(),
                live.clone(),
                health.clone(),
                shutdown.clone(),
            ));
        }
        Reader::Postgres(_) if d.notify_channel.is_empty() => health.set_ready(true),
        Reader::Postgres(_) => {
            tasks.spawn(live::listen(
                d.database_url.clone(),
                d.notify_channel.clone(),
                live.clone(),
                health.clone(),
                shutdown.clone(),
            ));
        }
    }
    let address = endpoints::serve_with(
        &d.http_address,
        config.telemetry.http_address_file.as_deref(),
        health,
        shutdown.clone(),
        &tasks,
        routes(api::Api {
            reader,
            live,
            shutdown: shutdown.clone(),
        }),
    )
    .await?;
    if let Some(address) = address {
        tracing::info!(%address, "serving the dashboard on http://{address}/");
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}
