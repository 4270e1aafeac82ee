use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const RECEIVED: OffsetDateTime = datetime!(2026-10-12 08:00:00 UTC);

#[test]
fn rfc_5424_examples_give_their_time_host_app_and_message() {
    // RFC 5424, 6.5, examples 1, 2 and 3 (the BOM written as its bytes).
    let one = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";
    assert_eq!(
        parse(one, RECEIVED),
        Ok(Message {
            time_ms: Some(1_065_910_455_003),
            host: Some("mymachine.example.com"),
            app: Some("su"),
            body: b"'su root' failed for lonvick on /dev/pts/8",
        })
    );
    let two = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.";
    let two = parse(two, RECEIVED).expect("RFC 5424");
    assert_eq!(two.time_ms, Some(1_061_727_255_000), "05:14 at -07:00");
    assert_eq!((two.host, two.app), (Some("192.0.2.1"), Some("myproc")));
    assert_eq!(two.body, b"%% It's time to make the do-nuts.");
    let three = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry from 10.0.0.1"#;
    let three = parse(three, RECEIVED).expect("RFC 5424");
    assert_eq!(three.app, Some("evntslog"));
    assert_eq!(three.body, b"An application event log entry from 10.0.0.1");
    // Escaped quote and bracket inside a value; no message; every NILVALUE.
    let escaped = br#"<13>1 - - - - - [a@1 v="x\"]\\" w="]"]"#;
    assert_eq!(
        parse(escaped, RECEIVED),
        Ok(Message {
            time_ms: None,
            host: None,
            app: None,
            body: b"",
        })
    );
}

#[test]
fn rfc_3164_messages_take_the_year_nearest_to_their_receipt() {
    let bsd = b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8";
    assert_eq!(
        parse(bsd, RECEIVED),
        Ok(Message {
            time_ms: Some(1_791_756_855_000),
            host: Some("mymachine"),
            app: Some("su"),
            body: b"su: 'su root' failed for lonvick on /dev/pts/8",
        })
    );
    // Sent on New Year's Eve, read just after midnight: last year.
    let late = b"<13>Dec 31 23:59:59 host sshd[42]: accepted from 198.51.100.7";
    let read = parse(late, datetime!(2027-01-01 00:00:05 UTC)).expect("RFC 3164");
    assert_eq!(read.time_ms, Some(1_798_761_599_000));
    assert_eq!(read.app, Some("sshd"));
    // A space-padded day.
    let padded = parse(
        b"<13>Feb  5 01:02:03 h x",
        datetime!(2026-02-05 02:00:00 UTC),
    );
    assert_eq!(padded.expect("RFC 3164").time_ms, Some(1_770_253_323_000));
}

#[test]
fn other_text_after_a_priority_is_kept_whole_and_no_priority_is_an_error() {
    assert_eq!(
        parse(b"<13>client 192.0.2.1 said hello", RECEIVED),
        Ok(Message {
            time_ms: None,
            host: None,
            app: None,
            body: b"client 192.0.2.1 said hello",
        })
    );
    for bad in [
        &b"no priority"[..],
        b"<192>1 - - - - - -",
        b"<>x",
        b"<013>x",
        b"<1234>x",
    ] {
        assert_eq!(parse(bad, RECEIVED), Err(NotSyslog::NoPriority), "{bad:?}");
    }
    assert!(matches!(
        parse(b"<13>1 2026-13-99T00:00:00Z h a p m - x", RECEIVED),
        Err(NotSyslog::Bad5424(_))
    ));
    assert!(matches!(
        parse(b"<13>1 - h a p m [unterminated x", RECEIVED),
        Err(NotSyslog::Bad5424(_))
    ));
}

/// Every frame of `input` fed in pieces of `chunk` bytes, then the end of the stream.
fn frames(input: &[u8], chunk: usize, max: usize) -> Vec<Frame> {
    let mut framer = SyslogFramer::new(max);
    let mut buffer = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buffer.extend_from_slice(piece);
        while let Some(frame) = framer.next_frame(&mut buffer) {
            out.push(frame);
        }
    }
    out.extend(framer.finish(&mut buffer));
    out
}

fn line(text: &str) -> Frame {
    Frame::Line(Bytes::copy_from_slice(text.as_bytes()))
}

#[test]
fn octet_counted_and_newline_framed_messages_mix_and_oversize_ones_are_reported_whole() {
    let a = "<13>1 - h app - - - a message\nwith a newline inside";
    let b = "<13>Oct 11 22:14:15 h plain newline framing";
    let long = format!("<13>{}", "x".repeat(40));
    let input = format!(
        "{} {a}\n{b}\r\n{} {long}{} {a}last without newline",
        a.len(),
        long.len(),
        a.len()
    );
    assert_eq!(
        frames(input.as_bytes(), 1000, 30),
        frames(input.as_bytes(), 1, 30),
        "the pieces the bytes come in change nothing"
    );
    assert_eq!(
        frames(input.as_bytes(), 7, 60),
        vec![
            line(a),
            line(b),
            line(&long),
            line(a),
            line("last without newline")
        ]
    );
    assert_eq!(
        frames(input.as_bytes(), 7, 30)[2],
        Frame::Oversize {
            prefix: Bytes::copy_from_slice(&long.as_bytes()[..30]),
            length: long.len() as u64,
        }
    );
}

#[test]
fn a_bad_octet_count_falls_back_to_newline_framing_for_the_rest() {
    let input = b"12x <13>first\n0 <13>second\n<13>third\n";
    assert_eq!(
        frames(input, 3, 100),
        vec![
            line("12x <13>first"),
            line("0 <13>second"),
            line("<13>third")
        ]
    );
}

proptest! {
    #[test]
    fn any_chunking_of_octet_counted_messages_gives_them_back(
        messages in prop::collection::vec("<1[0-9]>[ -~]{0,40}", 1..20),
        chunk in 1usize..64,
    ) {
        let mut input = Vec::new();
        for m in &messages {
            input.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
        }
        let expected: Vec<Frame> = messages.iter().map(|m| line(m)).collect();
        prop_assert_eq!(frames(&input, chunk, 100), expected);
    }
}
