//! The OpenAPI document of every route, served at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Plinth",
        description = "A backend whose business rules and integrations run as sandboxed WebAssembly components."
    ),
    paths(
        super::health::healthz,
        super::plugins::invoke,
        openapi_json,
        super::metrics::metrics
    ),
    components(schemas(super::error::ErrorBody, super::error::ErrorDetail, super::health::Health))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}
