//! `hello`: the example http-plugin.
//!
//! - `GET  /`            echoes the request (method, path, query, headers, body size, caller)
//! - `GET  /counter`     reads the counter kept in this plugin's kv store
//! - `POST /counter`     increments it atomically and returns the new value
//! - `GET  /kv/{key}`    reads a key; `PUT /kv/{key}` writes the body; `DELETE` removes it
//! - `GET  /kv?prefix=`  lists keys

use plinth_sdk::http::{config, kv, log, Error, Guest, HttpRequest, HttpResponse, Identity};

struct Hello;

const COUNTER_KEY: &str = "counter";

impl Guest for Hello {
    fn handle(req: HttpRequest, caller: Option<Identity>) -> Result<HttpResponse, Error> {
        let method = req.method.as_str();
        match (method, req.path.as_str()) {
            ("GET", "/counter") => {
                let value = match kv::get(COUNTER_KEY)? {
                    Some(bytes) => String::from_utf8_lossy(&bytes).parse::<i64>().unwrap_or(0),
                    None => 0,
                };
                Ok(HttpResponse::json(200, format!("{{\"counter\":{value}}}")))
            }
            ("POST", "/counter") => {
                let value = kv::increment(COUNTER_KEY, 1)?;
                log::log(log::Level::Info, &format!("counter is now {value}"));
                Ok(HttpResponse::json(200, format!("{{\"counter\":{value}}}")))
            }
            ("GET", "/kv") => {
                let prefix = req.query_param("prefix").unwrap_or("");
                let keys = kv::list_keys(prefix, None, 100)?;
                let items: Vec<String> = keys.iter().map(|k| json_string(k)).collect();
                Ok(HttpResponse::json(
                    200,
                    format!("{{\"keys\":[{}]}}", items.join(",")),
                ))
            }
            (_, path) if path.starts_with("/kv/") => kv_item(method, &path[4..], req.body),
            ("GET", _) => Ok(echo(&req, caller.as_ref())),
            _ => Ok(HttpResponse::json(
                405,
                r#"{"error":{"code":"method_not_allowed","message":"hello answers GET"}}"#,
            )),
        }
    }
}

fn kv_item(method: &str, key: &str, body: Vec<u8>) -> Result<HttpResponse, Error> {
    if key.is_empty() {
        return Err(Error::Invalid("empty key".into()));
    }
    match method {
        "GET" => match kv::get(key)? {
            Some(value) => Ok(HttpResponse::new(200, "application/octet-stream", value)),
            None => Err(Error::NotFound(format!("no key {key}"))),
        },
        "PUT" => {
            kv::set(key, &body)?;
            Ok(HttpResponse::json(200, format!("{{\"stored\":{}}}", body.len())))
        }
        "DELETE" => {
            let existed = kv::delete(key)?;
            Ok(HttpResponse::json(200, format!("{{\"deleted\":{existed}}}")))
        }
        _ => Err(Error::Invalid(format!(
            "{method} is not supported on /kv/{{key}}"
        ))),
    }
}

fn echo(req: &HttpRequest, caller: Option<&Identity>) -> HttpResponse {
    let greeting = config::get("greeting").unwrap_or_else(|| "hello".to_string());
    let headers: Vec<String> = req
        .headers
        .iter()
        .map(|(n, v)| format!("[{},{}]", json_string(n), json_string(v)))
        .collect();
    let caller = match caller {
        Some(id) => format!(
            "{{\"user_id\":{},\"username\":{},\"roles\":[{}]}}",
            json_string(&id.user_id),
            json_string(&id.username),
            id.roles
                .iter()
                .map(|r| json_string(r))
                .collect::<Vec<_>>()
                .join(",")
        ),
        None => "null".to_string(),
    };
    HttpResponse::json(
        200,
        format!(
            "{{\"greeting\":{},\"method\":{},\"path\":{},\"query\":{},\"headers\":[{}],\"body_bytes\":{},\"caller\":{}}}",
            json_string(&greeting),
            json_string(&req.method),
            json_string(&req.path),
            json_string(&req.query),
            headers.join(","),
            req.body.len(),
            caller
        ),
    )
}

/// A JSON string literal (RFC 8259 escaping), without pulling serde into a tiny guest.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

plinth_sdk::http::export_http_plugin!(Hello);
