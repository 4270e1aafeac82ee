//! Acknowledged ingestion over HTTP: `POST /v1/logs` (`http_listen_address`).
//!
//! The body holds newline-delimited lines (`\r\n` accepted), or, with a JSON content type
//! (`application/x-ndjson`, `application/jsonl`, `application/json`), one JSON object per line
//! whose `line` field is the log line (other fields are ignored). `Content-Encoding: gzip` is
//! accepted. Each line becomes one record on `topic`, as on the TCP listener; empty lines are
//! skipped and counted.
//!
//! The answer says what happened to every line of the request:
//!
//! | status | meaning | the lines |
//! |---|---|---|
//! | 200 `{"accepted": n}` | Kafka acknowledged all `n` | written |
//! | 400 | the first bad line, by number (not JSON, no `line`, longer than `max_line_bytes`), or a bad gzip body | none written |
//! | 413 | body over `max_request_bytes` (before or after gzip), or more lines than `max_in_flight` | none written |
//! | 415 | a content encoding other than gzip | none written |
//! | 429 + `Retry-After` | no room among the records in flight within a second | none written |
//! | 503 + `Retry-After` | Kafka did not acknowledge them all within `request_timeout_secs`, or the producer failed | some may still be written |
//!
//! So a client that retries every request it did not see answered 200 may duplicate lines,
//! never lose one. Validation comes before anything is produced: a 4xx writes nothing.

use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State, connect_info::Connected};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::{IncomingStream, Listener};
use metrics::counter;
use pipeline_runtime::endpoints::Health;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::metrics as m;
use crate::sink::{Origin, RequestError, Sink};
use crate::tls::TlsServer;

/// How long a request waits for room among the records in flight before a 429.
pub const ROOM_WAIT: Duration = Duration::from_secs(1);
/// `Retry-After` of a 429, seconds.
const RETRY_BUSY: &str = "1";
/// `Retry-After` of a 503, seconds.
const RETRY_UNAVAILABLE: &str = "5";

/// What a request handler needs.
pub struct Ingest {
    pub sink: Arc<Sink>,
    pub health: Arc<Health>,
    pub max_line_bytes: usize,
    pub max_request_bytes: usize,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
}

/// The endpoint's routes.
pub fn router(ingest: Arc<Ingest>) -> Router {
    let limit = ingest.max_request_bytes;
    Router::new()
        .route("/v1/logs", post(logs))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(ingest)
}

/// A request's answer: a status and a JSON body, with `Retry-After` where retrying helps.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub retry_after: Option<&'static str>,
}

impl Answer {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": message.into() }),
            retry_after: None,
        }
    }

    fn retry(mut self, after: &'static str) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(after) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
        }
        response
    }
}

async fn logs(
    State(ingest): State<Arc<Ingest>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let answer = answer(&ingest, peer, &headers, body).await;
    counter!(m::HTTP_REQUESTS, "status" => answer.status.as_str().to_owned()).increment(1);
    if answer.status.is_server_error() {
        tracing::warn!(%peer, status = %answer.status, body = %answer.body, "request not acknowledged");
    } else if !answer.status.is_success() {
        tracing::debug!(%peer, status = %answer.status, body = %answer.body, "request refused");
    }
    answer
}

async fn answer(
    ingest: &Ingest,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let too_large = || {
        Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than gateway.max_request_bytes ({} bytes)",
                ingest.max_request_bytes
            ),
        )
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large();
        }
        Err(rejection) => return Answer::error(rejection.status(), rejection.body_text()),
    };
    let body = match header_text(headers, header::CONTENT_ENCODING).as_deref() {
        None | Some("identity") => body,
        Some("gzip" | "x-gzip") => match gunzip(&body, ingest.max_request_bytes) {
            Ok(Some(body)) => body,
            Ok(None) => return too_large(),
            Err(error) => {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid gzip: {error}"),
                );
            }
        },
        Some(other) => {
            return Answer::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding {other:?} is not supported: send gzip or none"),
            );
        }
    };
    let format = match header_text(headers, header::CONTENT_TYPE) {
        Some(kind) if is_json(&kind) => Format::JsonLines,
        _ => Format::Text,
    };
    let parsed = match split(&body, format, ingest.max_line_bytes) {
        Ok(parsed) => parsed,
        Err(bad) => return Answer::error(StatusCode::BAD_REQUEST, bad.to_string()),
    };
    counter!(m::LINES_RECEIVED).increment((parsed.lines.len() + parsed.empty) as u64);
    counter!(m::EMPTY_LINES).increment(parsed.empty as u64);
    counter!(m::BYTES_RECEIVED).increment(body.len() as u64);
    if parsed.lines.len() > ingest.max_in_flight {
        return Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} lines in one request; at most gateway.max_in_flight ({}) can be in flight",
                parsed.lines.len(),
                ingest.max_in_flight
            ),
        );
    }
    if !ingest.health.is_live() {
        return Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the Kafka producer has failed; the gateway is restarting",
        )
        .retry(RETRY_UNAVAILABLE);
    }
    let origin = Origin {
        sender: peer.to_string(),
        received_ms: crate::connection::now_ms(),
    };
    match ingest
        .sink
        .request(&parsed.lines, &origin, ROOM_WAIT, ingest.request_timeout)
        .await
    {
        Ok(accepted) => Answer {
            status: StatusCode::OK,
            body: serde_json::json!({ "accepted": accepted }),
            retry_after: None,
        },
        Err(error @ RequestError::Busy { .. }) => Answer::error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{error}: gateway.max_in_flight ({}); nothing was written, retry later", ingest.max_in_flight),
        )
        .retry(RETRY_BUSY),
        Err(RequestError::Unacknowledged) => Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Kafka did not acknowledge every line within gateway.request_timeout_secs ({} s); they may still be written, so a retry may duplicate some",
                ingest.request_timeout.as_secs_f64()
            ),
        )
        .retry(RETRY_UNAVAILABLE),
        Err(error @ RequestError::Failed { .. }) => Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{error}; the others were written, so a retry duplicates them"),
        )
        .retry(RETRY_UNAVAILABLE),
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_ascii_lowercase())
}

/// `application/x-ndjson`, `application/jsonl`, `application/json` (parameters allowed).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    matches!(
        essence,
        "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json"
    )
}

/// Decompresses a gzip body (one or more members); `None` when it would exceed `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> std::io::Result<Option<Bytes>> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)?;
    Ok((out.len() <= limit).then(|| Bytes::from(out)))
}

/// How the body holds its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per line.
    Text,
    /// One JSON object per line, its `line` field the log line.
    JsonLines,
}

/// A request's lines, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Lines {
    pub lines: Vec<Bytes>,
    /// Empty lines skipped.
    pub empty: usize,
}

/// The first line of a body that cannot be written, by its 1-based number.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {number}: {reason}; nothing was written")]
pub struct BadLine {
    pub number: usize,
    pub reason: String,
}

#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow)]
    line: std::borrow::Cow<'a, str>,
}

/// Splits `body` into its lines, checking every one before any is written.
pub fn split(body: &Bytes, format: Format, max_line_bytes: usize) -> Result<Lines, BadLine> {
    let mut lines = Vec::new();
    let mut empty = 0;
    let mut rest = &body[..];
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (mut line, next) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.is_empty() {
            empty += 1;
            continue;
        }
        let bad = |reason: String| BadLine { number, reason };
        let line = match format {
            Format::Text => body.slice_ref(line),
            Format::JsonLines => {
                let parsed: JsonLine<'_> = serde_json::from_slice(line).map_err(|e| {
                    bad(format!(
                        "not a JSON object with a string field \"line\": {e}"
                    ))
                })?;
                match parsed.line {
                    std::borrow::Cow::Borrowed(text) => body.slice_ref(text.as_bytes()),
                    std::borrow::Cow::Owned(text) => Bytes::from(text),
                }
            }
        };
        if line.len() > max_line_bytes {
            return Err(bad(format!(
                "{} bytes, longer than gateway.max_line_bytes ({max_line_bytes})",
                line.len()
            )));
        }
        if line.is_empty() {
            empty += 1;
            continue;
        }
        lines.push(line);
    }
    Ok(Lines { lines, empty })
}

/// A connection's peer, for the `sender` header.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, HttpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A stream the endpoint reads and writes: TCP, or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An accepted connection, holding its slot among `max_connections` while it lives.
pub struct Connection {
    stream: Box<dyn Stream>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The endpoint's listener: connections are accepted, counted against `max_connections` and
/// put through the TLS handshake (when on) by a task of their own, so a slow handshake holds
/// up no other client; the server takes them ready.
pub struct HttpListener {
    ready: mpsc::Receiver<(Connection, SocketAddr)>,
    local: SocketAddr,
}

impl HttpListener {
    /// Starts accepting on `listener` until `shutdown`.
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<TlsServer>>,
        connections: Arc<Semaphore>,
        max_connections: usize,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = shutdown.cancelled() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting an HTTP connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    counter!(m::CONNECTIONS_REFUSED).increment(1);
                    tracing::warn!(%peer, max_connections, "connection refused: gateway.max_connections are open");
                    continue;
                };
                counter!(m::CONNECTIONS_ACCEPTED).increment(1);
                let (tls, sender) = (tls.clone(), sender.clone());
                tokio::spawn(async move {
                    let stream: Box<dyn Stream> = match tls {
                        None => Box::new(stream),
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => Box::new(stream),
                            Err(error) => {
                                counter!(m::TLS_HANDSHAKE_FAILURES).increment(1);
                                tracing::warn!(%peer, "connection closed: {error:#}");
                                return;
                            }
                        },
                    };
                    let connection = Connection {
                        stream,
                        _slot: slot,
                    };
                    let _ = sender.send((connection, peer)).await;
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl Listener for HttpListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // Accepting has stopped (shutdown): the server's graceful shutdown ends the wait.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests;
