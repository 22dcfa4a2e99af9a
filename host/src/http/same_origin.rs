//! Cross-site request forgery defence for cookie sessions. A browser attaches the
//! session cookie to requests that another site's page makes (SameSite=Lax still sends
//! it from same-site pages, e.g. another subdomain), so an unsafe method authenticated
//! by the cookie must come from our own origin. Browsers say where a request comes
//! from in headers a page cannot set:
//! - `Sec-Fetch-Site` (every current browser): `same-origin` or `none` (the user
//!   typed or bookmarked it) pass; `same-site`, `cross-site` or anything else is
//!   refused.
//! - Without it, `Origin` (sent by browsers on every cross-origin POST, PUT, PATCH and
//!   DELETE): it must be our own origin — `[auth] public_url`'s when set, else the
//!   request's `Host` (with either scheme, since a TLS proxy in front hides which one
//!   the browser used); `null` and anything else are refused.
//! - With neither, the client is not a browser acting for a page (curl, a mobile app,
//!   a server): nothing to forge, the request passes.
//!
//! Bearer-token requests are never checked: a page cannot make a browser add an
//! `Authorization` header to a cross-origin request without a CORS preflight, which
//! this server never grants.

use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, Method, StatusCode};
use url::Url;

use super::error::ApiError;

/// 403 `csrf_rejected`: an unsafe request with the session cookie from another origin.
/// Nothing was done.
#[derive(Debug, thiserror::Error)]
#[error("cross-origin request refused ({0}): a request that changes something may only use the session cookie from this server's own pages; other clients send `Authorization: Bearer`")]
pub struct CrossOrigin(&'static str);

impl From<CrossOrigin> for ApiError {
    fn from(e: CrossOrigin) -> Self {
        ApiError::Custom {
            status: StatusCode::FORBIDDEN,
            code: "csrf_rejected".into(),
            message: e.to_string(),
        }
    }
}

/// Whether a request authenticated by the session cookie may proceed (see the module
/// comment); `public_url` is `[auth] public_url`.
pub fn check(method: &Method, headers: &HeaderMap, public_url: Option<&Url>) -> Result<(), CrossOrigin> {
    if method.is_safe() {
        return Ok(());
    }
    let mut fetch_site = headers.get_all("sec-fetch-site").iter().peekable();
    if fetch_site.peek().is_some() {
        let ours = fetch_site.all(|v| matches!(v.as_bytes(), b"same-origin" | b"none"));
        return ours
            .then_some(())
            .ok_or(CrossOrigin("Sec-Fetch-Site is not same-origin"));
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    if origins.next().is_some() {
        return Err(CrossOrigin("more than one Origin"));
    }
    let origin = origin
        .to_str()
        .ok()
        .filter(|o| *o != "null")
        .and_then(|o| Url::parse(o).ok())
        .ok_or(CrossOrigin("Origin is null or not a URL"))?;
    let own = match public_url {
        Some(public) => origin.origin() == public.origin(),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<Authority>().ok())
            .is_some_and(|host| same_host(&origin, &host)),
    };
    own.then_some(()).ok_or(CrossOrigin("Origin is another site"))
}

/// `origin` (http or https) names the same host and port as the `Host` header (a
/// `Host` without a port means the default port of the origin's scheme).
fn same_host(origin: &Url, host: &Authority) -> bool {
    let default = match origin.scheme() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    origin
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(host.host()))
        && host.port_u16().unwrap_or(default) == origin.port_or_known_default().unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn allowed(method: Method, pairs: &[(&str, &str)], public: Option<&str>) -> bool {
        let public = public.map(|p| Url::parse(p).unwrap());
        check(&method, &headers(pairs), public.as_ref()).is_ok()
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        assert!(allowed(Method::POST, &[("sec-fetch-site", "same-origin")], None));
        assert!(allowed(Method::DELETE, &[("sec-fetch-site", "none")], None));
        for site in ["same-site", "cross-site", "Same-Origin", "junk"] {
            assert!(
                !allowed(Method::POST, &[("sec-fetch-site", site)], None),
                "{site}"
            );
        }
        // Sec-Fetch-Site wins over a matching Origin.
        let pairs = [
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://a.test"),
            ("host", "a.test"),
        ];
        assert!(!allowed(Method::POST, &pairs, None));
        assert!(allowed(Method::GET, &[("sec-fetch-site", "cross-site")], None));
    }

    #[test]
    fn origin_must_be_ours() {
        let host = ("host", "shop.test:8080");
        assert!(allowed(
            Method::POST,
            &[host, ("origin", "http://shop.test:8080")],
            None
        ));
        assert!(allowed(
            Method::POST,
            &[host, ("origin", "https://SHOP.test:8080")],
            None
        ));
        assert!(!allowed(
            Method::POST,
            &[host, ("origin", "http://shop.test")],
            None
        ));
        assert!(!allowed(
            Method::POST,
            &[host, ("origin", "http://evil.test:8080")],
            None
        ));
        assert!(!allowed(Method::PATCH, &[host, ("origin", "null")], None));
        assert!(
            !allowed(Method::POST, &[("origin", "http://shop.test:8080")], None),
            "no Host"
        );
        let default_port = [("host", "shop.test"), ("origin", "https://shop.test")];
        assert!(allowed(Method::POST, &default_port, None));
        let explicit_default = [("host", "shop.test:443"), ("origin", "https://shop.test")];
        assert!(allowed(Method::POST, &explicit_default, None));
        let other_port = [("host", "shop.test"), ("origin", "http://shop.test:8080")];
        assert!(!allowed(Method::POST, &other_port, None));
        let ipv6 = [("host", "[::1]:8080"), ("origin", "http://[::1]:8080")];
        assert!(allowed(Method::POST, &ipv6, None));
        let both = [
            host,
            ("origin", "http://shop.test:8080"),
            ("origin", "http://shop.test:8080"),
        ];
        assert!(!allowed(Method::POST, &both, None));
    }

    #[test]
    fn public_url_is_the_origin_when_set() {
        let public = Some("https://shop.example/api/");
        let host = ("host", "127.0.0.1:8080");
        assert!(allowed(
            Method::POST,
            &[host, ("origin", "https://shop.example")],
            public
        ));
        assert!(!allowed(
            Method::POST,
            &[host, ("origin", "http://shop.example")],
            public
        ));
        assert!(!allowed(
            Method::POST,
            &[host, ("origin", "http://127.0.0.1:8080")],
            public
        ));
    }

    #[test]
    fn clients_that_are_not_browsers_pass() {
        assert!(allowed(Method::POST, &[("host", "shop.test")], None));
        assert!(allowed(Method::DELETE, &[], None));
    }
}
