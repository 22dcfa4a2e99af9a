//! `/auth/*`: register, login, logout, me, password change, own sessions.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::session_auth::{Client, CurrentUser, SESSION_COOKIE};
use super::AppState;
use crate::store::{LinkedIdentity, Role, SessionRecord, UserRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/password", post(change_password))
        .route("/auth/sessions", get(sessions))
        .route("/auth/sessions/{id}", delete(revoke_session))
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: String,
    username: String,
    roles: Vec<RoleView>,
    disabled: bool,
    created_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleView {
    Admin,
    User,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => Self::Admin,
            Role::User => Self::User,
        }
    }
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.clone(),
            roles: u.roles.iter().copied().map(RoleView::from).collect(),
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    created_at: String,
    last_seen_at: String,
    /// When the session ends if unused from now on (idle or absolute timeout).
    expires_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    /// This is the session making the request.
    current: bool,
}

fn session_view(state: &AppState, s: &SessionRecord, current_id: Option<&str>) -> SessionView {
    SessionView {
        id: s.id.clone(),
        created_at: rfc3339(s.created_at),
        last_seen_at: rfc3339(s.last_seen_at),
        expires_at: rfc3339(state.auth.expires_at(s)),
        user_agent: s.user_agent.clone(),
        ip: s.ip.clone(),
        current: current_id == Some(s.id.as_str()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 3-32 of a-z 0-9 . _ - (case-insensitive).
    username: String,
    /// At least 8 characters, at most 1024 bytes, not a common password.
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserBody {
    user: UserView,
}

/// Creates an account (role `user`). Attempts are limited per client address
/// (`[auth] rate_limit.register_per_ip_per_hour`; 429 with Retry-After).
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = UserBody), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(c): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let user = state.auth.register(&c.username, c.password, &client).await?;
    Ok((StatusCode::CREATED, Json(UserBody { user: (&user).into() })).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct LoginBody {
    /// The session token: send it as `Authorization: Bearer …` (it is also set as an
    /// HttpOnly cookie). Shown only in this response.
    token: String,
    token_type: &'static str,
    session: SessionView,
    user: UserView,
}

/// Checks the password and opens a new session. Failed attempts are rate limited per
/// username and per client address (429 with Retry-After).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = LoginBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(c): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let new = state.auth.login(&c.username, c.password, client).await?;
    let cookie = session_cookie(&state, Some(new.token.reveal()));
    let body = LoginBody {
        token: new.token.reveal().to_string(),
        token_type: "Bearer",
        session: session_view(&state, &new.session, Some(&new.session.id)),
        user: (&new.user).into(),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `Set-Cookie` for a new session, or to clear it.
pub(super) fn session_cookie(state: &AppState, token: Option<&str>) -> HeaderValue {
    let cfg = state.auth.config();
    let secure = if cfg.cookie_secure { "; Secure" } else { "" };
    let value = match token {
        Some(t) => format!(
            "{SESSION_COOKIE}={t}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
            cfg.absolute_timeout.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("plinth_session=; Max-Age=0"))
}

/// Ends the current session at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("session" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
) -> Result<Response, ApiError> {
    state.auth.logout(&p).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie(&state, None))],
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct MeBody {
    user: UserView,
    session: SessionView,
    /// Provider accounts (social login) that log in as this user.
    identities: Vec<IdentityView>,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    /// The `[[auth.oidc]]` name.
    provider: String,
    issuer: String,
    /// The provider's id for the account (`sub`).
    subject: String,
    email: Option<String>,
    linked_at: String,
}

impl From<&LinkedIdentity> for IdentityView {
    fn from(i: &LinkedIdentity) -> Self {
        Self {
            provider: i.provider.clone(),
            issuer: i.issuer.clone(),
            subject: i.subject.clone(),
            email: i.email.clone(),
            linked_at: rfc3339(i.linked_at),
        }
    }
}

/// The logged-in user, their current session and linked provider accounts.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("session" = [])),
    responses((status = 200, body = MeBody), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, CurrentUser(p): CurrentUser) -> Json<MeBody> {
    Json(MeBody {
        user: (&p.user).into(),
        session: session_view(&state, &p.session, Some(&p.session.id)),
        identities: p.user.identities.iter().map(IdentityView::from).collect(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Other sessions of this user that were ended.
    revoked_sessions: usize,
}

/// Changes the password; every other session of the user is revoked.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("session" = [])), request_body = PasswordChange,
    responses((status = 200, body = PasswordChanged), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let revoked_sessions = state
        .auth
        .change_password(&p, body.current_password, body.new_password)
        .await?;
    Ok(Json(PasswordChanged { revoked_sessions }))
}

#[derive(Serialize, ToSchema)]
pub struct SessionsBody {
    sessions: Vec<SessionView>,
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("session" = [])),
    responses((status = 200, body = SessionsBody), (status = 401, body = ErrorBody)))]
pub async fn sessions(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
) -> Result<Json<SessionsBody>, ApiError> {
    let sessions = state.auth.sessions(&p).await?;
    Ok(Json(SessionsBody {
        sessions: sessions
            .iter()
            .map(|s| session_view(&state, s, Some(&p.session.id)))
            .collect(),
    }))
}

/// Revokes one of the caller's sessions (404 for anyone else's).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("session" = [])),
    params(("id" = String, Path, description = "Session id from GET /auth/sessions")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_session(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
