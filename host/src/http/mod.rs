//! The HTTP API: one router per area, merged here, with the request-context middleware
//! (request id, tracing span, metrics) and JSON errors for everything, panics included.

mod admin;
mod admin_orders;
mod auth;
mod body;
mod catalog;
mod checkout;
mod client_ip;
mod contacts;
mod deadline;
mod error;
mod health;
mod json;
mod metrics;
mod oauth;
mod openapi;
mod orders;
mod orders_view;
mod plugin_response;
mod plugins;
mod request_context;
mod same_origin;
mod session_auth;
mod weather;
mod webhooks;

use std::ops::Deref;
use std::sync::Arc;

use axum::http::{Method, Uri};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::ApiDoc;
pub use plugins::longest_request;
pub use request_context::current_request_id;
pub use session_auth::SESSION_COOKIE;

use crate::auth::oidc::OAuth;
use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::checkout::Checkout;
use crate::contacts::Contacts;
use crate::runtime::Runtime;
use crate::store::Storage;
use crate::telemetry::Metrics;
use crate::weather::WeatherService;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub auth: Auth,
    pub oauth: OAuth,
    pub checkout: Arc<Checkout>,
    pub catalog: Arc<Catalog>,
    pub contacts: Contacts,
    pub runtime: Arc<Runtime>,
    pub weather: WeatherService,
    pub storage: Storage,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// The whole-request deadline of non-plugin routes (`[server] request_timeout_secs`).
    pub request_timeout: std::time::Duration,
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }

    /// Whether other copies of this state are still alive (connections, tasks).
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(oauth::router())
        .merge(admin::router())
        .merge(admin_orders::router())
        .merge(contacts::router())
        .merge(catalog::router())
        .merge(weather::router())
        .merge(checkout::router())
        .merge(orders::router())
        .merge(webhooks::router())
        .merge(plugins::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(CatchPanicLayer::custom(request_context::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context::request_context,
        ))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound(format!("{method} {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
