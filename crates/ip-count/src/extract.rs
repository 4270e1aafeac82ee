//! IP addresses in a log line.
//!
//! The original's pattern, `\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`, takes `999.1.2.3` for an
//! address, and the four numbers inside `1.2.3.4.5` or `v1.2.3.4` too. The rules here:
//!
//! - A **candidate** is a maximal run of hex digits, `.` and `:` (the characters of both
//!   address forms). It must stand alone: the characters around it are not letters, digits or
//!   `_` (so `abc1.2.3.4`, `x1.2.3.4`, `1.2.3.4x` hold no address).
//! - **IPv4**: four decimal octets 0–255 joined by dots, without leading zeros (`010.1.1.1` is
//!   refused: some parsers read it as octal). `1.2.3.4.5` is no address (a version or an OID).
//!   A port is allowed (`1.2.3.4:8080`).
//! - **IPv6**: the run parses as an IPv6 address in any textual form of RFC 4291 (`::`
//!   compression, an embedded IPv4 tail), at least two colons; written in RFC 5952's canonical
//!   form. In brackets with a port (`[2001:db8::1]:443`) the brackets end the run. Zone ids
//!   (`fe80::1%eth0`) are refused with the zone (`%` is not a boundary). Times (`10:00:00`) and
//!   MAC addresses do not parse as IPv6, so they are not counted.
//! - An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) counts as its IPv4 address: the same client.
//! - One `.` or `:` at the end of a run is punctuation (`from 1.2.3.4.` or `1.2.3.4: refused`).
//! - A version after a product name is not an address: a run right after `/` that follows a
//!   letter or digit (`Chrome/120.0.0.0` in a user agent) is skipped; after `//` (a URL's host)
//!   or a `/` at the start of a path it is an address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address in `line`, in order of appearance (repeats kept: each is one occurrence).
pub fn addresses(line: &[u8]) -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if !is_run_byte(line[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && is_run_byte(line[i]) {
            i += 1;
        }
        let end = i;
        if stands_alone(line, start, end)
            && !is_product_version(line, start)
            && let Some(address) = parse_run(&line[start..end])
        {
            found.push(address);
        }
    }
    found
}

fn is_run_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b'.' || b == b':'
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'%'
}

fn stands_alone(line: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).map(|i| line[i]);
    let after = line.get(end).copied();
    !before.is_some_and(is_word_byte) && !after.is_some_and(is_word_byte)
}

/// `Name/1.2.3.4`: a product's version, not an address.
fn is_product_version(line: &[u8], start: usize) -> bool {
    start >= 2 && line[start - 1] == b'/' && line[start - 2].is_ascii_alphanumeric()
}

fn parse_run(run: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(run).ok()?;
    parse_text(text).or_else(|| {
        // One trailing `.` or `:` is punctuation.
        let trimmed = text.strip_suffix(['.', ':'])?;
        parse_text(trimmed)
    })
}

fn parse_text(text: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(text) {
        return Some(IpAddr::V4(v4));
    }
    // An IPv4 address with a port.
    if let Some((host, port)) = text.split_once(':')
        && !port.contains(':')
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && let Some(v4) = parse_ipv4(host)
    {
        return Some(IpAddr::V4(v4));
    }
    if text.bytes().filter(|b| *b == b':').count() >= 2
        && let Ok(v6) = text.parse::<Ipv6Addr>()
    {
        return Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        });
    }
    None
}

/// Four decimal octets 0–255, no leading zeros (std's parser is this strict).
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.parse::<Ipv4Addr>().ok()
}

#[cfg(test)]
mod tests;
