//! The HTTP layer's one error type and its one `IntoResponse`: every error leaves as
//! `{ "error": { "code", "message", "request_id", ["plugin"] } }` with the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_context::current_request_id;
use crate::runtime::bindings::GuestError;
use crate::runtime::{InvokeError, InvokeErrorKind};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("no plugin named {0:?}")]
    PluginNotFound(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error(transparent)]
    Plugin(#[from] InvokeError),
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON error envelope, as documented in the OpenAPI spec.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case; clients branch on this.
    pub code: String,
    /// For humans; may change.
    pub message: String,
    /// The request id (also in the `x-request-id` header), to find the server log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The plugin involved, for plugin errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String, Option<String>) {
        match self {
            ApiError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "not_found", self.to_string(), None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                self.to_string(),
                None,
            ),
            ApiError::PluginNotFound(_) => {
                (StatusCode::NOT_FOUND, "plugin_not_found", self.to_string(), None)
            }
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
                None,
            ),
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message.clone(), None),
            ApiError::Plugin(e) => plugin_parts(e),
            ApiError::Storage(e) => {
                tracing::error!(error = %e, "storage failure");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable; nothing was acknowledged".into(),
                    None,
                )
            }
            ApiError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                    None,
                )
            }
        }
    }
}

fn plugin_parts(e: &InvokeError) -> (StatusCode, &'static str, String, Option<String>) {
    let plugin = e.plugin.to_string();
    let (status, code, message) = match &e.kind {
        InvokeErrorKind::Timeout(d) => (
            StatusCode::GATEWAY_TIMEOUT,
            "plugin_timeout",
            format!("plugin {plugin} did not finish within {} ms", d.as_millis()),
        ),
        InvokeErrorKind::MemoryLimit => (
            StatusCode::SERVICE_UNAVAILABLE,
            "plugin_memory_limit",
            format!("plugin {plugin} exceeded its memory limit"),
        ),
        InvokeErrorKind::FuelExhausted => (
            StatusCode::SERVICE_UNAVAILABLE,
            "plugin_fuel_exhausted",
            format!("plugin {plugin} exceeded its instruction budget"),
        ),
        InvokeErrorKind::Trapped => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_failed",
            format!("plugin {plugin} failed; the cause is in the server log under this request id"),
        ),
        InvokeErrorKind::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "plugin_busy",
            format!("plugin {plugin} is at its concurrency limit; retry shortly"),
        ),
        InvokeErrorKind::WrongWorld { .. } => (
            StatusCode::NOT_FOUND,
            "plugin_not_found",
            format!("plugin {plugin} does not serve HTTP"),
        ),
        InvokeErrorKind::BadResponse(why) => (
            StatusCode::BAD_GATEWAY,
            "plugin_bad_response",
            format!("plugin {plugin} returned an invalid response: {why}"),
        ),
        InvokeErrorKind::Guest(g) => match g {
            GuestError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            GuestError::Denied(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            GuestError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            GuestError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
            GuestError::Upstream(m) => (StatusCode::BAD_GATEWAY, "upstream_error", m.clone()),
            GuestError::LimitExceeded(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_limit_exceeded",
                m.clone(),
            ),
            GuestError::Internal(m) => {
                tracing::error!(plugin = %plugin, detail = %m, "plugin reported an internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "plugin_error",
                    format!("plugin {plugin} reported an internal error"),
                )
            }
        },
    };
    (status, code, message, Some(plugin))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, plugin) = self.parts();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                request_id: current_request_id().map(|id| id.to_string()),
                plugin,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(
            &self,
            ApiError::Plugin(InvokeError {
                kind: InvokeErrorKind::Busy,
                ..
            })
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
