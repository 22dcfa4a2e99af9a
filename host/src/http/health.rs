//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    /// `ok`, or `unavailable` when the shared database does not answer (requests that
    /// need it get 503 meanwhile; the server recovers by itself when it is back).
    storage: &'static str,
}

/// Liveness probe: answers as long as the server can serve requests (200 even while the
/// database is away: restarting this process would not bring it back).
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        storage: storage_status(&state).await,
    })
}

/// Readiness probe: 200 when this replica can serve everything, 503 while its database
/// does not answer (a load balancer sends traffic elsewhere).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let storage = storage_status(&state).await;
    let status = match storage {
        "ok" => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        status,
        Json(Health {
            status: if status.is_success() { "ok" } else { "unavailable" },
            storage,
        }),
    )
}

async fn storage_status(state: &AppState) -> &'static str {
    match state.storage.postgres() {
        None => "ok",
        Some(pg) => match tokio::time::timeout(std::time::Duration::from_secs(2), pg.ping()).await {
            Ok(Ok(())) => "ok",
            _ => "unavailable",
        },
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}
