//! What an http-plugin's response may carry to the client. It is served on the host's
//! own origin, next to the session cookie and the admin API, so it is treated as
//! untrusted content: only an allow-list of representation and caching headers passes
//! (never a cookie, never a security header, never a redirect off this origin), every
//! response is sandboxed (`Content-Security-Policy: sandbox`: HTML from a plugin runs no
//! script with our origin and cannot read our cookies), and the header count and size
//! are bounded (http's `HeaderMap` panics past 32,768 entries).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use super::error::ApiError;
use crate::domain::RequestId;
use crate::runtime::bindings::HttpResponse;
use crate::runtime::{InvokeError, InvokeErrorKind, Plugin};

/// Most headers one plugin response may carry; more is 502 `plugin_bad_response`. With
/// the host's own (security headers, request id, length, date) the whole response stays
/// under 100, the most a hyper-based client (reqwest, …) accepts by default.
pub const MAX_HEADERS: usize = 64;

/// Most bytes of header names and values one plugin response may carry; 16 KiB is
/// Node.js's default limit for a whole header block, and more than any real response
/// needs.
pub const MAX_HEADER_BYTES: usize = 16 << 10;

/// Headers a plugin may set: what the body is, how it may be cached, and `location`
/// (same-origin paths only, see [`same_origin_path`]). Plus custom `x-…` headers that
/// are not [`RESERVED_X`].
const ALLOWED: &[&str] = &[
    "accept-ranges",
    "age",
    "allow",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-range",
    "content-type",
    "etag",
    "expires",
    "last-modified",
    "location",
    "pragma",
    "retry-after",
    "vary",
];

/// `x-` headers that are security or infrastructure headers, not custom ones: browsers,
/// proxies (nginx `X-Accel-Redirect`, Apache `X-Sendfile` serve files named by the
/// response) and the host (`x-request-id`) act on them.
const RESERVED_X: &[&str] = &[
    "x-content-security-policy",
    "x-content-type-options",
    "x-dns-prefetch-control",
    "x-frame-options",
    "x-lighttpd-send-file",
    "x-permitted-cross-domain-policies",
    "x-request-id",
    "x-sendfile",
    "x-webkit-csp",
    "x-xss-protection",
];
const RESERVED_X_PREFIXES: &[&str] = &["x-accel-", "x-forwarded-"];

/// What every plugin response carries, whatever the plugin said. `sandbox` gives an HTML
/// response an opaque origin (no script, no forms, no cookies, no same-origin reads);
/// `nosniff` stops a `text/plain` answer from being run as a script or style;
/// `same-site` keeps other sites from embedding it; `no-referrer` keeps the URL (and any
/// token in its query) from reaching the sites it links to.
const ALWAYS: &[(&str, &str)] = &[
    ("content-security-policy", "sandbox"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "same-site"),
    ("referrer-policy", "no-referrer"),
];

/// A plugin's headers, sorted into those served and the names of those dropped.
#[derive(Debug)]
struct PluginHeaders {
    kept: HeaderMap,
    dropped: Vec<String>,
}

impl PluginHeaders {
    /// Checks the caps, then keeps what the allow-list lets through. An over-cap list, a
    /// malformed name or a malformed kept value makes the whole response unservable.
    fn parse(raw: Vec<(String, String)>) -> Result<Self, String> {
        if raw.len() > MAX_HEADERS {
            return Err(format!("{} headers (at most {MAX_HEADERS})", raw.len()));
        }
        let bytes: usize = raw.iter().map(|(n, v)| n.len() + v.len()).sum();
        if bytes > MAX_HEADER_BYTES {
            return Err(format!("{bytes} bytes of headers (at most {MAX_HEADER_BYTES})"));
        }
        let mut kept = HeaderMap::with_capacity(raw.len() + ALWAYS.len());
        let mut dropped = Vec::new();
        for (name, value) in raw {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name:?}"))?;
            if !allowed(&name, &value) {
                if !dropped.iter().any(|d| d == name.as_str()) {
                    dropped.push(name.as_str().to_string());
                }
                continue;
            }
            let value = HeaderValue::from_str(&value).map_err(|_| format!("bad value for header {name}"))?;
            kept.append(name, value);
        }
        for (name, value) in ALWAYS {
            kept.insert(*name, HeaderValue::from_static(value));
        }
        Ok(Self { kept, dropped })
    }
}

fn allowed(name: &HeaderName, value: &str) -> bool {
    let name = name.as_str();
    if name == "location" {
        return same_origin_path(value);
    }
    ALLOWED.contains(&name)
        || (name.starts_with("x-")
            && !RESERVED_X.contains(&name)
            && !RESERVED_X_PREFIXES.iter().any(|p| name.starts_with(p)))
}

/// A redirect may only stay on this origin: an absolute path, never `//host` or `/\host`
/// (browsers read both as another host), in visible ASCII only (browsers drop tabs
/// inside URLs, so `/<tab>/host` would be `//host`). A redirect to another origin from
/// ours is an open redirect: phishing links that start with our name.
fn same_origin_path(value: &str) -> bool {
    let b = value.as_bytes();
    b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\')) && b.iter().all(u8::is_ascii_graphic)
}

/// The plugin's answer as the client gets it; headers it may not set are dropped (and
/// logged once), a malformed or oversized answer is 502 `plugin_bad_response`.
pub fn to_response(plugin: &Plugin, out: HttpResponse, request_id: &RequestId) -> Result<Response, ApiError> {
    let bad = |why: String| {
        tracing::warn!(plugin = %plugin.name(), request_id = %request_id, reason = %why, "refused a plugin's response");
        ApiError::Plugin(InvokeError::new(plugin.name(), InvokeErrorKind::BadResponse(why)))
    };
    let status = StatusCode::from_u16(out.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| bad(format!("status {} is not a final HTTP status", out.status)))?;
    let headers = PluginHeaders::parse(out.headers).map_err(bad)?;
    if !headers.dropped.is_empty() {
        tracing::warn!(
            plugin = %plugin.name(),
            request_id = %request_id,
            dropped = %headers.dropped.join(", "),
            "dropped response headers a plugin may not set"
        );
    }
    let mut response = Response::new(Body::from(out.body));
    *response.status_mut() = status;
    *response.headers_mut() = headers.kept;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(headers: &[(&str, &str)]) -> PluginHeaders {
        PluginHeaders::parse(
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn keeps_representation_and_custom_headers() {
        let h = parse(&[
            ("Content-Type", "text/csv"),
            ("cache-control", "max-age=60"),
            ("X-Custom", "1"),
            ("vary", "accept"),
            ("vary", "origin"),
        ]);
        assert_eq!(h.kept["content-type"], "text/csv");
        assert_eq!(h.kept["x-custom"], "1");
        assert_eq!(h.kept.get_all("vary").iter().count(), 2);
        assert!(h.dropped.is_empty());
        assert_eq!(h.kept["content-security-policy"], "sandbox");
        assert_eq!(h.kept["x-content-type-options"], "nosniff");
    }

    #[test]
    fn drops_cookies_security_and_proxy_headers_once_each() {
        let h = parse(&[
            ("set-cookie", "a=b"),
            ("Set-Cookie", "=plinth_session=x"),
            ("content-security-policy", "default-src *"),
            ("x-accel-redirect", "/internal"),
            ("x-frame-options", "ALLOWALL"),
            ("strict-transport-security", "max-age=0"),
        ]);
        assert_eq!(
            h.dropped,
            [
                "set-cookie",
                "content-security-policy",
                "x-accel-redirect",
                "x-frame-options",
                "strict-transport-security"
            ]
        );
        assert!(h.kept.get("set-cookie").is_none());
        assert_eq!(h.kept.get_all("content-security-policy").iter().count(), 1);
        assert!(h.kept.get("x-frame-options").is_none());
    }

    #[test]
    fn redirects_stay_on_this_origin() {
        for ok in ["/", "/plugins/x/next?a=1", "/a%2F%2Fb"] {
            assert!(same_origin_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "javascript:alert(1)",
            "next",
            "",
        ] {
            assert!(!same_origin_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn caps_count_and_size() {
        let many: Vec<_> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".into()))
            .collect();
        assert!(PluginHeaders::parse(many).unwrap_err().contains("65 headers"));
        let big = vec![("x-big".to_string(), "v".repeat(MAX_HEADER_BYTES))];
        assert!(PluginHeaders::parse(big)
            .unwrap_err()
            .contains("bytes of headers"));
        let fits: Vec<_> = (0..MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".into()))
            .collect();
        assert_eq!(
            PluginHeaders::parse(fits).unwrap().kept.len(),
            MAX_HEADERS + ALWAYS.len()
        );
    }
}
