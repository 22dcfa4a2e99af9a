//! A plugin's outbound allow-list entries (`allowed_hosts`, `internal_hosts`) and the
//! internal-address ranges every resolved address is checked against.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// One entry of a plugin's `allowed_hosts`: `host`, `host:port`, `*.domain` or
/// `*.domain:port`. Without a port only the scheme's default port (80, 443) matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    pattern: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// A host name (lower-case) or an IP literal (no brackets).
    Exact(String),
    /// `*.example.com`: any subdomain of `example.com`, not `example.com` itself.
    Subdomains(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid allowed host {raw:?}: {reason}")]
pub struct AllowedHostError {
    pub raw: String,
    pub reason: &'static str,
}

impl AllowedHost {
    pub fn parse(raw: &str) -> Result<Self, AllowedHostError> {
        let err = |reason| AllowedHostError {
            raw: raw.to_string(),
            reason,
        };
        let s = raw.trim().to_ascii_lowercase();
        if s.contains("://") {
            return Err(err("write host[:port] without a scheme"));
        }
        if s.contains('/') || s.contains('@') || s.contains('?') {
            return Err(err("write host[:port] without a path or credentials"));
        }
        let (host, port) = split_host_port(&s).ok_or_else(|| err("bad port"))?;
        let pattern = if let Some(domain) = host.strip_prefix("*.") {
            if !is_dns_name(domain) || !domain.contains('.') && domain != "localhost" {
                return Err(err(
                    "a wildcard needs a domain with at least two labels, like *.example.com",
                ));
            }
            HostPattern::Subdomains(domain.to_string())
        } else if host.parse::<IpAddr>().is_ok() || is_dns_name(host) {
            HostPattern::Exact(host.to_string())
        } else {
            return Err(err("not a host name or IP address"));
        };
        Ok(Self { pattern, port })
    }

    pub fn pattern(&self) -> &HostPattern {
        &self.pattern
    }

    /// Whether a request to `host:port` (host lower-case, IPv6 without brackets) matches.
    pub fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        let port_ok = self.port.unwrap_or(default_port) == port;
        port_ok && self.matches_host(host)
    }

    /// Whether the host part matches, whatever the port.
    pub fn matches_host(&self, host: &str) -> bool {
        match &self.pattern {
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(domain) => {
                host.parse::<IpAddr>().is_err()
                    && host.len() > domain.len() + 1
                    && host.ends_with(domain.as_str())
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
        }
    }

    /// Whether the entry names one host (a name or an IP literal), not a wildcard.
    pub fn is_exact(&self) -> bool {
        matches!(self.pattern, HostPattern::Exact(_))
    }

    /// Whether the entry is an IP literal: the only kind of `allowed_hosts` entry that
    /// may reach an internal address, because no DNS answer is involved.
    pub fn is_ip_literal(&self) -> bool {
        matches!(&self.pattern, HostPattern::Exact(h) if h.parse::<IpAddr>().is_ok())
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            HostPattern::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostPattern::Exact(h) => f.write_str(h)?,
            HostPattern::Subdomains(d) => write!(f, "*.{d}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for AllowedHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        AllowedHost::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when a port is present but invalid.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if s.parse::<IpAddr>().is_ok() {
        return Some((s, None));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok().filter(|p| *p != 0)?))),
        None => Some((s, None)),
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Addresses a plugin may reach only through an IP-literal `allowed_hosts` entry or an
/// `internal_hosts` entry: loopback, private, link-local (cloud metadata at
/// 169.254.169.254), CGNAT, unique-local, unspecified, multicast, documentation and
/// reserved ranges, and every IPv6 form that embeds or translates to an IPv4 address
/// (NAT64, IPv4-compatible, 6to4, Teredo): a name resolving to one of those could reach
/// an internal IPv4 host through a translator.
pub fn is_internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 CGNAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
                || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 192.88.99.0/24 6to4 relay anycast
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // ::ffff:a.b.c.d (IPv4-mapped) and ::ffff:0:a.b.c.d (IPv4-translated) are
            // that IPv4 address: judge the embedded one.
            let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
            let translated = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0;
            if mapped || translated {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_internal_address(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
            }
            v6.is_multicast()
                || s[..6] == [0; 6] // ::/96 IPv4-compatible (also :: and ::1)
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4]) // 64:ff9b::/96 NAT64
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // 64:ff9b:1::/48 local NAT64
                || (s[0] == 0x0100 && s[1..4] == [0; 3]) // 100::/64 discard-only
                || (s[0] == 0x2001 && s[1] == 0x0000) // 2001::/32 Teredo
                || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
                || s[0] == 0x2002 // 2002::/16 6to4
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
                || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 deprecated site local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let h = AllowedHost::parse("api.stripe.com").unwrap();
        assert!(h.matches("api.stripe.com", 443, 443));
        assert!(!h.matches("api.stripe.com", 8443, 443));
        assert!(!h.matches("evil-api.stripe.com", 443, 443));

        let p = AllowedHost::parse("127.0.0.1:9000").unwrap();
        assert!(p.matches("127.0.0.1", 9000, 80));
        assert!(!p.matches("127.0.0.1", 9001, 80));

        let v6 = AllowedHost::parse("[::1]:8080").unwrap();
        assert!(v6.matches("::1", 8080, 80));
        assert_eq!(v6.to_string(), "[::1]:8080");

        let w = AllowedHost::parse("*.example.com").unwrap();
        assert!(w.matches("api.example.com", 443, 443));
        assert!(w.matches("a.b.example.com", 443, 443));
        assert!(!w.matches("example.com", 443, 443));
        assert!(!w.matches("badexample.com", 443, 443));
        assert!(!w.is_exact());
        assert!(p.is_ip_literal() && v6.is_ip_literal());
        assert!(!h.is_ip_literal() && !w.is_ip_literal());
    }

    #[test]
    fn rejects_what_is_not_a_host() {
        for bad in [
            "https://api.stripe.com",
            "api.stripe.com/v1",
            "user@host",
            "host:0",
            "host:99999",
            "*",
            "*.com",
            "exa mple.com",
            "",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn knows_internal_ranges() {
        // (range, an address inside it) — one line per range.
        for (range, ip) in [
            ("127.0.0.0/8 loopback", "127.0.0.1"),
            ("10.0.0.0/8 private", "10.1.2.3"),
            ("172.16.0.0/12 private", "172.31.255.254"),
            ("192.168.0.0/16 private", "192.168.1.1"),
            ("169.254.0.0/16 link local, cloud metadata", "169.254.169.254"),
            ("100.64.0.0/10 CGNAT", "100.127.0.1"),
            ("0.0.0.0/8", "0.0.0.0"),
            ("192.0.0.0/24 IETF protocol assignments", "192.0.0.170"),
            ("192.88.99.0/24 6to4 relay", "192.88.99.1"),
            ("198.18.0.0/15 benchmarking", "198.19.0.1"),
            ("192.0.2.0/24 documentation", "192.0.2.1"),
            ("224.0.0.0/4 multicast", "239.1.1.1"),
            ("240.0.0.0/4 reserved and broadcast", "255.255.255.255"),
            ("::1 loopback", "::1"),
            (":: unspecified", "::"),
            ("::/96 IPv4-compatible", "::7f00:1"),
            ("::/96 IPv4-compatible, public v4", "::808:808"),
            ("::ffff:0:0/96 IPv4-mapped loopback", "::ffff:127.0.0.1"),
            ("::ffff:0:0/96 IPv4-mapped metadata", "::ffff:169.254.169.254"),
            ("::ffff:0:0:0/96 IPv4-translated", "::ffff:0:10.0.0.1"),
            ("64:ff9b::/96 NAT64", "64:ff9b::a9fe:a9fe"),
            ("64:ff9b::/96 NAT64, public v4", "64:ff9b::808:808"),
            ("64:ff9b:1::/48 local NAT64", "64:ff9b:1:2::1"),
            ("100::/64 discard", "100::1"),
            ("2001::/32 Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
            ("2001:db8::/32 documentation", "2001:db8::1"),
            ("2002::/16 6to4", "2002:7f00:1::1"),
            ("fc00::/7 unique local", "fd00::1"),
            ("fe80::/10 link local", "fe80::1"),
            ("fec0::/10 site local", "fec0::1"),
            ("ff00::/8 multicast", "ff02::1"),
        ] {
            assert!(
                is_internal_address(ip.parse().unwrap()),
                "{ip} ({range}) is internal"
            );
        }
        for ip in [
            "8.8.8.8",
            "151.101.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "192.0.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b:2::1",
            "2001:4860:4860::8888",
            "2003::1",
        ] {
            assert!(!is_internal_address(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
