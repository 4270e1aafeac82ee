use std::io::Write;

use super::*;

fn text(lines: &Lines) -> Vec<&str> {
    lines
        .lines
        .iter()
        .map(|l| std::str::from_utf8(l).expect("utf-8"))
        .collect()
}

#[test]
fn text_bodies_split_on_newlines_with_crlf_and_a_last_line_without_one() {
    let body = Bytes::from_static(b"a 1\r\nb 2\n\n\r\nc 3");
    let lines = split(&body, Format::Text, 100).expect("valid");
    assert_eq!(text(&lines), ["a 1", "b 2", "c 3"]);
    assert_eq!(lines.empty, 2);
    // Lines are slices of the body, not copies.
    assert_eq!(lines.lines[0].as_ptr(), body.as_ptr());
}

#[test]
fn json_lines_take_the_line_field_unescaped_and_ignore_the_others() {
    let body = Bytes::from_static(
        b"{\"line\":\"GET /\",\"host\":\"web-1\"}\n{\"ts\":1,\"line\":\"say \\\"hi\\\" \\u00e9\"}\n{\"line\":\"\"}\n",
    );
    let lines = split(&body, Format::JsonLines, 100).expect("valid");
    assert_eq!(text(&lines), ["GET /", "say \"hi\" é"]);
    assert_eq!(lines.empty, 1);
}

#[test]
fn the_first_bad_line_is_named_and_nothing_is_taken() {
    let body = Bytes::from_static(b"{\"line\":\"ok\"}\n\n{\"msg\":\"no line\"}\nnot json\n");
    let error = split(&body, Format::JsonLines, 100).unwrap_err();
    assert_eq!(error.number, 3);
    assert!(error.reason.contains("\"line\""), "{error}");
    assert!(
        error.to_string().starts_with("line 3: not a JSON object"),
        "{error}"
    );

    let body = Bytes::from(format!("short\n{}\n", "x".repeat(11)));
    let error = split(&body, Format::Text, 10).unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 2: 11 bytes, longer than gateway.max_line_bytes (10); nothing was written"
    );
}

#[test]
fn gzip_bodies_are_inflated_within_the_limit_and_bad_ones_refused() {
    let plain = b"one\ntwo\n".repeat(1000);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&plain).expect("compress");
    let gz = encoder.finish().expect("compress");
    assert_eq!(
        gunzip(&gz, plain.len()).expect("valid").as_deref(),
        Some(&plain[..])
    );
    // One byte over the limit after inflating: refused, however small the body.
    assert_eq!(gunzip(&gz, plain.len() - 1).expect("valid"), None);
    assert!(gunzip(b"not gzip at all", 1000).is_err());
}

#[test]
fn json_content_types_are_recognised_with_parameters() {
    for kind in [
        "application/x-ndjson",
        "application/json; charset=utf-8",
        "application/jsonl",
    ] {
        assert!(is_json(kind), "{kind}");
    }
    for kind in ["text/plain", "application/octet-stream", ""] {
        assert!(!is_json(kind), "{kind}");
    }
}
