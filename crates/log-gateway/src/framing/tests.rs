use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{Frame, LineFramer};

/// The framer fed `chunks` one after another, then finished.
fn frame_chunks(max: usize, chunks: &[Vec<u8>]) -> Vec<Frame> {
    let mut framer = LineFramer::new(max);
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        while let Some(frame) = framer.next_frame(&mut buffer) {
            frames.push(frame);
        }
        assert!(
            buffer.len() <= max + 1,
            "the framer holds {} unframed bytes with a bound of {max}",
            buffer.len()
        );
    }
    frames.extend(framer.finish(&mut buffer));
    assert!(buffer.is_empty());
    frames
}

/// The specification, on the whole input at once.
fn reference(max: usize, input: &[u8]) -> Vec<Frame> {
    let mut pieces: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    // After the last `\n`: a last line only when something is there.
    let last = pieces.pop().unwrap_or_default();
    let mut lines: Vec<Vec<u8>> = pieces
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect();
    if !last.is_empty() {
        lines.push(last.to_vec());
    }
    lines
        .into_iter()
        .map(|line| {
            if line.len() > max {
                Frame::Oversize {
                    prefix: Bytes::copy_from_slice(&line[..max]),
                    length: line.len() as u64,
                }
            } else {
                Frame::Line(Bytes::from(line))
            }
        })
        .collect()
}

fn line(text: &str) -> Frame {
    Frame::Line(Bytes::copy_from_slice(text.as_bytes()))
}

#[test]
fn lines_end_at_newline_and_crlf() {
    let frames = frame_chunks(100, &[b"a\nbb\r\n\nccc".to_vec()]);
    assert_eq!(frames, [line("a"), line("bb"), line(""), line("ccc")]);
}

#[test]
fn a_line_split_across_reads_is_one_line() {
    let frames = frame_chunks(
        100,
        &[b"GET /in".to_vec(), b"dex\r".to_vec(), b"\nx\n".to_vec()],
    );
    assert_eq!(frames, [line("GET /index"), line("x")]);
}

#[test]
fn an_oversize_line_keeps_its_prefix_and_length_and_the_next_line_follows() {
    let long = "x".repeat(50);
    let input = format!("ok\n{long}\r\nnext\n");
    let frames = frame_chunks(
        8,
        &[
            input.as_bytes()[..20].to_vec(),
            input.as_bytes()[20..].to_vec(),
        ],
    );
    assert_eq!(
        frames,
        [
            line("ok"),
            Frame::Oversize {
                prefix: Bytes::from("xxxxxxxx"),
                length: 50
            },
            line("next")
        ]
    );
}

#[test]
fn a_line_of_exactly_the_bound_with_crlf_is_a_line() {
    // The `\r` arrives alone, then the `\n`.
    let frames = frame_chunks(4, &[b"abcd\r".to_vec(), b"\n".to_vec()]);
    assert_eq!(frames, [line("abcd")]);
}

#[test]
fn an_oversize_last_line_without_newline_is_reported_at_the_end() {
    let frames = frame_chunks(3, &[b"abcdefgh".to_vec(), b"ij".to_vec()]);
    assert_eq!(
        frames,
        [Frame::Oversize {
            prefix: Bytes::from("abc"),
            length: 10
        }]
    );
}

fn input_and_chunks() -> impl Strategy<Value = (usize, Vec<u8>, Vec<usize>)> {
    let piece = prop_oneof![
        4 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'.'), any::<u8>()], 0..40),
        1 => Just(b"\r\n".to_vec()),
        2 => Just(b"\n".to_vec()),
    ];
    (
        1usize..24,
        proptest::collection::vec(piece, 0..30).prop_map(|p| p.concat()),
        proptest::collection::vec(1usize..30, 1..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Whatever the chunking, the frames are those of the whole input split at once: nothing
    /// lost, nothing cut silently, and the buffer stays bounded.
    #[test]
    fn any_chunking_gives_the_reference_frames((max, input, cuts) in input_and_chunks()) {
        let mut chunks = Vec::new();
        let mut rest = input.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
            chunks.push(chunk.to_vec());
            rest = tail;
        }
        prop_assert_eq!(frame_chunks(max, &chunks), reference(max, &input));
    }
}
