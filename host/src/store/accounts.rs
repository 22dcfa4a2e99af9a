//! Users and sessions: the records, the [`AccountStore`] trait the auth layer uses, and
//! its sled implementation. Nothing secret is stored raw: passwords as argon2id PHC
//! strings, session tokens as SHA-256 hashes.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::codec::{decode, encode};
use super::StoreError;
use crate::domain::UserId;

/// Roles a user can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    /// Time-ordered (UUIDv7), so listing by id lists by creation.
    pub id: UserId,
    /// The normalized username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub password_changed_at: i64,
    /// External identities (social login) that log in as this user. An account made by
    /// a social login has an empty `password_hash`: password login fails for it.
    #[serde(default)]
    pub identities: Vec<LinkedIdentity>,
}

/// An account at an external provider, keyed by (issuer, subject), never by email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIdentity {
    /// The `[[auth.oidc]]` name it came through.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    /// As the provider last reported it; informational.
    pub email: Option<String>,
    /// Unix milliseconds.
    pub linked_at: i64,
}

/// The key of an identity in the `identities` tree: unambiguous for any issuer and sub.
fn identity_key(issuer: &str, subject: &str) -> Vec<u8> {
    serde_json::to_vec(&(issuer, subject)).unwrap_or_default()
}

impl UserRecord {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Adds `identity` to the user's list, or refreshes the email of the one it is.
    pub fn remember_identity(&mut self, identity: &LinkedIdentity) {
        match self
            .identities
            .iter_mut()
            .find(|i| i.issuer == identity.issuer && i.subject == identity.subject)
        {
            Some(existing) => existing.email = identity.email.clone(),
            None => self.identities.push(identity.clone()),
        }
    }
}

/// SHA-256 of a session token: the only form in which tokens are stored.
pub type TokenHash = [u8; 32];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Public id for listing and revoking; not a credential.
    pub id: String,
    pub user_id: UserId,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_seen_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username is taken")]
    UsernameTaken,
    #[error("this external identity belongs to another account")]
    IdentityTaken,
    #[error("no such user")]
    UserNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for AccountError {
    fn from(e: sled::Error) -> Self {
        AccountError::Store(e.into())
    }
}

/// What the auth layer needs from storage. Each method is atomic on its own.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// Fails with `UsernameTaken` if the (normalized) username exists.
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError>;
    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces an existing user's record (same id and username).
    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Users in creation order, after `after` (an id), at most `limit`.
    async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>, StoreError>;
    async fn insert_session(&self, hash: &TokenHash, session: &SessionRecord) -> Result<(), StoreError>;
    async fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError>;
    /// Updates `last_seen_at` of a session that still exists (never resurrects one).
    async fn touch_session(&self, hash: &TokenHash, last_seen_at: i64) -> Result<(), StoreError>;
    async fn delete_session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError>;
    /// A user's sessions with their token hashes.
    async fn user_sessions(&self, user_id: &UserId) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError>;
    /// Every session, for the expiry sweeper.
    async fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError>;
    /// The user an external identity logs in as.
    async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<UserRecord>, StoreError>;
    /// The user a trusted provider vouched for this (lowercase) email for.
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Creates a user together with its identities (`user.identities`), atomically:
    /// `UsernameTaken` or `IdentityTaken` and nothing is written. `verified_email`, if
    /// any, is recorded for [`AccountStore::user_by_verified_email`] unless taken.
    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        verified_email: Option<&str>,
    ) -> Result<(), AccountError>;
    /// Adds `identity` to a user (a no-op if it is already theirs); `IdentityTaken` if it
    /// belongs to someone else. Returns the updated user.
    async fn link_identity(
        &self,
        user_id: &UserId,
        identity: &LinkedIdentity,
        verified_email: Option<&str>,
    ) -> Result<UserRecord, AccountError>;
}

/// [`AccountStore`] on sled trees.
pub struct SledAccounts {
    users: sled::Tree,
    usernames: sled::Tree,
    sessions: sled::Tree,
    user_sessions: sled::Tree,
    identities: sled::Tree,
    verified_emails: sled::Tree,
}

fn index_key(user_id: &UserId, session_id: &str) -> Vec<u8> {
    format!("{user_id}/{session_id}").into_bytes()
}

fn to_hash(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("session key is not 32 bytes".into()))
}

impl SledAccounts {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            sessions: db.open_tree("sessions")?,
            user_sessions: db.open_tree("user-sessions")?,
            identities: db.open_tree("identities")?,
            verified_emails: db.open_tree("verified-emails")?,
        })
    }
}

#[async_trait::async_trait]
impl AccountStore for SledAccounts {
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError> {
        let record = encode(user)?;
        let result = (&self.usernames, &self.users).transaction(|(names, users)| {
            if names.get(user.username.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            names.insert(user.username.as_bytes(), user.id.as_str().as_bytes())?;
            users.insert(user.id.as_str().as_bytes(), record.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(AccountError::UsernameTaken),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.users
            .get(id.as_str().as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.usernames.get(username.as_bytes())? {
            Some(id) => {
                let id = UserId::parse(&String::from_utf8_lossy(&id))
                    .map_err(|e| StoreError::Corrupt(format!("usernames: {e}")))?;
                self.user(&id).await
            }
            None => Ok(None),
        }
    }

    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.users.insert(user.id.as_str().as_bytes(), encode(user)?)?;
        Ok(())
    }

    async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>, StoreError> {
        let iter = match after {
            Some(id) => {
                let mut start = id.as_bytes().to_vec();
                start.push(0);
                self.users.range(start..)
            }
            None => self.users.iter(),
        };
        iter.take(limit).map(|item| decode(&item?.1)).collect()
    }

    async fn insert_session(&self, hash: &TokenHash, session: &SessionRecord) -> Result<(), StoreError> {
        let record = encode(session)?;
        let key = index_key(&session.user_id, &session.id);
        (&self.sessions, &self.user_sessions)
            .transaction(|(sessions, index)| {
                sessions.insert(&hash[..], record.as_slice())?;
                index.insert(key.as_slice(), &hash[..])?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => StoreError::Corrupt("session insert aborted".into()),
            })
    }

    async fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.sessions.get(&hash[..])?.map(|v| decode(&v)).transpose()
    }

    async fn touch_session(&self, hash: &TokenHash, last_seen_at: i64) -> Result<(), StoreError> {
        self.sessions.update_and_fetch(&hash[..], |old| {
            let old = old?;
            let mut session: SessionRecord = serde_json::from_slice(old).ok()?;
            session.last_seen_at = session.last_seen_at.max(last_seen_at);
            serde_json::to_vec(&session).ok()
        })?;
        Ok(())
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let Some(bytes) = self.sessions.get(&hash[..])? else {
            return Ok(None);
        };
        let session: SessionRecord = decode(&bytes)?;
        let key = index_key(&session.user_id, &session.id);
        let removed = (&self.sessions, &self.user_sessions)
            .transaction(|(sessions, index)| {
                let existed = sessions.remove(&hash[..])?.is_some();
                index.remove(key.as_slice())?;
                Ok::<bool, ConflictableTransactionError<()>>(existed)
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => StoreError::Corrupt("session delete aborted".into()),
            })?;
        Ok(removed.then_some(session))
    }

    async fn user_sessions(&self, user_id: &UserId) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.user_sessions.scan_prefix(format!("{user_id}/").as_bytes()) {
            let (_, hash) = item?;
            let hash = to_hash(&hash)?;
            if let Some(session) = self.session(&hash).await? {
                out.push((hash, session));
            }
        }
        Ok(out)
    }

    async fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        self.sessions
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((to_hash(&k)?, decode(&v)?))
            })
            .collect()
    }

    async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.identities.get(identity_key(issuer, subject))? {
            Some(id) => {
                let id = UserId::parse(&String::from_utf8_lossy(&id))
                    .map_err(|e| StoreError::Corrupt(format!("usernames: {e}")))?;
                self.user(&id).await
            }
            None => Ok(None),
        }
    }

    async fn user_by_verified_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        match self.verified_emails.get(email.as_bytes())? {
            Some(id) => {
                let id = UserId::parse(&String::from_utf8_lossy(&id))
                    .map_err(|e| StoreError::Corrupt(format!("usernames: {e}")))?;
                self.user(&id).await
            }
            None => Ok(None),
        }
    }

    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        verified_email: Option<&str>,
    ) -> Result<(), AccountError> {
        let record = encode(user)?;
        let keys: Vec<Vec<u8>> = user
            .identities
            .iter()
            .map(|i| identity_key(&i.issuer, &i.subject))
            .collect();
        let result = (
            &self.usernames,
            &self.users,
            &self.identities,
            &self.verified_emails,
        )
            .transaction(|(names, users, identities, emails)| {
                if names.get(user.username.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(AccountError::UsernameTaken));
                }
                for key in &keys {
                    if identities.get(key.as_slice())?.is_some() {
                        return Err(ConflictableTransactionError::Abort(AccountError::IdentityTaken));
                    }
                    identities.insert(key.as_slice(), user.id.as_str().as_bytes())?;
                }
                if let Some(email) = verified_email {
                    if emails.get(email.as_bytes())?.is_none() {
                        emails.insert(email.as_bytes(), user.id.as_str().as_bytes())?;
                    }
                }
                names.insert(user.username.as_bytes(), user.id.as_str().as_bytes())?;
                users.insert(user.id.as_str().as_bytes(), record.as_slice())?;
                Ok(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    async fn link_identity(
        &self,
        user_id: &UserId,
        identity: &LinkedIdentity,
        verified_email: Option<&str>,
    ) -> Result<UserRecord, AccountError> {
        let user_id = user_id.as_str();
        let key = identity_key(&identity.issuer, &identity.subject);
        let result = (&self.users, &self.identities, &self.verified_emails).transaction(
            |(users, identities, emails)| {
                let abort = |e| Err(ConflictableTransactionError::Abort(e));
                let Some(bytes) = users.get(user_id.as_bytes())? else {
                    return abort(AccountError::UserNotFound);
                };
                let Ok(mut user) = serde_json::from_slice::<UserRecord>(&bytes) else {
                    return abort(AccountError::Store(StoreError::Corrupt(
                        "user record is unreadable".into(),
                    )));
                };
                match identities.get(key.as_slice())? {
                    Some(owner) if owner.as_ref() != user_id.as_bytes() => {
                        return abort(AccountError::IdentityTaken)
                    }
                    Some(_) => {}
                    None => {
                        identities.insert(key.as_slice(), user_id.as_bytes())?;
                    }
                }
                user.remember_identity(identity);
                if let Some(email) = verified_email {
                    if emails.get(email.as_bytes())?.is_none() {
                        emails.insert(email.as_bytes(), user_id.as_bytes())?;
                    }
                }
                let Ok(record) = serde_json::to_vec(&user) else {
                    return abort(AccountError::Store(StoreError::Corrupt(
                        "user record is unwritable".into(),
                    )));
                };
                users.insert(user_id.as_bytes(), record)?;
                Ok(user)
            },
        );
        match result {
            Ok(user) => Ok(user),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[path = "accounts_tests.rs"]
mod tests;
