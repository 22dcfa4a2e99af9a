//! `/contacts`: the caller's own address book. Another user's contact is a 404, never a
//! 403, so ids do not leak.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::rfc3339;
use super::error::{ApiError, ErrorBody};
use super::json::{bad_query, check_limit, ApiJson, ApiQuery};
use super::session_auth::CurrentUser;
use super::AppState;
use crate::contacts::{ListQuery, NewContact, SortOrder};
use crate::store::ContactRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contacts", get(list).post(create))
        .route("/contacts/{id}", get(read).patch(update).delete(remove))
}

#[derive(Serialize, ToSchema)]
pub struct ContactView {
    id: String,
    name: String,
    /// E.164.
    phone: Option<String>,
    email: Option<String>,
    notes: Option<String>,
    tags: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<ContactRecord> for ContactView {
    fn from(c: ContactRecord) -> Self {
        Self {
            id: c.id,
            name: c.name,
            phone: c.phone,
            email: c.email,
            notes: c.notes,
            tags: c.tags,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ContactBody {
    contact: ContactView,
}

/// Saves a new contact. The phone is normalized to E.164 (the country code is required).
#[utoipa::path(post, path = "/contacts", tag = "contacts", security(("session" = [])), request_body = NewContact,
    responses((status = 201, body = ContactBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    ApiJson(new): ApiJson<NewContact>,
) -> Result<Response, ApiError> {
    let contact = state.contacts.create(&p.user.id, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(ContactBody {
            contact: contact.into(),
        }),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// 1-100, default 20.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `name` (default), `-name`, `created_at`, `-created_at`.
    sort: Option<String>,
    /// Only contacts with this tag.
    tag: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactsBody {
    contacts: Vec<ContactView>,
    next_cursor: Option<String>,
}

/// The caller's contacts, sorted and paginated.
#[utoipa::path(get, path = "/contacts", tag = "contacts", security(("session" = [])), params(ListParams),
    responses((status = 200, body = ContactsBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ContactsBody>, ApiError> {
    let limit = check_limit(params.limit)?;
    let sort = SortOrder::parse(params.sort.as_deref().unwrap_or("name"))
        .ok_or_else(|| bad_query("sort must be name, -name, created_at or -created_at"))?;
    let query = ListQuery {
        limit,
        cursor: params.cursor,
        sort,
        tag: params.tag.map(|t| t.to_ascii_lowercase()),
    };
    let page = state.contacts.list(&p.user.id, &query).await?;
    Ok(Json(ContactsBody {
        contacts: page.items.into_iter().map(ContactView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One of the caller's contacts.
#[utoipa::path(get, path = "/contacts/{id}", tag = "contacts", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ContactBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ContactBody>, ApiError> {
    let contact = state.contacts.get(&p.user.id, &id).await?;
    Ok(Json(ContactBody {
        contact: contact.into(),
    }))
}

/// JSON merge patch: absent fields stay, `null` clears `phone`, `email`, `notes`, `tags`.
#[utoipa::path(patch, path = "/contacts/{id}", tag = "contacts", security(("session" = [])),
    params(("id" = String, Path)), request_body = Object,
    responses((status = 200, body = ContactBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<ContactBody>, ApiError> {
    let contact = state.contacts.patch(&p.user.id, &id, patch).await?;
    Ok(Json(ContactBody {
        contact: contact.into(),
    }))
}

/// Deletes one of the caller's contacts.
#[utoipa::path(delete, path = "/contacts/{id}", tag = "contacts", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.contacts.delete(&p.user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
