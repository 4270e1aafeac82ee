//! The JSON API over the sink's tables. Every list has `limit` (1..=1000) and `offset`; errors
//! are a status and `{"error": "..."}`. Described in `static/openapi.json`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// Database connections.
    pub pool: Pool,
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

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        tracing::warn!(%error, "query failed");
        ApiError::Unavailable("the database did not answer".to_owned())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(%error, "no database connection");
        ApiError::Unavailable("the database is unreachable".to_owned())
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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `GET /api/sensors`: sensors with their latest event, average, last alert, counts and a
/// trend (their last `trend` averages, oldest first).
pub async fn sensors(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset", "trend"])?;
    let (limit, offset) = paging(&params)?;
    let trend = int(&params, "trend", 20, 0, 200)?;
    let db = api.pool.get().await?;
    let total: i64 = db
        .query_one("SELECT count(*) FROM sensors", &[])
        .await?
        .get(0);
    let rows = db
        .query(
            "SELECT s.sensor_id, s.last_seq, s.last_event_time, s.last_average, \
             s.last_alert_temperature, s.alert_count, s.average_count, \
             ARRAY(SELECT average FROM (SELECT average, kafka_offset FROM temperature_averages a \
                   WHERE a.sensor_id = s.sensor_id ORDER BY kafka_offset DESC LIMIT $3) t \
                   ORDER BY kafka_offset) \
             FROM sensors s ORDER BY s.sensor_id LIMIT $1 OFFSET $2",
            &[&limit, &offset, &trend],
        )
        .await?;
    let sensors: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "sensor_id": r.get::<_, String>(0),
                "last_seq": r.get::<_, i64>(1),
                "last_event_time": rfc3339(r.get(2)),
                "last_average": r.get::<_, Option<f64>>(3),
                "last_alert_temperature": r.get::<_, Option<f64>>(4),
                "alert_count": r.get::<_, i64>(5),
                "average_count": r.get::<_, i64>(6),
                "trend": r.get::<_, Vec<f64>>(7),
            })
        })
        .collect();
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
    let db = api.pool.get().await?;
    let known = db
        .query_opt("SELECT 1 FROM sensors WHERE sensor_id = $1", &[&sensor_id])
        .await?;
    if known.is_none() {
        return Err(ApiError::NotFound(format!("no sensor {sensor_id:?}")));
    }
    let rows = db
        .query(
            "SELECT seq, average, window_size, event_time FROM temperature_averages \
             WHERE sensor_id = $1 ORDER BY kafka_offset DESC LIMIT $2 OFFSET $3",
            &[&sensor_id, &limit, &offset],
        )
        .await?;
    let averages: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "seq": r.get::<_, i64>(0),
                "average": r.get::<_, f64>(1),
                "window_size": r.get::<_, i32>(2),
                "timestamp": rfc3339(r.get(3)),
            })
        })
        .collect();
    Ok(Json(json!({
        "sensor_id": sensor_id, "limit": limit, "offset": offset, "averages": averages
    })))
}

/// `GET /api/alerts`: recent alerts, newest event time first; `sensor` filters.
pub async fn alerts(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset", "sensor"])?;
    let (limit, offset) = paging(&params)?;
    let sensor = params.get("sensor").cloned();
    let db = api.pool.get().await?;
    let rows = db
        .query(
            "SELECT sensor_id, seq, temperature, threshold, event_time FROM temperature_alerts \
             WHERE $3::text IS NULL OR sensor_id = $3 \
             ORDER BY event_time DESC, kafka_partition DESC, kafka_offset DESC \
             LIMIT $1 OFFSET $2",
            &[&limit, &offset, &sensor],
        )
        .await?;
    let alerts: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "sensor_id": r.get::<_, String>(0),
                "seq": r.get::<_, i64>(1),
                "temperature": r.get::<_, f64>(2),
                "threshold": r.get::<_, f64>(3),
                "timestamp": rfc3339(r.get(4)),
            })
        })
        .collect();
    Ok(Json(
        json!({ "limit": limit, "offset": offset, "alerts": alerts }),
    ))
}

/// `GET /api/ip/windows`: the latest windows with counts, newest first: start, end, addresses
/// and requests.
pub async fn ip_windows(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["limit", "offset"])?;
    let (limit, offset) = paging(&params)?;
    let db = api.pool.get().await?;
    // DISTINCT over the (window_start DESC, ...) index stops after `limit + offset` windows.
    let rows = db
        .query(
            "WITH w AS (SELECT DISTINCT window_start FROM ip_counts \
                        ORDER BY window_start DESC LIMIT $1 OFFSET $2) \
             SELECT w.window_start, max(c.window_end), count(*), sum(c.count)::int8 \
             FROM w JOIN ip_counts c ON c.window_start = w.window_start \
             GROUP BY w.window_start ORDER BY w.window_start DESC",
            &[&limit, &offset],
        )
        .await?;
    let windows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "window_start": rfc3339(r.get(0)),
                "window_end": rfc3339(r.get(1)),
                "addresses": r.get::<_, i64>(2),
                "requests": r.get::<_, i64>(3),
            })
        })
        .collect();
    Ok(Json(
        json!({ "limit": limit, "offset": offset, "windows": windows }),
    ))
}

/// `GET /api/ip/top`: the `n` addresses with the most requests in one window (`window`: its
/// start, RFC 3339, or `latest`), ties by address.
pub async fn ip_top(State(api): State<Api>, params: Params) -> Result<Json<Value>, ApiError> {
    only(&params, &["window", "n"])?;
    let n = int(&params, "n", 10, 1, 1000)?;
    let db = api.pool.get().await?;
    let window = match params.get("window").map(String::as_str) {
        None | Some("latest") => {
            let latest: Option<OffsetDateTime> = db
                .query_one("SELECT max(window_start) FROM ip_counts", &[])
                .await?
                .get(0);
            latest.ok_or_else(|| ApiError::NotFound("no window has counts yet".to_owned()))?
        }
        Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            ApiError::BadRequest(format!(
                "window must be \"latest\" or an RFC 3339 time, not {text:?}"
            ))
        })?,
    };
    let rows = db
        .query(
            "SELECT host(ip), count, window_end FROM ip_counts WHERE window_start = $1 \
             ORDER BY count DESC, ip LIMIT $2",
            &[&window, &n],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Err(ApiError::NotFound(format!(
            "no counts for the window starting {}",
            rfc3339(window)
        )));
    };
    let top: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "ip": r.get::<_, String>(0), "count": r.get::<_, i64>(1) }))
        .collect();
    Ok(Json(json!({
        "window_start": rfc3339(window),
        "window_end": rfc3339(first.get(2)),
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
    let db = api.pool.get().await?;
    let rows = db
        .query(
            "WITH w AS (SELECT DISTINCT window_start FROM ip_counts \
                        ORDER BY window_start DESC LIMIT $1) \
             SELECT host(ip), sum(count)::int8 AS requests FROM ip_counts \
             WHERE window_start IN (SELECT window_start FROM w) \
             GROUP BY ip ORDER BY requests DESC, ip LIMIT $2",
            &[&windows, &n],
        )
        .await?;
    let top: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "ip": r.get::<_, String>(0), "count": r.get::<_, i64>(1) }))
        .collect();
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
