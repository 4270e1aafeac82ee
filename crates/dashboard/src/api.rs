//! The JSON API over the sink's tables (PostgreSQL or SQLite, through
//! [`pg_sink::store::read::Reader`]). Every list has `limit` (1..=1000) and `offset`; errors
//! are a status and `{"error": "..."}`. Described in `static/openapi.json`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use pg_sink::store::read::{Reader, rfc3339};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The results store.
    pub reader: Reader,
    /// Commits announced by pg-sink (the NOTIFY payloads).
    pub live: broadcast::Sender<String>,
    /// Ends the event streams, so that a graceful stop does not wait for open pages.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// An API error: its status and message.
#[derive(Debug)]
pub enum ApiError {
    /// A parameter is wrong (400).
    BadRequest(String),
    /// The thing asked for does not exist (404).
    NotFound(String),
    /// The database cannot answer now (503).
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        tracing::warn!("query failed: {error:#}");
        ApiError::Unavailable("the database did not answer".to_owned())
    }
}

type Params = Query<HashMap<String, String>>;

/// The integer parameter `name` in `min..=max`, or `default`.
fn int(params: &Params, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be an integer from {min} to {max}, not {text:?}"
            ))),
        },
    }
}

fn only(params: &Params, allowed: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::BadRequest(format!(
            "unknown parameter {unknown:?}; this endpoint takes {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn paging(params: &Params) -> Result<(i64, i64), ApiError> {
    Ok((
        int(params, "limit", 50, 1, 1000)?,
        int(params, "offset", 0, 0, i64::MAX)?,
    ))
}

/// `GET /api/sensors`: sensors with their latest event, average, last alert, counts and a
/// trend (their last `trend` averages, oldest first).
pub async fn sensors(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset", "trend"])?;
    let (limit, offset) = paging(&params)?;
    let trend = int(&params, "trend", 20, 0, 200)?;
    let (total, sensors) = api.reader.sensors(limit, offset, trend).await?;
    Ok(Json(
        json!({ "total": total, "limit": limit, "offset": offset, "sensors": sensors }),
    ))
}

/// `GET /api/sensors/{id}/averages`: one sensor's recent averages, newest first.
pub async fn sensor_averages(
    State(api): State<Api>,
    Path(sensor_id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset"])?;
    let (limit, offset) = paging(&params)?;
    let Some(averages) = api
        .reader
        .sensor_averages(&sensor_id, limit, offset)
        .await?
    else {
        return Err(ApiError::NotFound(format!("no sensor {sensor_id:?}")));
    };
    Ok(Json(json!({
        "sensor_id": sensor_id, "limit": limit, "offset": offset, "averages": averages
    })))
}

/// `GET /api/alerts`: recent alerts, newest event time first; `sensor` filters.
pub async fn alerts(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset", "sensor"])?;
    let (limit, offset) = paging(&params)?;
    let sensor = params.get("sensor").cloned();
    let alerts = api.reader.alerts(limit, offset, sensor).await?;
    Ok(Json(
        json!({ "limit": limit, "offset": offset, "alerts": alerts }),
    ))
}

/// `GET /api/anomalies`: the sensors' models' anomalies, newest event time first; `sensor`
/// filters.
pub async fn anomalies(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset", "sensor"])?;
    let (limit, offset) = paging(&params)?;
    let sensor = params.get("sensor").cloned();
    let anomalies = api.reader.anomalies(limit, offset, sensor).await?;
    Ok(Json(
        json!({ "limit": limit, "offset": offset, "anomalies": anomalies }),
    ))
}

/// `GET /api/sensors/{id}/predictions`: one sensor's forecasts with their intervals, newest
/// first (an empty list when its model is off or still warming up).
pub async fn sensor_predictions(
    State(api): State<Api>,
    Path(sensor_id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset"])?;
    let (limit, offset) = paging(&params)?;
    let predictions = api.reader.predictions(&sensor_id, limit, offset).await?;
    Ok(Json(json!({
        "sensor_id": sensor_id, "limit": limit, "offset": offset, "predictions": predictions
    })))
}

/// `GET /api/ip/windows`: the latest windows with counts, newest first: start, end, addresses
/// and requests.
pub async fn ip_windows(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset"])?;
    let (limit, offset) = paging(&params)?;
    let windows = api.reader.ip_windows(limit, offset).await?;
    Ok(Json(
        json!({ "limit": limit, "offset": offset, "windows": windows }),
    ))
}

/// `GET /api/ip/top`: the `n` addresses with the most requests in one window (`window`: its
/// start, RFC 3339, or `latest`), ties by address.
pub async fn ip_top(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["window", "n"])?;
    let n = int(&params, "n", 10, 1, 1000)?;
    let window = match params.get("window").map(String::as_str) {
        None | Some("latest") => api
            .reader
            .latest_window()
            .await?
            .ok_or_else(|| ApiError::NotFound("no window has counts yet".to_owned()))?,
        Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            ApiError::BadRequest(format!(
                "window must be \"latest\" or an RFC 3339 time, not {text:?}"
            ))
        })?,
    };
    let Some((end, top)) = api.reader.ip_top(window, n).await? else {
        return Err(ApiError::NotFound(format!(
            "no counts for the window starting {}",
            rfc3339(window)
        )));
    };
    Ok(Json(json!({
        "window_start": rfc3339(window),
        "window_end": rfc3339(end),
        "top": top,
    })))
}

/// `GET /api/ip/top-recent`: the `n` addresses with the most requests summed over the latest
/// `windows` windows.
pub async fn ip_top_recent(
    State(api): State<Api>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    only(&params, &["windows", "n"])?;
    let n = int(&params, "n", 10, 1, 1000)?;
    let windows = int(&params, "windows", 5, 1, 1000)?;
    let top = api.reader.ip_top_recent(windows, n).await?;
    Ok(Json(json!({ "windows": windows, "top": top })))
}

/// `GET /api/events`: server-sent events, one `results` event per transaction of new rows
/// (data: how many alerts, averages and counts it wrote), pushed when it commits.
pub async fn events(State(api): State<Api>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = api.live.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let data = match receiver.recv().await {
            Ok(payload) => payload,
            // A slow page missed some: one event says "something changed" all the same.
            Err(broadcast::error::RecvError::Lagged(_)) => "{}".to_owned(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().event("results").data(data)), receiver))
    })
    .take_until(api.shutdown.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Any other `/api/...` path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see /openapi.json".to_owned())
}
