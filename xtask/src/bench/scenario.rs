//! Benchmark scenarios: what to mount in the server and which requests to time.
//!
//! A [`Scenario`] names the plugins its generated config mounts, optional setup requests
//! sent once before any measurement (e.g. sign a user up), and one or more
//! [`Measurement`]s, each a list of [`RequestSpec`]s that the load generator sends round
//! robin. Measurements of one scenario run alternately (A, B, A, B …) so that noise on a
//! shared machine hits all of them alike; [`Ratio`]s compare their mean throughputs.
//!
//! To add a scenario, write a function returning one and list it in [`all`].

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};

/// A plugin the scenario's server config mounts.
#[derive(Debug, Clone)]
pub struct PluginMount {
    /// Name in the config (and the `/plugins/<name>/` mount point).
    pub name: &'static str,
    /// WIT world it implements, e.g. `http-plugin`.
    pub world: &'static str,
    /// File stem of the component in `target/plugins/`.
    pub artifact: &'static str,
}

/// One HTTP request the load generator can send, any number of times.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    /// Path and query, e.g. `/catalog/search?q=tea`.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl RequestSpec {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// A request with a JSON body and `content-type: application/json`.
    #[allow(dead_code)] // for the coming login / checkout scenarios
    pub fn json(method: Method, path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self::new(method, path)
            .with_header_static(CONTENT_TYPE, "application/json")
            .with_body(body.to_string())
    }

    /// Adds a header; fails on a name or value HTTP does not allow.
    #[allow(dead_code)] // for the coming login / checkout scenarios
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

    #[allow(dead_code)] // for the coming login / checkout scenarios
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
        builder
            .body(Full::new(self.body.clone()))
            .with_context(|| format!("invalid request {} {}", self.method, self.path))
    }

    /// `GET /path`, for tables and error messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A named load: requests sent round robin by every connection.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub name: &'static str,
    pub requests: Vec<RequestSpec>,
}

/// Throughput of `numerator` divided by that of `denominator` (measurement names).
#[derive(Debug, Clone)]
pub struct Ratio {
    pub numerator: &'static str,
    pub denominator: &'static str,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub plugins: Vec<PluginMount>,
    /// Sent once, in order, before the first measurement; each must answer 2xx.
    pub setup: Vec<RequestSpec>,
    pub measurements: Vec<Measurement>,
    pub ratios: Vec<Ratio>,
}

impl Scenario {
    /// Checks names are unique, ratios refer to measurements, and every request builds.
    pub fn validate(&self) -> Result<()> {
        if self.measurements.is_empty() {
            bail!("scenario {} has no measurement", self.name);
        }
        for (i, m) in self.measurements.iter().enumerate() {
            if self.measurements[..i].iter().any(|o| o.name == m.name) {
                bail!("scenario {}: duplicate measurement {}", self.name, m.name);
            }
            if m.requests.is_empty() {
                bail!("scenario {}: measurement {} has no request", self.name, m.name);
            }
        }
        for ratio in &self.ratios {
            for name in [ratio.numerator, ratio.denominator] {
                if !self.measurements.iter().any(|m| m.name == name) {
                    bail!("scenario {}: ratio names unknown measurement {name}", self.name);
                }
            }
        }
        let all_requests = self
            .setup
            .iter()
            .chain(self.measurements.iter().flat_map(|m| &m.requests));
        for spec in all_requests {
            spec.to_request("127.0.0.1:1")
                .with_context(|| format!("scenario {}", self.name))?;
        }
        Ok(())
    }
}

/// Every scenario, in the order `--list` shows them.
pub fn all() -> Vec<Scenario> {
    vec![plugin()]
}

/// The scenario called `name`, or an error listing the known ones.
pub fn find(name: &str) -> Result<Scenario> {
    let scenarios = all();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
    scenarios
        .into_iter()
        .find(|s| s.name == name)
        .with_context(|| format!("unknown scenario {name:?}; known scenarios: {}", names.join(", ")))
}

/// The cost of a plugin call: the host's own `/healthz` against the `hello` plugin's
/// echo endpoint, on the same server.
fn plugin() -> Scenario {
    Scenario {
        name: "plugin",
        description: "GET /healthz (host only) vs GET /plugins/hello/ (one plugin call)",
        plugins: vec![HELLO],
        setup: Vec::new(),
        measurements: vec![
            Measurement {
                name: "healthz",
                requests: vec![RequestSpec::get("/healthz")],
            },
            Measurement {
                name: "hello",
                requests: vec![RequestSpec::get("/plugins/hello/")],
            },
        ],
        ratios: vec![Ratio {
            numerator: "hello",
            denominator: "healthz",
        }],
    }
}

const HELLO: PluginMount = PluginMount {
    name: "hello",
    world: "http-plugin",
    artifact: "hello",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_valid() {
        for scenario in all() {
            scenario.validate().expect(scenario.name);
        }
    }

    #[test]
    fn finds_by_name() {
        assert_eq!(find("plugin").map(|s| s.name).ok(), Some("plugin"));
        let err = find("nope").map(|s| s.name).unwrap_err().to_string();
        assert!(err.contains("known scenarios: plugin"), "{err}");
    }

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
    fn rejects_bad_headers_and_dangling_ratios() {
        assert!(RequestSpec::get("/").with_header("bad header", "x").is_err());
        assert!(RequestSpec::get("/").with_header("x", "bad\nvalue").is_err());
        let mut scenario = plugin();
        scenario.ratios.push(Ratio {
            numerator: "missing",
            denominator: "healthz",
        });
        assert!(scenario.validate().is_err());
    }
}
