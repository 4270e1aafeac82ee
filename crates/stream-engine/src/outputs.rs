//! The records a batch emits, collected back to back in one buffer: no allocation per record.

use std::ops::Range;

/// One emitted record, by position in [`Outputs`]' buffer.
#[derive(Debug, Clone)]
struct Output {
    topic: usize,
    key: Range<usize>,
    value: Range<usize>,
    kind: &'static str,
}

/// An emitted record, as the engine produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRecord<'a> {
    /// Index into the engine's output topics.
    pub topic: usize,
    /// The record key.
    pub key: &'a [u8],
    /// The record value.
    pub value: &'a [u8],
    /// What kind of record it is: the `type` label of the produced-records metric, and the
    /// value of the kind header when the engine is given one.
    pub kind: &'static str,
}

/// Records emitted by a job, in order.
#[derive(Debug, Default)]
pub struct Outputs {
    bytes: Vec<u8>,
    records: Vec<Output>,
}

impl Outputs {
    /// Emits a record to output topic `topic` with `key`; `write_value` appends its value.
    pub fn emit(
        &mut self,
        topic: usize,
        key: &[u8],
        kind: &'static str,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        write_value(&mut self.bytes);
        self.records.push(Output {
            topic,
            key: start..key_end,
            value: key_end..self.bytes.len(),
            kind,
        });
    }

    /// The records emitted since the last [`Outputs::clear`], in order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = OutputRecord<'_>> {
        self.records.iter().map(|o| OutputRecord {
            topic: o.topic,
            key: &self.bytes[o.key.clone()],
            value: &self.bytes[o.value.clone()],
            kind: o.kind,
        })
    }

    /// Records emitted.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none was emitted.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets the records emitted after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        if let Some(first) = self.records.get(len) {
            self.bytes.truncate(first.key.start);
            self.records.truncate(len);
        }
    }

    /// Forgets every record, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order() {
        let mut out = Outputs::default();
        out.emit(0, b"k1", "a", |v| v.extend_from_slice(b"one"));
        out.emit(1, b"", "b", |v| v.extend_from_slice(b"two"));
        out.emit(0, b"k3", "a", |_| {});
        let got: Vec<_> = out
            .records()
            .map(|r| (r.topic, r.key, r.value, r.kind))
            .collect();
        assert_eq!(
            got,
            [
                (0, &b"k1"[..], &b"one"[..], "a"),
                (1, &b""[..], &b"two"[..], "b"),
                (0, &b"k3"[..], &b""[..], "a"),
            ]
        );
        out.clear();
        assert!(out.is_empty());
    }
}
