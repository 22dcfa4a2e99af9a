//! Who is calling: the session token from `Authorization: Bearer …` or the session
//! cookie, resolved by the auth service. Extractors for handlers that need a user.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use super::client_ip::client_ip;
use super::error::ApiError;
use super::{same_origin, AppState};
use crate::auth::{AuthError, ClientInfo, Principal};

/// Name of the session cookie (HttpOnly, SameSite=Lax).
pub const SESSION_COOKIE: &str = "plinth_session";

/// A session token as the client presented it.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `Authorization: Bearer …`: only code the user runs sends it.
    Bearer(&'a str),
    /// The session cookie: the browser sends it for any page, hence the origin check.
    Cookie(&'a str),
}

/// The raw token the client presented, if any (header first, then cookie).
pub fn presented_token(headers: &HeaderMap) -> Option<Presented<'_>> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| Presented::Bearer(token.trim()));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| Presented::Cookie(value))
}

/// The caller, if they presented a valid session; `Err` for storage failures and for
/// an unsafe `method` authenticated by the cookie from another origin (403
/// `csrf_rejected`, checked before anything else happens).
pub async fn optional_principal(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let token = match presented_token(headers) {
        None => return Ok(None),
        Some(Presented::Bearer(token)) => token,
        Some(Presented::Cookie(token)) => {
            let public_url = state.auth.config().oauth.public_url.as_ref();
            same_origin::check(method, headers, public_url)?;
            token
        }
    };
    match state.auth.authenticate(token).await {
        Ok(p) => Ok(Some(p)),
        Err(AuthError::Unauthenticated) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The caller, who must be logged in (401 otherwise).
pub async fn required_principal(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    optional_principal(state, method, headers)
        .await?
        .ok_or_else(|| AuthError::Unauthenticated.into())
}

/// A logged-in caller.
pub struct CurrentUser(pub Principal);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        required_principal(state, &parts.method, &parts.headers)
            .await
            .map(CurrentUser)
    }
}

/// A logged-in admin (401 when not logged in, 403 for other users).
pub struct AdminUser(pub Principal);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = required_principal(state, &parts.method, &parts.headers).await?;
        if !p.is_admin() {
            return Err(AuthError::Forbidden.into());
        }
        Ok(AdminUser(p))
    }
}

/// Where the request comes from: the address from [`client_ip`] (the peer, or behind
/// the operator's `trusted_proxies` the client they saw) and the user agent.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Client(ClientInfo {
            ip: client_ip(peer, &parts.headers, state.auth.config().trusted_proxies),
            user_agent,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_in_header_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(header::COOKIE, "a=1; plinth_session=tok123; b=2".parse().unwrap());
        assert_eq!(presented_token(&h), Some(Presented::Cookie("tok123")));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented_token(&h), Some(Presented::Bearer("abc")));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_token(&h), None);
    }
}
