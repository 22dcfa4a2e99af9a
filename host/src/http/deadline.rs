//! The whole-request deadline: reading the body, handling the request and producing
//! the response head must finish within `[server] request_timeout_secs`; past it the
//! handler is dropped and the client gets 503 `request_timeout`. A plugin route's
//! deadline is at least the plugin's own bound (see `plugins::route_deadline`), so a
//! slow plugin is answered by its own 503 `plugin_busy` / 504 `plugin_timeout`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{plugins, AppState};

/// 503 `request_timeout`: the request was not done within its deadline and whatever it
/// was doing was stopped.
#[derive(Debug, thiserror::Error)]
#[error("the request did not complete within {} ms and was stopped", .0.as_millis())]
pub struct RequestTimeout(pub Duration);

impl From<RequestTimeout> for ApiError {
    fn from(e: RequestTimeout) -> Self {
        ApiError::Custom {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "request_timeout".into(),
            message: e.to_string(),
        }
    }
}

pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = match plugins::route_deadline(&state, req.uri().path()) {
        Some(plugin) => plugin.max(state.request_timeout),
        None => state.request_timeout,
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::from(RequestTimeout(limit)).into_response(),
    }
}
