//! [`RequestSpec`]: one HTTP request the load generator can send any number of times.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};

/// One HTTP request the load generator can send, any number of times.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    /// Path and query, e.g. `/catalog/search?q=tea`.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// A header sent with a value unique to each request (e.g. `Idempotency-Key`).
    pub unique_header: Option<HeaderName>,
}

/// Distinct per xtask process: the start time in nanoseconds and the process id.
fn run_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{nanos:x}-{:x}", std::process::id())
    })
}

/// `bench-<run nonce>-<n>`, a new `n` every call.
pub fn unique_value() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("bench-{}-{n}", run_nonce())
}

impl RequestSpec {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            unique_header: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// A request with a JSON body and `content-type: application/json`.
    pub fn json(method: Method, path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self::new(method, path)
            .with_header_static(CONTENT_TYPE, "application/json")
            .with_body(body.to_string())
    }

    /// Sends `name` with a value unique to every request built from this spec.
    pub fn with_unique_header(mut self, name: &'static str) -> Self {
        self.unique_header = Some(HeaderName::from_static(name));
        self
    }

    /// Replaces `{var}` in header values with `value` (e.g. a session token captured
    /// during setup); fails if the result is not a valid header value.
    pub fn substitute(&mut self, var: &str, value: &str) -> Result<()> {
        let pattern = format!("{{{var}}}");
        for (name, v) in &mut self.headers {
            let text = v.to_str().unwrap_or_default();
            if text.contains(&pattern) {
                let replaced = text.replace(&pattern, value);
                *v = HeaderValue::from_str(&replaced)
                    .with_context(|| format!("invalid value for header {name} after substituting {var}"))?;
            }
        }
        Ok(())
    }

    /// Adds a header; fails on a name or value HTTP does not allow.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value)
            .with_context(|| format!("invalid value for header {name}: {value:?}"))?;
        self.headers.push((name, value));
        Ok(self)
    }

    fn with_header_static(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The request for a server at `authority` (`host:port`, sent as `Host`).
    pub fn to_request(&self, authority: &str) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header(HOST, authority);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if let Some(name) = &self.unique_header {
            builder = builder.header(name, unique_value());
        }
        builder
            .body(Full::new(self.body.clone()))
            .with_context(|| format!("invalid request {} {}", self.method, self.path))
    }

    /// `GET /path`, for tables and error messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The distinct labels of `specs`, in first-seen order (requests that differ only in
/// their bodies, e.g. logins of several users, share one label).
pub fn distinct_labels(specs: &[RequestSpec]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for spec in specs {
        let label = spec.label();
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_json_requests_with_headers() {
        let spec = RequestSpec::json(
            Method::POST,
            "/auth/login",
            &serde_json::json!({"username": "ada"}),
        )
        .with_header("x-request-id", "bench")
        .expect("valid header");
        let req = spec.to_request("127.0.0.1:8080").expect("builds");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/auth/login");
        assert_eq!(req.headers()[HOST], "127.0.0.1:8080");
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(req.headers()["x-request-id"], "bench");
        assert_eq!(spec.body, Bytes::from_static(br#"{"username":"ada"}"#));
    }

    #[test]
    fn unique_headers_differ_per_request_and_variables_are_substituted() {
        let mut spec = RequestSpec::get("/checkout")
            .with_unique_header("idempotency-key")
            .with_header("authorization", "Bearer {token}")
            .expect("valid header");
        spec.substitute("token", "abc123").expect("valid value");
        let a = spec.to_request("h").expect("builds");
        let b = spec.to_request("h").expect("builds");
        assert_eq!(a.headers()["authorization"], "Bearer abc123");
        let (ka, kb) = (&a.headers()["idempotency-key"], &b.headers()["idempotency-key"]);
        assert_ne!(ka, kb);
        assert!(ka.to_str().unwrap().starts_with("bench-"));
        assert!(
            spec.substitute("token", "bad\nvalue").is_ok(),
            "no placeholder left"
        );
        let mut again = RequestSpec::get("/")
            .with_header("authorization", "Bearer {token}")
            .unwrap();
        assert!(again.substitute("token", "bad\nvalue").is_err());
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(RequestSpec::get("/").with_header("bad header", "x").is_err());
        assert!(RequestSpec::get("/").with_header("x", "bad\nvalue").is_err());
    }

    #[test]
    fn labels_are_distinct_and_ordered() {
        let login = |user: &str| {
            RequestSpec::json(
                Method::POST,
                "/auth/login",
                &serde_json::json!({ "username": user }),
            )
        };
        let specs = [login("a"), RequestSpec::get("/healthz"), login("b")];
        assert_eq!(distinct_labels(&specs), ["POST /auth/login", "GET /healthz"]);
    }
}
