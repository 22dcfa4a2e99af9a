//! HTTP to Shippo through the host's `outbound`: auth, JSON, and the status → error
//! mapping (the pure parts are unit-tested natively).

use plinth_sdk::shipping::{config, outbound, Error, OutboundRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub const DEFAULT_BASE_URL: &str = "https://api.goshippo.com";
/// Pins the response shapes this plugin reads (`status`, `rates`, …).
const API_VERSION: &str = "2018-02-08";

pub struct Client {
    base: String,
    token: String,
}

impl Client {
    /// From config: `base_url` (default [`DEFAULT_BASE_URL`]) and `api_token` (required).
    pub fn from_config() -> Result<Self, Error> {
        let base = config::get("base_url")
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let token = config::get("api_token")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Unavailable("shipping-shippo: config api_token is not set".into()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send("GET", path, Vec::new())
    }

    pub fn post<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, Error> {
        let body =
            serde_json::to_vec(body).map_err(|e| Error::Internal(format!("encoding a request: {e}")))?;
        self.send("POST", path, body)
    }

    fn send<T: DeserializeOwned>(&self, method: &str, path: &str, body: Vec<u8>) -> Result<T, Error> {
        let mut headers = vec![
            ("authorization".to_string(), format!("ShippoToken {}", self.token)),
            ("accept".to_string(), "application/json".to_string()),
            ("shippo-api-version".to_string(), API_VERSION.to_string()),
        ];
        if !body.is_empty() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        // Transport errors (timeout, unavailable, denied, limit-exceeded) pass through as they are.
        let resp = outbound::send(&OutboundRequest {
            method: method.to_string(),
            url: format!("{}{path}", self.base),
            headers,
            body,
            timeout_ms: None,
        })?;
        check(resp.status, &resp.body)?;
        parse(&resp.body)
    }
}

/// JSON of a 2xx body, or `upstream` when Shippo sent something else.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Upstream(format!("Shippo sent an unexpected body: {e}")))
}

/// Maps a Shippo status to an error: 400 → `invalid` (Shippo's message), 401/403 →
/// `upstream` (a bad token is the operator's problem, not the caller's), 404 →
/// `not-found`, 429 → `unavailable`, anything else outside 2xx → `upstream`.
pub fn check(status: u16, body: &[u8]) -> Result<(), Error> {
    match status {
        200..=299 => Ok(()),
        400 | 422 => Err(Error::Invalid(
            error_message(body).unwrap_or_else(|| "Shippo rejected the request".into()),
        )),
        401 | 403 => Err(Error::Upstream("Shippo rejected the API token".into())),
        404 => Err(Error::NotFound(
            error_message(body).unwrap_or_else(|| "not found at Shippo".into()),
        )),
        429 => Err(Error::Unavailable(
            "Shippo's rate limit was reached; retry later".into(),
        )),
        500..=599 => Err(Error::Upstream(format!("Shippo answered HTTP {status}"))),
        _ => Err(Error::Upstream(format!(
            "Shippo answered HTTP {status} unexpectedly"
        ))),
    }
}

const MAX_MESSAGE: usize = 500;

/// A readable message from an error body: `{"detail": "…"}`, `{"messages": [...]}`, or a
/// field-error object such as `{"address_to": {"zip": ["This field is required."]}}`
/// (→ `address_to.zip: This field is required.`). Plain text is used as it is.
pub fn error_message(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(json) => {
            let mut parts = Vec::new();
            flatten("", &json, &mut parts);
            parts.join("; ")
        }
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    })
}

fn flatten(path: &str, value: &Value, out: &mut Vec<String>) {
    let prefix = |msg: &str| {
        if path.is_empty()
            || matches!(
                path,
                "detail" | "messages" | "__all__" | "non_field_errors" | "error"
            )
        {
            msg.to_string()
        } else {
            format!("{path}: {msg}")
        }
    };
    match value {
        Value::String(s) if !s.trim().is_empty() => out.push(prefix(s.trim())),
        Value::Number(_) | Value::Bool(_) => out.push(prefix(&value.to_string())),
        Value::Array(items) => items.iter().for_each(|v| flatten(path, v, out)),
        // A `{source, code, text}` message.
        Value::Object(map) if map.get("text").is_some_and(Value::is_string) => {
            let text = map["text"].as_str().unwrap_or_default().trim();
            if !text.is_empty() {
                out.push(prefix(text));
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(&sub, v, out);
            }
        }
        _ => {}
    }
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: Error) -> String {
        match err {
            Error::Invalid(m) | Error::NotFound(m) | Error::Upstream(m) | Error::Unavailable(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maps_statuses() {
        assert!(check(200, b"{}").is_ok());
        assert!(check(201, b"{}").is_ok());
        let e = check(
            400,
            br#"{"address_to": {"zip": ["This field is required."]}, "parcels": ["Weight must be > 0"]}"#,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)));
        assert_eq!(
            message(e),
            "address_to.zip: This field is required.; parcels: Weight must be > 0"
        );
        let e = check(401, br#"{"detail": "Invalid token."}"#).unwrap_err();
        assert!(matches!(&e, Error::Upstream(m) if m == "Shippo rejected the API token"));
        assert!(matches!(check(403, b""), Err(Error::Upstream(_))));
        let e = check(404, br#"{"detail": "Not found."}"#).unwrap_err();
        assert!(matches!(&e, Error::NotFound(m) if m == "Not found."));
        assert!(matches!(check(404, b""), Err(Error::NotFound(_))));
        assert!(matches!(check(429, b""), Err(Error::Unavailable(_))));
        assert!(matches!(check(500, b"oops"), Err(Error::Upstream(_))));
        assert!(matches!(check(503, b""), Err(Error::Upstream(_))));
        assert!(matches!(check(302, b""), Err(Error::Upstream(_))));
        assert!(matches!(check(400, b""), Err(Error::Invalid(m)) if m == "Shippo rejected the request"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"detail": "Invalid rate."}"#).as_deref(),
            Some("Invalid rate.")
        );
        assert_eq!(
            error_message(br#"{"messages": [{"source": "Shippo", "code": "x", "text": "Rate expired"}]}"#)
                .as_deref(),
            Some("Rate expired")
        );
        assert_eq!(error_message(br#"{"__all__": ["Bad"]}"#).as_deref(), Some("Bad"));
        assert_eq!(error_message(b"Bad Request\n").as_deref(), Some("Bad Request"));
        assert_eq!(error_message(b"{}"), None);
        assert_eq!(
            error_message(&vec![b'x'; 2000]).unwrap().chars().count(),
            MAX_MESSAGE + 1
        );
    }

    #[test]
    fn parses_bodies() {
        let v: Value = parse(b"{\"a\":1}").unwrap();
        assert_eq!(v["a"], 1);
        assert!(matches!(parse::<Value>(b"<html>"), Err(Error::Upstream(_))));
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(encode("9205 5901/64?x"), "9205%205901%2F64%3Fx");
        assert_eq!(encode("usps_priority-1.~"), "usps_priority-1.~");
    }
}
