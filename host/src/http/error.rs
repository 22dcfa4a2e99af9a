//! The HTTP layer's one error type and its one `IntoResponse`: every error leaves as
//! `{ "error": { "code", "message", "request_id", ["plugin"] } }` with the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_context::current_request_id;
use crate::auth::oidc::OAuthError;
use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::checkout::CheckoutError;
use crate::contacts::ContactError;
use crate::domain::PasswordError;
use crate::runtime::bindings::GuestError;
use crate::runtime::{InvokeError, InvokeErrorKind};
use crate::store::StoreError;
use crate::weather::WeatherError;

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
    #[error("send the body as JSON with `content-type: application/json`")]
    UnsupportedMediaType,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Weather(std::sync::Arc<WeatherError>),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Custom {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Checkout(std::sync::Arc<CheckoutError>),
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
    fn parts(&self) -> (StatusCode, String, String, Option<String>) {
        match self {
            ApiError::Custom {
                status,
                code,
                message,
            } => (*status, code.clone(), message.clone(), None),
            ApiError::Checkout(e) => checkout_parts(e),
            other => {
                let (status, code, message, plugin) = other.static_parts();
                (status, code.to_string(), message, plugin)
            }
        }
    }

    fn static_parts(&self) -> (StatusCode, &'static str, String, Option<String>) {
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
            ApiError::PayloadTooLarge { limit: 0 } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is over the limit".into(),
                None,
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                self.to_string(),
                None,
            ),
            ApiError::Auth(e) => auth_parts(e),
            ApiError::OAuth(e) => oauth_parts(e),
            ApiError::Weather(e) => weather_parts(e),
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message.clone(), None),
            ApiError::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message.clone(), None),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message.clone(), None),
            // Rendered by `parts`; listed so this match stays exhaustive.
            ApiError::Custom { .. } | ApiError::Checkout(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                self.to_string(),
                None,
            ),
            ApiError::Plugin(e) => plugin_parts(e),
            ApiError::Storage(StoreError::Conflict(what)) => {
                tracing::warn!(%what, "concurrent update lost; nothing written");
                (
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("{what} changed meanwhile; nothing was written, retry"),
                    None,
                )
            }
            ApiError::Storage(StoreError::Busy(what)) => {
                tracing::warn!(%what, "database contention outlasted the retries; nothing written");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_busy",
                    "storage is busy; nothing was written, retry".into(),
                    None,
                )
            }
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

fn auth_parts(e: &AuthError) -> (StatusCode, &'static str, String, Option<String>) {
    let (status, code) = match e {
        AuthError::InvalidUsername(_) => (StatusCode::BAD_REQUEST, "invalid_username"),
        AuthError::WeakPassword(p) => (
            StatusCode::BAD_REQUEST,
            match p {
                PasswordError::TooShort => "password_too_short",
                PasswordError::TooLong => "password_too_long",
                PasswordError::Common => "password_too_common",
                PasswordError::SameAsUsername => "password_is_username",
            },
        ),
        AuthError::UsernameTaken => (StatusCode::CONFLICT, "username_taken"),
        AuthError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        AuthError::WrongPassword => (StatusCode::FORBIDDEN, "wrong_password"),
        AuthError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        AuthError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        AuthError::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
        AuthError::RateLimited(_) | AuthError::TooManyRegistrations(_) => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        }
        AuthError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "auth_busy"),
        AuthError::SessionNotFound => (StatusCode::NOT_FOUND, "session_not_found"),
        AuthError::UserNotFound => (StatusCode::NOT_FOUND, "user_not_found"),
        AuthError::IdentityTaken => (StatusCode::CONFLICT, "identity_linked_elsewhere"),
        AuthError::Store(inner) => {
            tracing::error!(error = %inner, "storage failure in auth");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "storage is unavailable; nothing was acknowledged".into(),
                None,
            );
        }
    };
    (status, code, e.to_string(), None)
}

fn oauth_parts(e: &OAuthError) -> (StatusCode, &'static str, String, Option<String>) {
    let (status, code) = match e {
        OAuthError::Auth(inner) => return auth_parts(inner),
        OAuthError::UnknownProvider(_) => (StatusCode::NOT_FOUND, "oauth_provider_not_found"),
        OAuthError::ReturnUrlNotAllowed(_) => (StatusCode::BAD_REQUEST, "oauth_return_url_not_allowed"),
        OAuthError::StateInvalid => (StatusCode::BAD_REQUEST, "oauth_state_invalid"),
        OAuthError::AccessDenied(_) => (StatusCode::FORBIDDEN, "oauth_access_denied"),
        OAuthError::ProviderError(_) => (StatusCode::BAD_GATEWAY, "oauth_provider_error"),
        OAuthError::TokenInvalid(_) => (StatusCode::UNAUTHORIZED, "oauth_token_invalid"),
        OAuthError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "oauth_provider_unreachable"),
        OAuthError::BadResponse(_) => (StatusCode::BAD_GATEWAY, "oauth_provider_error"),
        OAuthError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "oauth_busy"),
        OAuthError::TooManyStarts(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
    };
    (status, code, e.to_string(), None)
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
            // What a plugin says about its upstream or itself may name keys, accounts or
            // internal hosts: the client gets the plugin and the request id, the log the
            // text.
            GuestError::Unavailable(m) => logged(&plugin, m, StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            GuestError::Upstream(m) => logged(&plugin, m, StatusCode::BAD_GATEWAY, "upstream_error"),
            GuestError::Timeout(m) => logged(&plugin, m, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            GuestError::LimitExceeded(m) => logged(
                &plugin,
                m,
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_limit_exceeded",
            ),
            GuestError::Internal(m) => logged(&plugin, m, StatusCode::INTERNAL_SERVER_ERROR, "plugin_error"),
        },
    };
    (status, code, message, Some(plugin))
}

/// A plugin's failure whose text is for the operator: logged (with the request id, from
/// the span); the client reads which plugin failed and where to look.
fn logged(
    plugin: &str,
    detail: &str,
    status: StatusCode,
    code: &'static str,
) -> (StatusCode, &'static str, String) {
    tracing::warn!(plugin = %plugin, code, detail = %detail, "plugin failed");
    (status, code, generic_plugin_message(plugin))
}

fn generic_plugin_message(plugin: &str) -> String {
    match current_request_id() {
        Some(id) => format!("plugin {plugin} failed; the cause is in the server log under request id {id}"),
        None => format!("plugin {plugin} failed; the cause is in the server log"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, plugin) = self.parts();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                request_id: current_request_id().map(|id| id.to_string()),
                plugin,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Plugin(InvokeError {
                kind: InvokeErrorKind::Busy,
                ..
            })
            | ApiError::Auth(AuthError::Busy)
            | ApiError::OAuth(OAuthError::Busy) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Auth(AuthError::RateLimited(wait) | AuthError::TooManyRegistrations(wait))
            | ApiError::OAuth(OAuthError::TooManyStarts(wait)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            }
            ApiError::Auth(AuthError::Unauthenticated) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<ContactError> for ApiError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Invalid { .. } => ApiError::BadRequest {
                code: "invalid_contact",
                message: e.to_string(),
            },
            ContactError::NotFound => ApiError::NotFound {
                code: "contact_not_found",
                message: e.to_string(),
            },
            ContactError::TooMany => ApiError::Conflict {
                code: "too_many_contacts",
                message: e.to_string(),
            },
            ContactError::Store(inner) => ApiError::Storage(inner),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid { .. } => ApiError::BadRequest {
                code: "invalid_product",
                message: e.to_string(),
            },
            CatalogError::NotFound => ApiError::NotFound {
                code: "product_not_found",
                message: e.to_string(),
            },
            CatalogError::Exists => ApiError::Conflict {
                code: "sku_taken",
                message: e.to_string(),
            },
            CatalogError::Store(inner) => ApiError::Storage(inner),
            CatalogError::Search(inner) => ApiError::Internal(inner.to_string()),
        }
    }
}

impl From<WeatherError> for ApiError {
    fn from(e: WeatherError) -> Self {
        match e {
            WeatherError::Invalid(message) => ApiError::BadRequest {
                code: "invalid_location",
                message,
            },
            other => ApiError::Weather(std::sync::Arc::new(other)),
        }
    }
}

impl From<std::sync::Arc<WeatherError>> for ApiError {
    fn from(e: std::sync::Arc<WeatherError>) -> Self {
        ApiError::Weather(e)
    }
}

fn weather_parts(e: &WeatherError) -> (StatusCode, &'static str, String, Option<String>) {
    match e {
        WeatherError::Disabled => (
            StatusCode::SERVICE_UNAVAILABLE,
            "weather_disabled",
            e.to_string(),
            None,
        ),
        WeatherError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_location", m.clone(), None),
        WeatherError::Provider(inv) => {
            let plugin = Some(inv.plugin.to_string());
            match &inv.kind {
                InvokeErrorKind::Guest(GuestError::NotFound(m)) => {
                    (StatusCode::NOT_FOUND, "place_not_found", m.clone(), plugin)
                }
                InvokeErrorKind::Guest(GuestError::Invalid(m)) => {
                    (StatusCode::BAD_REQUEST, "invalid_location", m.clone(), plugin)
                }
                InvokeErrorKind::Guest(GuestError::Timeout(m)) => {
                    let (status, code, message) = logged(
                        inv.plugin.as_str(),
                        m,
                        StatusCode::GATEWAY_TIMEOUT,
                        "weather_timeout",
                    );
                    (status, code, message, plugin)
                }
                InvokeErrorKind::Guest(
                    GuestError::Upstream(m)
                    | GuestError::Unavailable(m)
                    | GuestError::Denied(m)
                    | GuestError::LimitExceeded(m),
                ) => {
                    let (status, code, message) = logged(
                        inv.plugin.as_str(),
                        m,
                        StatusCode::BAD_GATEWAY,
                        "weather_upstream",
                    );
                    (status, code, message, plugin)
                }
                _ => plugin_parts(inv),
            }
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::Plugin(inner) => ApiError::Plugin(inner),
            CheckoutError::Store(inner) => ApiError::Storage(inner),
            other => ApiError::Checkout(std::sync::Arc::new(other)),
        }
    }
}

/// A checkout error's answer: its status and code ([`CheckoutError::status_code`]),
/// and what the client may read.
fn checkout_parts(e: &CheckoutError) -> (StatusCode, String, String, Option<String>) {
    let (status, code) = e.status_code();
    let (message, plugin) = match e {
        CheckoutError::RuleMisbehaved(m) => {
            tracing::error!(detail = %m, "checkout rule misbehaved");
            (
                "a checkout rule failed; nothing was reserved or charged".into(),
                None,
            )
        }
        CheckoutError::PaymentFailed(f) | CheckoutError::ShippingFailed(f) => {
            tracing::warn!(plugin = %f.plugin, code = code.as_ref(), detail = %f.detail, "checkout provider failed");
            let message = f
                .public
                .clone()
                .unwrap_or_else(|| generic_plugin_message(&f.plugin));
            (message, Some(f.plugin.clone()))
        }
        other => (other.to_string(), None),
    };
    (status, code.into_owned(), message, plugin)
}
