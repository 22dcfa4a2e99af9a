use std::time::Duration;

use crate::domain::PasswordError;
use crate::store::StoreError;

/// Errors of the auth layer; the HTTP layer maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidUsername(String),
    #[error(transparent)]
    WeakPassword(#[from] PasswordError),
    #[error("that username is taken")]
    UsernameTaken,
    /// Wrong password, unknown user or malformed login: one answer for all (no oracle).
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("authentication required")]
    Unauthenticated,
    #[error("this requires the admin role")]
    Forbidden,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("too many failed attempts; retry in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("too many registrations from this address; retry in {} s", .0.as_secs().max(1))]
    TooManyRegistrations(Duration),
    #[error("the server is busy verifying passwords; retry shortly")]
    Busy,
    #[error("no such session")]
    SessionNotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("this external account is already linked to another user")]
    IdentityTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::store::AccountError> for AuthError {
    fn from(e: crate::store::AccountError) -> Self {
        use crate::store::AccountError;
        match e {
            AccountError::UsernameTaken => AuthError::UsernameTaken,
            AccountError::IdentityTaken => AuthError::IdentityTaken,
            AccountError::UserNotFound => AuthError::UserNotFound,
            AccountError::Store(e) => AuthError::Store(e),
        }
    }
}
