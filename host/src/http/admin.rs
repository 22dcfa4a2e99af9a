//! `/admin/*`: user administration, admins only.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::UserView;
use super::error::{ApiError, ErrorBody};
use super::json::ApiQuery;
use super::session_auth::AdminUser;
use super::AppState;
use crate::auth::AuthError;
use crate::domain::UserId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{id}/disable", post(disable_user))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// At most this many (1-200, default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsersBody {
    users: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Users in creation order.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("session" = [])), params(Page),
    responses((status = 200, body = UsersBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<UsersBody>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_limit",
            message: "limit must be between 1 and 200".into(),
        });
    }
    let mut users = state.auth.list_users(page.cursor.as_deref(), limit + 1).await?;
    let next_cursor = (users.len() > limit).then(|| users[limit - 1].id.to_string());
    users.truncate(limit);
    Ok(Json(UsersBody {
        users: users.iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct DisabledBody {
    user: UserView,
}

/// Disables an account and ends all its sessions.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin", security(("session" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = DisabledBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn disable_user(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Json<DisabledBody>, ApiError> {
    // An id that cannot be a user's is no user's.
    let id = UserId::parse(&id).map_err(|_| AuthError::UserNotFound)?;
    let user = state.auth.disable_user(&id).await?;
    Ok(Json(DisabledBody { user: (&user).into() }))
}
