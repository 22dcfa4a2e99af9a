//! `/metrics` in the Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

/// Prometheus metrics: requests by route and status, latency histograms, plugin
/// invocations by outcome (ok, trap, timeout, limits), fuel, social logins in progress.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.set_oauth_pending(state.oauth.pending_count().await);
    state.metrics.set_db_retries(state.storage.retries());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}
