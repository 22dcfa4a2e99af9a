//! `http-plugin` plugins mounted at `/plugins/{name}/…`: the request goes in (method,
//! path, query, headers minus credentials, body), the plugin's response comes out.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::{Extension, Router};

use super::body::{discard, read_limited};
use super::error::ApiError;
use super::session_auth::{optional_principal, required_principal, SESSION_COOKIE};
use super::AppState;
use crate::auth::AuthError;
use crate::config::RouteAuth;
use crate::domain::{RequestId, World};
use crate::runtime::bindings::{HttpRequest, HttpResponse};
use crate::runtime::{InvokeError, InvokeErrorKind, Plugin};

/// Request headers a plugin never sees: credentials (the host owns auth) and
/// hop-by-hop headers.
const HIDDEN_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Response headers a plugin may not set: framing is the host's business.
const FORBIDDEN_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "te",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins/{name}", any(invoke))
        .route("/plugins/{name}/", any(invoke))
        .route("/plugins/{name}/{*rest}", any(invoke))
}

/// Calls an http-plugin. The plugin's own errors map to 400/403/404/502/503; a trap is
/// 500, a timeout 504, a memory or fuel limit or a busy plugin 503.
#[utoipa::path(
    get,
    path = "/plugins/{name}/{rest}",
    tag = "plugins",
    params(
        ("name" = String, Path, description = "The plugin's name from plinth.toml"),
        ("rest" = String, Path, description = "Path passed to the plugin (any method is accepted)")
    ),
    responses(
        (status = 200, description = "Whatever the plugin answers"),
        (status = 404, description = "No such plugin", body = super::error::ErrorBody),
        (status = 413, description = "Body over the limit", body = super::error::ErrorBody),
        (status = 500, description = "The plugin trapped", body = super::error::ErrorBody),
        (status = 503, description = "The plugin hit a limit or is busy", body = super::error::ErrorBody),
        (status = 504, description = "The plugin timed out", body = super::error::ErrorBody)
    )
)]
pub async fn invoke(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let (name, path) = split_plugin_path(parts.uri.path());
    let plugin = state
        .runtime
        .plugin(name)
        .filter(|p| p.world() == World::Http)
        .ok_or_else(|| ApiError::PluginNotFound(name.to_string()))?;
    let caller = match route_caller(&state, plugin.route_auth, &parts.method, &parts.headers) {
        Ok(caller) => caller,
        Err(e) => {
            discard(body).await;
            return Err(e);
        }
    };
    let body = read_limited(&parts.headers, body, state.max_body_bytes).await?;
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path: path.to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: visible_headers(&parts.headers),
        body: body.to_vec(),
    };
    let done = state
        .runtime
        .handle_http(plugin, request, caller.map(|p| p.identity()), &request_id)
        .await?;
    if done.kv_dirty {
        state.storage.flush().await?;
    }
    to_response(plugin, done.value)
}

/// Who calls, as far as the route's `auth` level lets the plugin know.
fn route_caller(
    state: &AppState,
    auth: RouteAuth,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<crate::auth::Principal>, ApiError> {
    Ok(match auth {
        RouteAuth::None => None,
        RouteAuth::Optional => optional_principal(state, method, headers)?,
        RouteAuth::Required => Some(required_principal(state, method, headers)?),
        RouteAuth::Admin => {
            let p = required_principal(state, method, headers)?;
            if !p.is_admin() {
                return Err(AuthError::Forbidden.into());
            }
            Some(p)
        }
    })
}

/// The whole-request deadline a plugin route needs (`None`: not a plugin route). A
/// call may wait up to the plugin's `timeout_ms` for an instance and then run up to it
/// (`runtime::invoke`); a second more covers the body and the flush, so the plugin's
/// own timeout answers before the request deadline does.
pub(super) fn route_deadline(state: &AppState, path: &str) -> Option<Duration> {
    if !path.starts_with("/plugins/") {
        return None;
    }
    let plugin = state.runtime.plugin(split_plugin_path(path).0)?;
    Some(plugin.caps.limits.timeout * 2 + Duration::from_secs(1))
}

/// `/plugins/hello/a/b` → (`hello`, `/a/b`); the path is passed as received.
fn split_plugin_path(path: &str) -> (&str, &str) {
    let rest = path.strip_prefix("/plugins/").unwrap_or("");
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

fn visible_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !HIDDEN_REQUEST_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect()
}

fn to_response(plugin: &Plugin, out: HttpResponse) -> Result<Response, ApiError> {
    let bad =
        |why: String| ApiError::Plugin(InvokeError::new(plugin.name(), InvokeErrorKind::BadResponse(why)));
    let status = StatusCode::from_u16(out.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| bad(format!("status {} is not a final HTTP status", out.status)))?;
    let mut response = Response::new(Body::from(out.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in out.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(format!("bad header name {name:?}")))?;
        if FORBIDDEN_RESPONSE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if name == axum::http::header::SET_COOKIE && sets_session_cookie(&value) {
            tracing::warn!(plugin = %plugin.name(), "dropped a plugin's attempt to set the session cookie");
            continue;
        }
        let value = HeaderValue::from_str(&value).map_err(|_| bad(format!("bad value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(response)
}

/// Whether a `Set-Cookie` value would set (or clear) the host's session cookie.
fn sets_session_cookie(value: &str) -> bool {
    value
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .is_some_and(|(name, _)| name.trim() == SESSION_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::{sets_session_cookie, split_plugin_path};

    #[test]
    fn spots_the_session_cookie() {
        assert!(sets_session_cookie("plinth_session=abc; Path=/"));
        assert!(sets_session_cookie(" plinth_session =x"));
        assert!(!sets_session_cookie("theme=dark; Path=/"));
    }

    #[test]
    fn splits_name_and_rest() {
        assert_eq!(split_plugin_path("/plugins/hello"), ("hello", "/"));
        assert_eq!(split_plugin_path("/plugins/hello/"), ("hello", "/"));
        assert_eq!(split_plugin_path("/plugins/hello/a/b%20c"), ("hello", "/a/b%20c"));
    }
}
