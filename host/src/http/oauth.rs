//! `/auth/oauth/*`: social login. `start` sends the browser to the provider (302) with
//! `state`, `nonce` and a PKCE challenge, binding the login to the browser with an
//! HttpOnly cookie; `callback` completes it, opens the same session a password login
//! opens and sends the browser to an allow-listed return URL; `link` adds a provider
//! account to the logged-in user.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::session_cookie;
use super::error::{ApiError, ErrorBody};
use super::session_auth::{optional_principal, Client, CurrentUser};
use super::AppState;
use crate::auth::oidc::{CallbackParams, OAuthError, PENDING_TTL};
use crate::auth::ClientInfo;

/// The cookie binding a login in progress to the browser that started it.
pub const OAUTH_COOKIE: &str = "plinth_oauth";
const COOKIE_PATH: &str = "/auth/oauth/";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oauth/providers", get(providers))
        .route("/auth/oauth/{provider}/start", get(start))
        .route("/auth/oauth/{provider}/callback", get(callback))
        .route("/auth/oauth/{provider}/link", post(link))
}

/// First value of each query parameter (a repeated one cannot smuggle a second value).
fn query_params(raw: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !out.iter().any(|(seen, _)| *seen == k) {
            out.push((k.into_owned(), v.into_owned()));
        }
    }
    out
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

fn binding_cookie(state: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if state.auth.config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let text = match value {
        Some(v) => format!(
            "{OAUTH_COOKIE}={v}; HttpOnly; SameSite=Lax; Path={COOKIE_PATH}; Max-Age={}{secure}",
            PENDING_TTL.as_secs()
        ),
        None => format!("{OAUTH_COOKIE}=; HttpOnly; SameSite=Lax; Path={COOKIE_PATH}; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("plinth_oauth=; Max-Age=0"))
}

fn redirect(status: StatusCode, to: &str, cookies: Vec<HeaderValue>) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(to)
        .map_err(|_| ApiError::Internal("redirect URL is not a header value".into()))?;
    let mut resp = (
        status,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response();
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

#[derive(Serialize, ToSchema)]
pub struct ProvidersBody {
    /// Names usable in `/auth/oauth/{provider}/start`.
    providers: Vec<String>,
}

/// The configured social-login providers.
#[utoipa::path(get, path = "/auth/oauth/providers", tag = "auth", responses((status = 200, body = ProvidersBody)))]
pub async fn providers(State(state): State<AppState>) -> Json<ProvidersBody> {
    Json(ProvidersBody {
        providers: state
            .oauth
            .provider_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}

/// Starts a social login: 302 to the provider. `return_to` (optional) must be on
/// `[auth] oauth_return_urls`; the login must finish within 10 minutes in this browser.
/// Starts are limited per client address (429 with Retry-After); when
/// `[auth] oauth_max_pending` logins are in progress, new ones get 503 `oauth_busy`.
#[utoipa::path(get, path = "/auth/oauth/{provider}/start", tag = "auth",
    params(("provider" = String, Path, description = "A configured provider, e.g. google"),
           ("return_to" = Option<String>, Query, description = "Where to send the browser afterwards (allow-listed)")),
    responses((status = 302, description = "To the provider's login page"), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Client(client): Client,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(query.as_deref());
    let begun = state
        .oauth
        .begin(&provider, param(&params, "return_to").as_deref(), None, client.ip)
        .await?;
    redirect(
        StatusCode::FOUND,
        begun.redirect.as_str(),
        vec![binding_cookie(&state, Some(&begun.binding))],
    )
}

/// Links a provider account to the logged-in user: 303 to the provider; the callback
/// adds the identity (409 `identity_linked_elsewhere` if another user has it).
#[utoipa::path(post, path = "/auth/oauth/{provider}/link", tag = "auth", security(("session" = [])),
    params(("provider" = String, Path, description = "A configured provider"),
           ("return_to" = Option<String>, Query, description = "Where to send the browser afterwards (allow-listed)")),
    responses((status = 303, description = "To the provider's login page"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn link(
    State(state): State<AppState>,
    CurrentUser(p): CurrentUser,
    Path(provider): Path<String>,
    Client(client): Client,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(query.as_deref());
    let begun = state
        .oauth
        .begin(
            &provider,
            param(&params, "return_to").as_deref(),
            Some(p.user.id.to_string()),
            client.ip,
        )
        .await?;
    redirect(
        StatusCode::SEE_OTHER,
        begun.redirect.as_str(),
        vec![binding_cookie(&state, Some(&begun.binding))],
    )
}

/// Where the provider sends the browser back. On success: a session (cookie) and 302 to
/// the return URL; for a link, the identity is added to the logged-in user. Otherwise a
/// JSON error and no session: 400 `oauth_state_invalid` (bad, replayed, expired or
/// another browser's), 403 `oauth_access_denied`, 401 `oauth_token_invalid`, 502
/// `oauth_provider_unreachable` / `oauth_provider_error`.
#[utoipa::path(get, path = "/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "A configured provider")),
    responses((status = 302, description = "Logged in: to the return URL"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let clear = binding_cookie(&state, None);
    let params = query_params(query.as_deref());
    let params = CallbackParams {
        code: param(&params, "code"),
        state: param(&params, "state"),
        iss: param(&params, "iss"),
        error: param(&params, "error"),
        error_description: param(&params, "error_description"),
    };
    let result = complete(&state, &provider, client, &headers, params, clear.clone()).await;
    match result {
        Ok(resp) => resp,
        Err(e) => {
            if !matches!(e, ApiError::OAuth(_)) {
                tracing::warn!(provider = %provider.chars().take(64).collect::<String>(), error = %e, "social login failed");
            }
            let mut resp = e.into_response();
            resp.headers_mut().append(header::SET_COOKIE, clear);
            resp
        }
    }
}

/// The callback after its query is parsed: finish the login, then log in or link.
async fn complete(
    state: &AppState,
    provider: &str,
    client: ClientInfo,
    headers: &HeaderMap,
    params: CallbackParams,
    clear: HeaderValue,
) -> Result<Response, ApiError> {
    let finished = state
        .oauth
        .finish(provider, params, cookie_value(headers, OAUTH_COOKIE))
        .await?;
    match &finished.link_user_id {
        Some(user_id) => {
            // The browser that asked for the link must still be logged in as that user.
            // The callback is a GET route: a safe method, no origin check applies.
            let Some(p) = optional_principal(state, &axum::http::Method::GET, headers)
                .await?
                .filter(|p| p.user.id.as_str() == user_id)
            else {
                tracing::warn!(provider = %provider, "link callback without the session that asked for it");
                return Err(OAuthError::StateInvalid.into());
            };
            state.auth.link_external(&p, &finished.identity).await?;
            redirect(StatusCode::FOUND, finished.return_url.as_str(), vec![clear])
        }
        None => {
            let new = state.auth.external_login(&finished.identity, client).await?;
            redirect(
                StatusCode::FOUND,
                finished.return_url.as_str(),
                vec![clear, session_cookie(state, Some(new.token.reveal()))],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_query_value_wins() {
        let p = query_params(Some("state=a&code=c&state=b&x"));
        assert_eq!(param(&p, "state").as_deref(), Some("a"));
        assert_eq!(param(&p, "code").as_deref(), Some("c"));
        assert_eq!(param(&p, "missing"), None);
    }
}
