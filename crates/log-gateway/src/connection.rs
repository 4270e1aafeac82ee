//! One connection: read, frame, produce, one line at a time, on a task of its own (no thread).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use metrics::counter;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::framing::{Frame, LineFramer};
use crate::metrics as m;
use crate::sink::{Origin, Sink};
use crate::syslog::{self, SyslogFramer};

/// On shutdown a connection is read until it has been quiet this long: what the sender had
/// already sent is in the socket's receive buffer and arrives at once.
const DRAIN_QUIET: Duration = Duration::from_millis(200);
const READ_CHUNK: usize = 16 * 1024;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The sender closed it.
    Closed,
    /// It sent nothing for `idle_timeout`.
    Idle,
    /// A read failed.
    Error,
    /// The gateway is stopping and the connection was drained.
    Drained,
}

/// What a connection needs from the gateway.
/// How a listener's bytes are split into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line ([`LineFramer`]).
    Lines,
    /// Syslog messages, octet-counted or newline-framed, read for their time and host
    /// ([`syslog`]).
    Syslog,
}

/// A framer of either kind.
enum Framer {
    Lines(LineFramer),
    Syslog(SyslogFramer),
}

impl Framer {
    fn next_frame(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        match self {
            Framer::Lines(f) => f.next_frame(buffer),
            Framer::Syslog(f) => f.next_frame(buffer),
        }
    }

    fn finish(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        match self {
            Framer::Lines(f) => f.finish(buffer),
            Framer::Syslog(f) => f.finish(buffer),
        }
    }
}

pub struct Connection {
    /// The connection: plain TCP, or TLS over it after the handshake.
    pub stream: Box<dyn AsyncRead + Unpin + Send + Sync>,
    /// How its bytes become records.
    pub framing: Framing,
    pub peer: SocketAddr,
    pub sink: Arc<Sink>,
    pub max_line_bytes: usize,
    pub idle_timeout: Duration,
    /// Fires on SIGTERM: drain, then close.
    pub shutdown: CancellationToken,
    /// When draining must end at the latest (set once the shutdown begins).
    pub drain_deadline: Arc<std::sync::OnceLock<Instant>>,
}

impl Connection {
    /// Reads the connection to its end; each line goes to the sink before the next read, so a
    /// sink that waits for room stops the reading.
    pub async fn serve(mut self) -> Ended {
        let sender = self.peer.to_string();
        let mut framer = match self.framing {
            Framing::Lines => Framer::Lines(LineFramer::new(self.max_line_bytes)),
            Framing::Syslog => Framer::Syslog(SyslogFramer::new(self.max_line_bytes)),
        };
        let mut buffer = BytesMut::with_capacity(READ_CHUNK);
        let mut draining = false;
        let ended = loop {
            buffer.reserve(READ_CHUNK);
            let read = if draining {
                let deadline = self
                    .drain_deadline
                    .get()
                    .copied()
                    .unwrap_or_else(Instant::now);
                let quiet = DRAIN_QUIET.min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::timeout(quiet, self.stream.read_buf(&mut buffer)).await
            } else {
                tokio::select! {
                    read = tokio::time::timeout(self.idle_timeout, self.stream.read_buf(&mut buffer)) => read,
                    _ = self.shutdown.cancelled() => {
                        draining = true;
                        continue;
                    }
                }
            };
            match read {
                Ok(Ok(0)) => break Ended::Closed,
                Ok(Ok(n)) => counter!(m::BYTES_RECEIVED).increment(n as u64),
                Ok(Err(error)) => {
                    tracing::warn!(%error, sender, "reading from a connection failed");
                    break Ended::Error;
                }
                Err(_) if draining => break Ended::Drained,
                Err(_) => break Ended::Idle,
            }
            let origin = Origin {
                sender: sender.clone(),
                received_ms: now_ms(),
            };
            while let Some(frame) = framer.next_frame(&mut buffer) {
                self.emit(frame, &origin).await;
            }
        };
        let origin = Origin {
            sender,
            received_ms: now_ms(),
        };
        if let Some(frame) = framer.finish(&mut buffer) {
            self.emit(frame, &origin).await;
        }
        ended
    }

    async fn emit(&self, frame: Frame, origin: &Origin) {
        counter!(m::LINES_RECEIVED).increment(1);
        match frame {
            // An empty line carries nothing to count: skipped and counted, as shippers do,
            // rather than dead-lettered downstream.
            Frame::Line(line) if line.is_empty() => counter!(m::EMPTY_LINES).increment(1),
            Frame::Line(line) if self.framing == Framing::Lines => {
                self.sink.line(&line, origin).await
            }
            Frame::Line(frame) => {
                let received = time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(origin.received_ms) * 1_000_000,
                )
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                match syslog::parse(&frame, received) {
                    Ok(message) => self.sink.syslog(&frame, &message, origin).await,
                    Err(error) => {
                        counter!(m::NOT_SYSLOG).increment(1);
                        self.sink
                            .not_syslog(&frame, &error.to_string(), origin)
                            .await;
                    }
                }
            }
            Frame::Oversize { prefix, length } => {
                counter!(m::OVERSIZE_LINES).increment(1);
                tracing::warn!(
                    sender = origin.sender,
                    length,
                    max_line_bytes = self.max_line_bytes,
                    "line longer than gateway.max_line_bytes: dead-lettered"
                );
                self.sink.oversize(&prefix, length, origin).await;
            }
        }
    }
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
