use std::fmt;
use std::net::IpAddr;

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

    /// Exact entries name their host explicitly, so they may point at loopback or
    /// private addresses; wildcard entries never can.
    pub fn is_exact(&self) -> bool {
        matches!(self.pattern, HostPattern::Exact(_))
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

/// Addresses a plugin may reach only through an exact allow-list entry: loopback,
/// private, link-local, CGNAT, unique-local, unspecified, multicast, documentation.
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
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_address(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (seg0 & 0xffc0) == 0xfe80 // fe80::/10 link local
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
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
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal_address(ip.parse().unwrap()), "{ip} is internal");
        }
        for ip in ["8.8.8.8", "151.101.1.1", "2606:4700::1111"] {
            assert!(!is_internal_address(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
