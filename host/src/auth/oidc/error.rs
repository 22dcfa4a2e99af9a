use crate::auth::AuthError;

/// Why a social login failed. Each is logged where it happens (never with tokens); the
/// HTTP layer maps each to a status and a stable code. No session exists after any.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("no login provider named {0:?}")]
    UnknownProvider(String),
    #[error("return URL {0:?} is not on the allow-list")]
    ReturnUrlNotAllowed(String),
    /// Missing, unknown, expired, replayed or from another browser.
    #[error("the login state is invalid, expired or already used; start the login again")]
    StateInvalid,
    #[error("the provider refused the login: {0}")]
    AccessDenied(String),
    #[error("the provider reported an error: {0}")]
    ProviderError(String),
    /// The ID token (or the userinfo answer) failed validation.
    #[error("the provider's token is invalid: {0}")]
    TokenInvalid(String),
    #[error("the login provider is unreachable: {0}")]
    Unreachable(String),
    #[error("the login provider sent an invalid response: {0}")]
    BadResponse(String),
    /// The table of logins in progress is full (live logins are never evicted).
    #[error("too many logins in progress; retry shortly")]
    Busy,
    #[error("too many logins started from this address; retry in {} s", .0.as_secs().max(1))]
    TooManyStarts(std::time::Duration),
    #[error(transparent)]
    Auth(#[from] AuthError),
}
