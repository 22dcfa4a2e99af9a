//! The client's address, as every per-IP limit (login, registration, social-login
//! start) and the session list see it: the socket peer, or behind the operator's own
//! proxies the address the outermost of them received the request from.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address, given the socket `peer` and `trusted_proxies` proxies in
/// front that each append the address they received the request from to
/// `X-Forwarded-For`.
///
/// Whatever the client sent is on the left; each trusted proxy added one entry on the
/// right (in the line it received or in a line of its own, which HTTP says is the
/// same list). So the client is the `trusted_proxies`-th entry from the right of all
/// lines joined in order, and everything left of it is the client's own text. Fewer
/// entries than that (a request that did not come through the proxies) or an entry
/// that is not an address → the peer: garbage is never trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: u8) -> IpAddr {
    forwarded(headers, trusted_proxies.into())
        .unwrap_or(peer)
        .to_canonical()
}

/// The `n`-th entry from the right, if it and the entries right of it are addresses.
fn forwarded(headers: &HeaderMap, n: usize) -> Option<IpAddr> {
    if n == 0 {
        return None;
    }
    // Bytes, not `to_str`: the client's text on the left may be anything and must not
    // make the proxies' entries unreadable. Empty list elements are no entries (RFC 9110 §5.6.1).
    let mut from_right = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty());
    let mut found = None;
    for _ in 0..n {
        found = Some(parse_entry(from_right.next()?)?);
    }
    found
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`),
/// as some proxies write it.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with_lines(lines: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(
                X_FORWARDED_FOR,
                axum::http::HeaderValue::from_bytes(line).unwrap(),
            );
        }
        h
    }

    #[test]
    fn no_trusted_proxy_means_the_peer_whatever_the_header_says() {
        let h = with_lines(&[b"203.0.113.7"]);
        assert_eq!(client_ip(PEER, &h, 0), PEER);
    }

    #[test]
    fn the_nth_entry_from_the_right_across_lines() {
        let one = |lines: &[&[u8]]| client_ip(PEER, &with_lines(lines), 1);
        assert_eq!(one(&[b"203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(one(&[b"6.6.6.6, 203.0.113.7"]), ip("203.0.113.7"));
        // The proxy added a line of its own: the client's line comes first.
        assert_eq!(one(&[b"6.6.6.6", b"203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(one(&[b"6.6.6.6,", b" , 203.0.113.7 ,"]), ip("203.0.113.7"));
        // Garbage left of the client's entry is the client's business.
        assert_eq!(
            one(&[b"\xff\xfe not, an address", b"203.0.113.7"]),
            ip("203.0.113.7")
        );

        let two = |lines: &[&[u8]]| client_ip(PEER, &with_lines(lines), 2);
        assert_eq!(two(&[b"6.6.6.6, 203.0.113.7, 10.0.0.2"]), ip("203.0.113.7"));
        assert_eq!(two(&[b"6.6.6.6, 203.0.113.7", b"10.0.0.2"]), ip("203.0.113.7"));
    }

    #[test]
    fn too_few_or_malformed_entries_fall_back_to_the_peer() {
        let one = |lines: &[&[u8]]| client_ip(PEER, &with_lines(lines), 1);
        assert_eq!(one(&[]), PEER);
        assert_eq!(one(&[b""]), PEER);
        assert_eq!(one(&[b" , "]), PEER);
        assert_eq!(one(&[b"203.0.113.7, unknown"]), PEER);
        assert_eq!(one(&[b"203.0.113.7, 203.0.113.8garbage"]), PEER);
        assert_eq!(one(&[b"203.0.113.7", b"\xff"]), PEER);
        let two = |lines: &[&[u8]]| client_ip(PEER, &with_lines(lines), 2);
        assert_eq!(two(&[b"203.0.113.7"]), PEER, "fewer entries than proxies");
        assert_eq!(two(&[b"203.0.113.7, junk"]), PEER, "a proxy's entry is junk");
    }

    #[test]
    fn ports_and_mapped_addresses_are_normalized() {
        let one = |lines: &[&[u8]]| client_ip(PEER, &with_lines(lines), 1);
        assert_eq!(one(&[b"203.0.113.7:4711"]), ip("203.0.113.7"));
        assert_eq!(one(&[b"[2001:db8::1]:4711"]), ip("2001:db8::1"));
        assert_eq!(one(&[b"::ffff:203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &HeaderMap::new(), 0), PEER);
    }
}
