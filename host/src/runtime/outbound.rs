//! Outbound HTTP for plugins: only to hosts on the plugin's allow-list, within the
//! plugin's deadline, with a response size cap. One client (and connection pool) per
//! plugin. Internal addresses (loopback, private, link-local, …) are reachable only
//! through an IP-literal `allowed_hosts` entry or a name on `internal_hosts`: a host
//! name on `allowed_hosts` is answered by someone else's DNS, which must not be able to
//! point it at 169.254.169.254 or our own loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::bindings::{GuestError, HttpResponse, OutboundRequest};
use crate::domain::{is_internal_address, AllowedHost};

/// A plugin's outbound HTTP capability.
#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    policy: Arc<Policy>,
}

struct Policy {
    allowed: Vec<AllowedHost>,
    /// Exact names (or IP literals) that may resolve to internal addresses.
    internal: Vec<AllowedHost>,
}

/// Why a resolved name was refused (surfaced through reqwest's error chain).
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to internal addresses; list it in internal_hosts to allow that")]
struct InternalAddressRefused(String);

impl Policy {
    /// The scheme's default port, the port used, and the lower-case host (no brackets).
    fn check(&self, url: &reqwest::Url) -> Result<(), GuestError> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(GuestError::Invalid(format!("unsupported URL scheme {scheme:?}")));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(GuestError::Invalid("URL has no host".into())),
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = url.port().unwrap_or(default_port);
        let listed = |a: &AllowedHost| a.matches(&host, port, default_port);
        if self.allowed.iter().any(listed) || self.internal.iter().any(listed) {
            Ok(())
        } else {
            Err(GuestError::Denied(format!(
                "{host}:{port} is not on this plugin's allowed_hosts"
            )))
        }
    }

    /// Whether this name is on `internal_hosts` (so internal addresses are fine). The
    /// config refuses a name on both lists, so the port does not matter here.
    fn may_resolve_internally(&self, host: &str) -> bool {
        self.internal.iter().any(|a| a.matches_host(host))
    }
}

/// Resolves names with the system resolver, then drops internal addresses unless the
/// name is on `internal_hosts`. The connector dials exactly the addresses returned here
/// (no second lookup between check and connect), which closes the DNS-rebinding gap;
/// IP literals never reach the resolver and were matched against the lists as written.
struct PolicyResolver {
    policy: Arc<Policy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allow_internal = policy.may_resolve_internally(&host);
            let kept: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allow_internal || !is_internal_address(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(
                    Box::new(InternalAddressRefused(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

impl OutboundClient {
    pub fn new(allowed: Vec<AllowedHost>, internal: Vec<AllowedHost>) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(Policy { allowed, internal });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }

    /// Sends `req` if the policy allows it, giving up at `deadline`, reading at most
    /// `max_body` bytes of the response.
    pub async fn send(
        &self,
        req: OutboundRequest,
        deadline: Instant,
        max_body: u64,
    ) -> Result<HttpResponse, GuestError> {
        let url = reqwest::Url::parse(&req.url).map_err(|e| GuestError::Invalid(format!("bad URL: {e}")))?;
        self.policy.check(&url)?;
        // IP literals skip the resolver: only an entry naming that IP can have matched.
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| GuestError::Invalid(format!("bad method {:?}", req.method)))?;
        let mut timeout = deadline.saturating_duration_since(Instant::now());
        if let Some(ms) = req.timeout_ms {
            timeout = timeout.min(Duration::from_millis(ms.into()));
        }
        if timeout.is_zero() {
            return Err(GuestError::Timeout("plugin deadline reached".into()));
        }
        let mut builder = self.client.request(method, url).timeout(timeout);
        for (name, value) in &req.headers {
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host"
                    | "connection"
                    | "transfer-encoding"
                    | "content-length"
                    | "upgrade"
                    | "te"
                    | "trailer"
                    | "keep-alive"
                    | "proxy-connection"
            ) {
                continue;
            }
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| GuestError::Invalid(format!("bad header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| GuestError::Invalid(format!("bad value for header {name}")))?;
            builder = builder.header(name, value);
        }
        if !req.body.is_empty() {
            builder = builder.body(req.body);
        }
        let fetch = async {
            let resp = builder.send().await.map_err(map_send_error)?;
            let status = resp.status().as_u16();
            if resp.content_length().is_some_and(|len| len > max_body) {
                return Err(too_big(max_body));
            }
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(map_send_error)?;
                if body.len() as u64 + chunk.len() as u64 > max_body {
                    return Err(too_big(max_body));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(GuestError::Timeout(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

fn too_big(max: u64) -> GuestError {
    GuestError::LimitExceeded(format!("response body over {max} bytes"))
}

fn map_send_error(e: reqwest::Error) -> GuestError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<InternalAddressRefused>() {
            return GuestError::Denied(refused.to_string());
        }
        source = err.source();
    }
    if e.is_timeout() {
        GuestError::Timeout("request timed out".into())
    } else if e.is_connect() {
        GuestError::Unavailable("connection failed".into())
    } else {
        GuestError::Upstream(format!("request failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Vec<AllowedHost> {
        entries.iter().map(|e| AllowedHost::parse(e).unwrap()).collect()
    }

    fn policy(entries: &[&str]) -> Policy {
        Policy {
            allowed: parse(entries),
            internal: Vec::new(),
        }
    }

    fn check(p: &Policy, url: &str) -> Result<(), GuestError> {
        p.check(&reqwest::Url::parse(url).unwrap())
    }

    #[test]
    fn only_listed_hosts_and_ports_pass() {
        let p = policy(&["api.open-meteo.com", "127.0.0.1:9000", "*.example.com"]);
        assert!(check(&p, "https://api.open-meteo.com/v1/forecast").is_ok());
        assert!(check(&p, "http://api.open-meteo.com/").is_ok());
        assert!(check(&p, "https://api.open-meteo.com:8443/").is_err());
        assert!(check(&p, "http://127.0.0.1:9000/x").is_ok());
        assert!(check(&p, "http://127.0.0.1:9001/x").is_err());
        assert!(check(&p, "http://localhost:9000/x").is_err());
        assert!(check(&p, "https://a.example.com/").is_ok());
        assert!(check(&p, "https://example.com/").is_err());
        assert!(matches!(
            check(&p, "ftp://api.open-meteo.com/"),
            Err(GuestError::Invalid(_))
        ));
        assert!(matches!(
            check(&p, "https://evil.com/"),
            Err(GuestError::Denied(_))
        ));
    }

    #[test]
    fn only_internal_hosts_entries_may_resolve_internally() {
        let p = Policy {
            allowed: parse(&["localhost:8080", "*.example.com", "127.0.0.1:9000"]),
            internal: parse(&["billing.internal:8443"]),
        };
        assert!(!p.may_resolve_internally("localhost"));
        assert!(!p.may_resolve_internally("api.example.com"));
        assert!(p.may_resolve_internally("billing.internal"));
        assert!(check(&p, "https://billing.internal:8443/charge").is_ok());
        assert!(check(&p, "https://billing.internal/charge").is_err());
    }

    #[tokio::test]
    async fn a_listed_name_resolving_to_loopback_is_refused() {
        let resolver = PolicyResolver {
            policy: Arc::new(policy(&["localhost:8080"])),
        };
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("internal_hosts"), "{err}");

        let resolver = PolicyResolver {
            policy: Arc::new(Policy {
                allowed: Vec::new(),
                internal: parse(&["localhost:8080"]),
            }),
        };
        let addrs: Vec<SocketAddr> = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[tokio::test]
    async fn wildcard_names_resolving_to_loopback_are_refused() {
        let p = Arc::new(policy(&["*.localhost"]));
        let resolver = PolicyResolver { policy: p };
        let name: Name = "app.localhost".parse().unwrap();
        // Whether or not the system resolver knows *.localhost, nothing internal comes back.
        if let Ok(addrs) = resolver.resolve(name).await {
            for a in addrs {
                assert!(!is_internal_address(a.ip()));
            }
        }
    }
}
