//! The `http-plugin` world: a custom endpoint mounted at `/plugins/{name}/…`.
//! Implement [`Guest`] and call [`export_http_plugin!`].

wit_bindgen::generate!({
    world: "http-plugin",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_http_plugin",
    default_bindings_module: "plinth_sdk::http",
});

pub use exports::plinth::plugin::http_handler::Guest;
pub use plinth::plugin::types::{Error, HttpRequest, HttpResponse, Identity, OutboundRequest};
pub use plinth::plugin::{config, kv, log, outbound};

impl HttpResponse {
    /// A response with the given status, content type and body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".to_string(), content_type.to_string())],
            body: body.into(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// An `application/json` response from already-serialized JSON.
    pub fn json(status: u16, json: impl Into<String>) -> Self {
        Self::new(status, "application/json", json.into())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

impl HttpRequest {
    /// The first value of a header (names are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter (no percent-decoding of `+`; values as sent).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}
