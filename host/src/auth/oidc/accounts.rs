//! External identities and accounts: first login creates a user (no password), later
//! logins find it by (issuer, sub); linking to an existing account needs that account's
//! session, or a verified email from a provider the operator trusts for it.

use rand::TryRngCore;

use crate::auth::{now_ms, Auth, AuthError, ClientInfo, NewSession, Principal};
use crate::domain::{UserId, Username};
use crate::store::{AccountError, LinkedIdentity, Role, UserRecord};

/// Who the provider says logged in.
#[derive(Clone, Debug)]
pub struct ExternalIdentity {
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    /// The provider's `trust_verified_email` setting.
    pub trust_verified_email: bool,
}

impl ExternalIdentity {
    fn linked(&self) -> LinkedIdentity {
        LinkedIdentity {
            provider: self.provider.clone(),
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            email: self.email.clone(),
            linked_at: now_ms(),
        }
    }

    /// The email, lowercased, if a provider the operator trusts for it says it is verified.
    fn trusted_email(&self) -> Option<String> {
        (self.trust_verified_email && self.email_verified)
            .then(|| self.email.as_deref().map(str::to_ascii_lowercase))
            .flatten()
            .filter(|e| e.contains('@') && e.len() <= 254)
    }
}

/// A valid username derived from what the provider says (preferred_username, the email's
/// local part, else "user"): only a-z 0-9 . _ -, 3-24 characters.
pub fn username_base(identity: &ExternalIdentity) -> String {
    let raw = identity
        .preferred_username
        .clone()
        .or_else(|| {
            identity
                .email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let mut name: String = raw
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    if name.len() < 3 {
        name = "user".into();
    }
    name
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 3];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator is available");
    hex::encode(bytes)
}

impl Auth {
    /// Logs in with an external identity: its user, else (trusted verified email) the
    /// user who has that email, else a new user. Returns a session like a password login.
    pub async fn external_login(
        &self,
        identity: &ExternalIdentity,
        client: ClientInfo,
    ) -> Result<NewSession, AuthError> {
        let trusted_email = identity.trusted_email();
        let user = match self
            .accounts
            .user_by_identity(&identity.issuer, &identity.subject)
            .await?
        {
            Some(user) => user,
            None => match match trusted_email.as_deref() {
                Some(email) => self.accounts.user_by_verified_email(email).await?,
                None => None,
            } {
                Some(owner) => {
                    let user = self
                        .accounts
                        .link_identity(&owner.id, &identity.linked(), trusted_email.as_deref())
                        .await?;
                    tracing::info!(user_id = %user.id, provider = %identity.provider, "external identity linked by trusted verified email");
                    user
                }
                None => {
                    self.create_external_user(identity, trusted_email.as_deref())
                        .await?
                }
            },
        };
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        tracing::info!(user_id = %user.id, provider = %identity.provider, "social login");
        self.open_session(user, client).await
    }

    async fn create_external_user(
        &self,
        identity: &ExternalIdentity,
        trusted_email: Option<&str>,
    ) -> Result<UserRecord, AuthError> {
        let base = username_base(identity);
        let now = now_ms();
        let mut user = UserRecord {
            id: UserId::generate(),
            username: String::new(),
            // No password: password login never matches an empty hash.
            password_hash: String::new(),
            roles: vec![Role::User],
            disabled: false,
            created_at: now,
            password_changed_at: now,
            identities: vec![identity.linked()],
        };
        for attempt in 0..8 {
            let candidate = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", random_suffix())
            };
            user.username = Username::parse(&candidate)
                .map_err(|e| AuthError::InvalidUsername(e.to_string()))?
                .to_string();
            match self
                .accounts
                .create_user_with_identity(&user, trusted_email)
                .await
            {
                Ok(()) => {
                    tracing::info!(user_id = %user.id, username = %user.username, provider = %identity.provider, "user created by social login");
                    return Ok(user);
                }
                Err(AccountError::UsernameTaken) => continue,
                // A concurrent first login of the same identity won: log in as that user.
                Err(AccountError::IdentityTaken) => {
                    return self
                        .accounts
                        .user_by_identity(&identity.issuer, &identity.subject)
                        .await?
                        .ok_or(AuthError::IdentityTaken)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::UsernameTaken)
    }

    /// Links an external identity to the logged-in user `p` (409 if another user has it).
    pub async fn link_external(
        &self,
        p: &Principal,
        identity: &ExternalIdentity,
    ) -> Result<UserRecord, AuthError> {
        let user = self
            .accounts
            .link_identity(
                &p.user.id,
                &identity.linked(),
                identity.trusted_email().as_deref(),
            )
            .await?;
        self.storage.flush().await?;
        tracing::info!(user_id = %user.id, provider = %identity.provider, "external identity linked");
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(preferred: Option<&str>, email: Option<&str>) -> ExternalIdentity {
        ExternalIdentity {
            provider: "google".into(),
            issuer: "https://accounts.google.com".into(),
            subject: "1".into(),
            email: email.map(str::to_string),
            email_verified: true,
            preferred_username: preferred.map(str::to_string),
            trust_verified_email: false,
        }
    }

    #[test]
    fn usernames_are_derived_safely() {
        assert_eq!(username_base(&ident(Some("Alice.B"), None)), "alice.b");
        assert_eq!(username_base(&ident(None, Some("Bob+x@Example.com"))), "bobx");
        assert_eq!(username_base(&ident(Some("__ü"), None)), "user");
        assert_eq!(username_base(&ident(None, None)), "user");
        let long = username_base(&ident(Some(&"x".repeat(100)), None));
        assert_eq!(long.len(), 24);
        for s in ["alice.b", "bobx", "user", long.as_str()] {
            assert!(Username::parse(&format!("{s}-abcdef")).is_ok());
        }
        assert!(
            ident(None, Some("a@b.c")).trusted_email().is_none(),
            "not trusted by default"
        );
    }
}
