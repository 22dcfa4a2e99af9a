//! `http-plugin` plugins mounted at `/plugins/{name}/…`: the request goes in (method,
//! path, query, headers minus credentials, body), the plugin's response comes out
//! through `plugin_response` (allow-listed headers, sandboxed, bounded).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::any;
use axum::{Extension, Router};

use super::body::{discard, read_limited};
use super::error::ApiError;
use super::plugin_response::to_response;
use super::session_auth::{optional_principal, required_principal};
use super::AppState;
use crate::auth::AuthError;
use crate::config::RouteAuth;
use crate::domain::{RequestId, World};
use crate::runtime::bindings::HttpRequest;

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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins/{name}", any(invoke))
        .route("/plugins/{name}/", any(invoke))
        .route("/plugins/{name}/{*rest}", any(invoke))
}

/// Calls an http-plugin. The plugin's own errors map to 400/403/404/502/503; a trap is
/// 500, a timeout 504, a memory or fuel limit or a busy plugin 503, a malformed or
/// oversized answer 502. Its headers pass only through `plugin_response`'s allow-list.
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
        (status = 502, description = "The plugin's answer is malformed or over the header caps (`plugin_bad_response`)", body = super::error::ErrorBody),
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
    let caller = match route_caller(&state, plugin.route_auth, &parts.method, &parts.headers).await {
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
    to_response(plugin, done.value, &request_id)
}

/// Who calls, as far as the route's `auth` level lets the plugin know.
async fn route_caller(
    state: &AppState,
    auth: RouteAuth,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<crate::auth::Principal>, ApiError> {
    Ok(match auth {
        RouteAuth::None => None,
        RouteAuth::Optional => optional_principal(state, method, headers).await?,
        RouteAuth::Required => Some(required_principal(state, method, headers).await?),
        RouteAuth::Admin => {
            let p = required_principal(state, method, headers).await?;
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
    Some(deadline_of(&plugin.caps.limits))
}

fn deadline_of(limits: &crate::config::Limits) -> Duration {
    limits.timeout * 2 + Duration::from_secs(1)
}

/// The longest whole-request deadline of any route: `request_timeout`, or a plugin
/// route's when longer (what shutdown must wait for, see `server::serve`).
pub fn longest_request(runtime: &crate::runtime::Runtime, request_timeout: Duration) -> Duration {
    runtime
        .plugins()
        .filter(|p| p.world() == World::Http)
        .map(|p| deadline_of(&p.caps.limits))
        .fold(request_timeout, Duration::max)
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

#[cfg(test)]
mod tests {
    use super::split_plugin_path;

    #[test]
    fn splits_name_and_rest() {
        assert_eq!(split_plugin_path("/plugins/hello"), ("hello", "/"));
        assert_eq!(split_plugin_path("/plugins/hello/"), ("hello", "/"));
        assert_eq!(split_plugin_path("/plugins/hello/a/b%20c"), ("hello", "/a/b%20c"));
    }
}
