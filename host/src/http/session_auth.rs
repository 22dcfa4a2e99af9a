//! Who is calling: the session token from `Authorization: Bearer …` or the session
//! cookie, resolved by the auth service. Extractors for handlers that need a user.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::client_ip::client_ip;
use super::error::ApiError;
use super::AppState;
use crate::auth::{AuthError, ClientInfo, Principal};

/// Name of the session cookie (HttpOnly, SameSite=Lax).
pub const SESSION_COOKIE: &str = "plinth_session";

/// The raw token the client presented, if any (header first, then cookie).
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The caller, if they presented a valid session; `Err` only for storage failures.
pub fn optional_principal(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    match presented_token(headers) {
        None => Ok(None),
        Some(token) => match state.auth.authenticate(token) {
            Ok(p) => Ok(Some(p)),
            Err(AuthError::Unauthenticated) => Ok(None),
            Err(e) => Err(e.into()),
        },
    }
}

/// The caller, who must be logged in (401 otherwise).
pub fn required_principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    optional_principal(state, headers)?.ok_or_else(|| AuthError::Unauthenticated.into())
}

/// A logged-in caller.
pub struct CurrentUser(pub Principal);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        required_principal(state, &parts.headers).map(CurrentUser)
    }
}

/// A logged-in admin (401 when not logged in, 403 for other users).
pub struct AdminUser(pub Principal);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = required_principal(state, &parts.headers)?;
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
        assert_eq!(presented_token(&h), Some("tok123"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_token(&h), None);
    }
}
