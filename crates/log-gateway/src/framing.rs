//! Newline framing of a byte stream, with a bound on line length that never cuts silently.
//!
//! A line ends at `\n`; a `\r` just before it belongs to the line ending (`\r\n`). A line longer
//! than the bound is not split into pieces: its first `max_line_bytes` bytes are kept, the rest
//! is skipped up to its end, and it comes out as [`Frame::Oversize`] with its full length, so
//! the gateway can dead-letter it and carry on with the next line. Bytes after the last `\n`
//! when the connection ends form a last line (shippers may not end their last line).

use bytes::{Buf, Bytes, BytesMut};

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A line, without its line ending.
    Line(Bytes),
    /// A line longer than the bound: its first `max_line_bytes` bytes and its whole length
    /// (without the line ending).
    Oversize { prefix: Bytes, length: u64 },
}

/// Splits a connection's bytes into frames. Feed it by appending to a buffer, then take frames
/// with [`LineFramer::next_frame`] until it returns `None`; at the end of the stream call
/// [`LineFramer::finish`].
#[derive(Debug)]
pub struct LineFramer {
    max_line_bytes: usize,
    /// Bytes of the buffer already searched for `\n`.
    scanned: usize,
    /// Skipping the rest of an oversize line.
    skipping: Option<Skipping>,
}

#[derive(Debug)]
struct Skipping {
    prefix: Bytes,
    /// Bytes of the line so far, including a trailing `\r` that may turn out to be the line
    /// ending's.
    length: u64,
    ends_with_cr: bool,
}

impl Skipping {
    fn frame(self) -> Frame {
        Frame::Oversize {
            prefix: self.prefix,
            length: self.length - u64::from(self.ends_with_cr),
        }
    }
}

impl LineFramer {
    /// A framer for lines of at most `max_line_bytes` bytes (at least 1).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes: max_line_bytes.max(1),
            scanned: 0,
            skipping: None,
        }
    }

    /// The next complete frame in `buffer`, consuming its bytes; `None` when more input is
    /// needed. Keeps at most `max_line_bytes + 1` unframed bytes in `buffer`.
    pub fn next_frame(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        loop {
            if let Some(skipping) = &mut self.skipping {
                match memchr::memchr(b'\n', buffer) {
                    Some(end) => {
                        if end > 0 {
                            skipping.length += end as u64;
                            skipping.ends_with_cr = buffer[end - 1] == b'\r';
                        }
                        buffer.advance(end + 1);
                        return self.skipping.take().map(Skipping::frame);
                    }
                    None => {
                        if let Some(&last) = buffer.last() {
                            skipping.length += buffer.len() as u64;
                            skipping.ends_with_cr = last == b'\r';
                        }
                        buffer.clear();
                        return None;
                    }
                }
            }
            match memchr::memchr(b'\n', &buffer[self.scanned..]) {
                Some(at) => {
                    let end = self.scanned + at;
                    self.scanned = 0;
                    let mut line = buffer.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    return Some(self.bounded(line));
                }
                // One byte of slack: a line of exactly the bound may wait for its `\n` after
                // its `\r`.
                None if buffer.len() > self.max_line_bytes + 1 => {
                    let prefix = buffer.split_to(self.max_line_bytes).freeze();
                    self.skipping = Some(Skipping {
                        prefix,
                        length: self.max_line_bytes as u64,
                        ends_with_cr: false,
                    });
                    self.scanned = 0;
                }
                None => {
                    self.scanned = buffer.len();
                    return None;
                }
            }
        }
    }

    /// The last frame at the end of the stream: an oversize line being skipped, or the bytes
    /// after the last `\n` (none if empty).
    pub fn finish(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        self.scanned = 0;
        if let Some(skipping) = self.skipping.take() {
            buffer.clear();
            return Some(Frame::Oversize {
                prefix: skipping.prefix,
                length: skipping.length,
            });
        }
        if buffer.is_empty() {
            return None;
        }
        let line = buffer.split();
        Some(self.bounded(line))
    }

    fn bounded(&self, mut line: BytesMut) -> Frame {
        if line.len() > self.max_line_bytes {
            let length = line.len() as u64;
            line.truncate(self.max_line_bytes);
            Frame::Oversize {
                prefix: line.freeze(),
                length,
            }
        } else {
            Frame::Line(line.freeze())
        }
    }
}

#[cfg(test)]
mod tests;
