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
        super::health::readyz,
        super::auth::register,
        super::auth::login,
        super::auth::logout,
        super::auth::me,
        super::auth::change_password,
        super::auth::sessions,
        super::auth::revoke_session,
        super::oauth::providers,
        super::oauth::start,
        super::oauth::callback,
        super::oauth::link,
        super::admin::list_users,
        super::admin::disable_user,
        super::admin_orders::list,
        super::admin_orders::read,
        super::contacts::create,
        super::contacts::list,
        super::contacts::read,
        super::contacts::update,
        super::contacts::remove,
        super::catalog::list,
        super::catalog::read,
        super::catalog::search,
        super::catalog::create,
        super::catalog::update,
        super::catalog::remove,
        super::weather::weather,
        super::checkout::quote,
        super::checkout::place,
        super::orders::list,
        super::orders::read,
        super::orders::tracking,
        super::orders::refund,
        super::webhooks::receive,
        super::plugins::invoke,
        openapi_json,
        super::metrics::metrics
    ),
    components(schemas(super::error::ErrorBody, super::error::ErrorDetail, super::health::Health)),
    modifiers(&SessionSecurity)
)]
pub struct ApiDoc;

/// Declares the `session` security scheme: `Authorization: Bearer <token>` (the same
/// token is also accepted from the `plinth_session` cookie).
struct SessionSecurity;

impl utoipa::Modify for SessionSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}
