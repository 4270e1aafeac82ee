use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::addresses;

fn found(line: &str) -> Vec<String> {
    addresses(line.as_bytes())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_combined_format_line_gives_its_client_and_forwarded_addresses() {
    let line = r#"203.0.113.7 - - [22/Nov/2026:10:00:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36" "198.51.100.1, 2001:db8::1, 10.0.0.2""#;
    assert_eq!(
        found(line),
        ["203.0.113.7", "198.51.100.1", "2001:db8::1", "10.0.0.2"]
    );
}

#[test]
fn what_the_original_pattern_took_for_addresses_is_not() {
    for line in [
        "999.1.2.3",
        "256.0.0.1",
        "1.2.3.4.5",
        "v1.2.3.4",
        "abc1.2.3.4",
        "1.2.3.4x",
        "1.2.3",
        "010.1.1.1",
        "Chrome/120.0.0.0",
        "10:00:00",
        "aa:bb:cc:dd:ee:ff",
        "fe80::1%eth0",
        "2026:10:00:00",
        "1.2.3.4:99999999",
    ] {
        assert_eq!(found(line), Vec::<String>::new(), "{line}");
    }
}

#[test]
fn ports_brackets_urls_and_punctuation() {
    assert_eq!(found("1.2.3.4:8080"), ["1.2.3.4"]);
    assert_eq!(found("[2001:db8::1]:443"), ["2001:db8::1"]);
    assert_eq!(found("http://192.0.2.1/x"), ["192.0.2.1"]);
    assert_eq!(found("GET /198.51.100.2 HTTP/1.1"), ["198.51.100.2"]);
    assert_eq!(found("from 1.2.3.4."), ["1.2.3.4"]);
    assert_eq!(found("peer 1.2.3.4: refused"), ["1.2.3.4"]);
    assert_eq!(
        found("ip=0.0.0.0,255.255.255.255"),
        ["0.0.0.0", "255.255.255.255"]
    );
    assert_eq!(
        found("2001:DB8:0:0:0:0:0:1"),
        ["2001:db8::1"],
        "canonical form"
    );
    assert_eq!(
        found("::ffff:192.0.2.9"),
        ["192.0.2.9"],
        "IPv4-mapped counts as IPv4"
    );
    assert_eq!(found("::1 ::"), ["::1", "::"]);
    assert_eq!(
        found("1.1.1.1 1.1.1.1"),
        ["1.1.1.1", "1.1.1.1"],
        "each occurrence"
    );
}

#[test]
fn bytes_that_are_not_utf8_around_an_address_are_boundaries() {
    let mut line = vec![0xff, b' '];
    line.extend_from_slice(b"192.0.2.3");
    line.extend_from_slice(&[b' ', 0xfe]);
    assert_eq!(addresses(&line), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))]);
}

/// An address in one of its textual forms, and what it must be found as.
fn written_address() -> impl Strategy<Value = (String, IpAddr)> {
    let v4 = any::<[u8; 4]>().prop_map(|o| {
        let a = Ipv4Addr::from(o);
        (a.to_string(), IpAddr::V4(a))
    });
    let v6 = (any::<[u16; 8]>(), 0..3u8).prop_map(|(segments, form)| {
        let a = Ipv6Addr::from(segments);
        let text = match form {
            // Full, uncompressed, upper case.
            0 => segments
                .iter()
                .map(|s| format!("{s:X}"))
                .collect::<Vec<_>>()
                .join(":"),
            // Canonical.
            1 => a.to_string(),
            // With a port, in brackets.
            _ => format!("[{a}]:8443"),
        };
        let expected = match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(a),
        };
        (text, expected)
    });
    let short_v6 = (0u16..16, any::<u16>()).prop_map(|(prefix, last)| {
        let a = Ipv6Addr::new(0x2001, 0xdb8, prefix, 0, 0, 0, 0, last);
        (a.to_string(), IpAddr::V6(a))
    });
    prop_oneof![3 => v4, 2 => v6, 1 => short_v6]
}

/// Text that holds no address.
fn filler() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET /index.html HTTP/1.1".to_owned()),
        Just("Chrome/120.0.0.0".to_owned()),
        Just("[22/Nov/2026:10:00:00 +0000]".to_owned()),
        Just("-".to_owned()),
        (256u16..1000, any::<[u8; 3]>())
            .prop_map(|(a, o)| format!("{a}.{}.{}.{}", o[0], o[1], o[2])),
        any::<[u8; 5]>().prop_map(|o| format!("{}.{}.{}.{}.{}", o[0], o[1], o[2], o[3], o[4])),
        any::<[u8; 4]>().prop_map(|o| format!("v{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        "[a-z]{1,8}",
        (0u32..100_000).prop_map(|n| n.to_string()),
    ]
}

const SEPARATORS: [&str; 7] = [" ", ", ", "\"", " (", ") ", " = ", "\t"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Addresses among text that holds none are found, all and only them, in order.
    #[test]
    fn every_address_and_nothing_else(
        parts in proptest::collection::vec(prop_oneof![
            2 => written_address().prop_map(|(t, a)| (t, Some(a))),
            3 => filler().prop_map(|t| (t, None)),
        ], 0..12),
        separators in proptest::collection::vec(0..SEPARATORS.len(), 12),
    ) {
        let mut line = String::new();
        let mut expected = Vec::new();
        for (i, (text, address)) in parts.iter().enumerate() {
            line.push_str(SEPARATORS[separators[i]]);
            line.push_str(text);
            expected.extend(*address);
        }
        prop_assert_eq!(addresses(line.as_bytes()), expected, "line: {}", line);
    }

    /// Arbitrary bytes never panic, and an IPv4 address found is written in the line as found.
    #[test]
    fn arbitrary_bytes(line in proptest::collection::vec(prop_oneof![
        any::<u8>(), Just(b'.'), Just(b':'), Just(b'1'), Just(b' ')
    ], 0..200)) {
        for address in addresses(&line) {
            if let IpAddr::V4(v4) = address {
                let text = v4.to_string();
                prop_assert!(
                    line.windows(text.len()).any(|w| w == text.as_bytes()),
                    "{} is not in {:?}", text, line
                );
            }
        }
    }
}
