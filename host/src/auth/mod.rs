//! Accounts and sessions: registration, login with argon2id on a bounded pool, rate
//! limits, revocable sessions with idle and absolute expiry, roles.

mod error;
mod hash_pool;
pub mod oidc;
mod rate_limit;
mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use error::AuthError;
pub use hash_pool::{HashBusy, HashPool, Verified};
pub use rate_limit::{rate_key, Attempt, IpLimiter, LoginAttempts, LoginLimiter};
pub use tokens::SessionToken;

use crate::config::AuthConfig;
use crate::domain::{NewPassword, UserId, Username};
use crate::runtime::bindings::Identity;
use crate::store::{AccountStore, Role, SessionRecord, Storage, StoreError, TokenHash, UserRecord};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An authenticated caller: the user and the session they came with.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserRecord,
    pub session: SessionRecord,
    pub token_hash: TokenHash,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.user.is_admin()
    }

    /// What a plugin may know about the caller: never tokens, cookies or hashes.
    pub fn identity(&self) -> Identity {
        Identity {
            user_id: self.user.id.to_string(),
            username: self.user.username.clone(),
            roles: self.user.roles.iter().map(|r| r.as_str().to_string()).collect(),
        }
    }
}

/// Where a login comes from (kept with the session, shown in the session list).
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

/// A fresh session; the token is in no other place.
pub struct NewSession {
    pub token: SessionToken,
    pub session: SessionRecord,
    pub user: UserRecord,
}

pub struct Auth {
    accounts: Arc<dyn AccountStore>,
    storage: Storage,
    hasher: Arc<HashPool>,
    limiter: Box<dyn LoginAttempts>,
    registrations: IpLimiter,
    config: AuthConfig,
}

impl Auth {
    pub fn new(storage: &Storage, config: &AuthConfig) -> Result<Self, StoreError> {
        let hasher = HashPool::new(config.argon2, config.hash_workers, config.hash_queue)
            .map_err(|e| StoreError::Corrupt(format!("argon2 parameters: {e}")))?;
        Ok(Self {
            accounts: storage.accounts()?,
            storage: storage.clone(),
            hasher,
            limiter: storage.login_attempts(config.rate_limit),
            registrations: IpLimiter::new(
                config.rate_limit.register_per_ip_per_hour,
                Duration::from_secs(3600),
            ),
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Self-service registration (role `user`), limited per client address. Every
    /// attempt counts, before anything else: a flood is refused before it reaches the
    /// password hasher, and taken usernames cannot be probed at leisure.
    pub async fn register(
        &self,
        username: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<UserRecord, AuthError> {
        self.registrations
            .try_acquire(client.ip)
            .map_err(AuthError::TooManyRegistrations)?;
        self.create_user(username, password, vec![Role::User]).await
    }

    /// Creates an account with the given roles; durable when this returns.
    pub async fn create_user(
        &self,
        username: &str,
        password: String,
        roles: Vec<Role>,
    ) -> Result<UserRecord, AuthError> {
        let username = Username::parse(username).map_err(|e| AuthError::InvalidUsername(e.to_string()))?;
        let password = NewPassword::parse(password, username.as_str())?;
        if self.accounts.user_by_username(username.as_str()).await?.is_some() {
            return Err(AuthError::UsernameTaken);
        }
        let password_hash = self.hash(password).await?;
        let now = now_ms();
        let user = UserRecord {
            id: UserId::generate(),
            username: username.to_string(),
            password_hash,
            roles,
            disabled: false,
            created_at: now,
            password_changed_at: now,
            identities: Vec::new(),
        };
        self.accounts.create_user(&user).await?;
        self.storage.flush().await?;
        Ok(user)
    }

    async fn hash(&self, password: NewPassword) -> Result<String, AuthError> {
        self.hasher
            .hash(password.expose().to_string())
            .await
            .map_err(|HashBusy| AuthError::Busy)
    }

    /// Checks the credentials and opens a new session (a new token every time).
    pub async fn login(
        &self,
        username: &str,
        password: String,
        client: ClientInfo,
    ) -> Result<NewSession, AuthError> {
        let key: String = username.to_ascii_lowercase().chars().take(64).collect();
        let attempt = self
            .limiter
            .begin(&key, client.ip)
            .await?
            .map_err(AuthError::RateLimited)?;
        let user = match Username::parse(username) {
            Ok(name) => self.accounts.user_by_username(name.as_str()).await?,
            Err(_) => None,
        };
        if password.len() > crate::domain::MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let verified = match self
            .hasher
            .verify(password.clone(), user.as_ref().map(|u| u.password_hash.clone()))
            .await
        {
            Ok(v) => v,
            Err(HashBusy) => {
                self.refund(attempt).await;
                return Err(AuthError::Busy);
            }
        };
        let Some(mut user) = user.filter(|_| verified.matches) else {
            tracing::info!(username = %key, ip = %client.ip, "failed login");
            return Err(AuthError::InvalidCredentials);
        };
        self.refund(attempt).await;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        if verified.needs_rehash {
            if let Ok(policy_ok) = NewPassword::parse(password, &user.username) {
                user.password_hash = self.hash(policy_ok).await?;
                self.accounts.update_user(&user).await?;
                tracing::info!(user_id = %user.id, "password re-hashed with the current argon2 parameters");
            }
        }
        self.open_session(user, client).await
    }

    /// Opens a new session for `user` (a new token every time), durable when this
    /// returns. Every kind of login ends here.
    pub async fn open_session(&self, user: UserRecord, client: ClientInfo) -> Result<NewSession, AuthError> {
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        let token = SessionToken::generate();
        let now = now_ms();
        let session = SessionRecord {
            id: tokens::session_id(),
            user_id: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            user_agent: client.user_agent.map(|ua| ua.chars().take(256).collect()),
            ip: Some(client.ip.to_string()),
        };
        self.accounts.insert_session(&token.hash(), &session).await?;
        self.storage.flush().await?;
        Ok(NewSession { token, session, user })
    }

    /// Resolves a presented token to a live session of an enabled user.
    pub async fn authenticate(&self, raw_token: &str) -> Result<Principal, AuthError> {
        let token = SessionToken::parse(raw_token).ok_or(AuthError::Unauthenticated)?;
        let hash = token.hash();
        let session = self
            .accounts
            .session(&hash)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        let now = now_ms();
        if self.is_expired(&session, now) {
            self.accounts.delete_session(&hash).await?;
            return Err(AuthError::Unauthenticated);
        }
        let user = match self.accounts.user(&session.user_id).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(AuthError::Unauthenticated),
        };
        if now - session.last_seen_at >= self.touch_granularity_ms() {
            self.accounts.touch_session(&hash, now).await?;
        }
        Ok(Principal {
            user,
            session,
            token_hash: hash,
        })
    }

    fn is_expired(&self, s: &SessionRecord, now: i64) -> bool {
        now - s.last_seen_at >= self.config.idle_timeout.as_millis() as i64
            || now - s.created_at >= self.config.absolute_timeout.as_millis() as i64
    }

    /// `last_seen_at` is written at most this often per session.
    fn touch_granularity_ms(&self) -> i64 {
        (self.config.idle_timeout / 10)
            .min(Duration::from_secs(60))
            .as_millis() as i64
    }

    /// When a session expires if unused from now on.
    pub fn expires_at(&self, s: &SessionRecord) -> i64 {
        (s.last_seen_at + self.config.idle_timeout.as_millis() as i64)
            .min(s.created_at + self.config.absolute_timeout.as_millis() as i64)
    }

    /// Ends the caller's session at once.
    pub async fn logout(&self, p: &Principal) -> Result<(), AuthError> {
        self.accounts.delete_session(&p.token_hash).await?;
        self.storage.flush().await?;
        Ok(())
    }

    /// Changes the password and revokes every other session of the user. Returns how
    /// many sessions were revoked.
    pub async fn change_password(
        &self,
        p: &Principal,
        current: String,
        new: String,
    ) -> Result<usize, AuthError> {
        let ip: IpAddr = p
            .session
            .ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let attempt = self
            .limiter
            .begin(&p.user.username, ip)
            .await?
            .map_err(AuthError::RateLimited)?;
        let verified = self
            .hasher
            .verify(current, Some(p.user.password_hash.clone()))
            .await
            .map_err(|HashBusy| AuthError::Busy)?;
        if !verified.matches {
            return Err(AuthError::WrongPassword);
        }
        self.refund(attempt).await;
        let new = NewPassword::parse(new, &p.user.username)?;
        let mut user = self
            .accounts
            .user(&p.user.id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        user.password_hash = self.hash(new).await?;
        user.password_changed_at = now_ms();
        self.accounts.update_user(&user).await?;
        let revoked = self.revoke_all(&user.id, Some(&p.token_hash)).await?;
        self.storage.flush().await?;
        Ok(revoked)
    }

    async fn revoke_all(&self, user_id: &UserId, keep: Option<&TokenHash>) -> Result<usize, AuthError> {
        let mut revoked = 0;
        for (hash, _) in self.accounts.user_sessions(user_id).await? {
            if Some(&hash) != keep && self.accounts.delete_session(&hash).await?.is_some() {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, p: &Principal) -> Result<Vec<SessionRecord>, AuthError> {
        let now = now_ms();
        let mut sessions: Vec<SessionRecord> = self
            .accounts
            .user_sessions(&p.user.id)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| !self.is_expired(s, now))
            .collect();
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    /// Revokes one of the caller's own sessions by its public id.
    pub async fn revoke_session(&self, p: &Principal, session_id: &str) -> Result<(), AuthError> {
        let (hash, _) = self
            .accounts
            .user_sessions(&p.user.id)
            .await?
            .into_iter()
            .find(|(_, s)| s.id == session_id)
            .ok_or(AuthError::SessionNotFound)?;
        self.accounts.delete_session(&hash).await?;
        self.storage.flush().await?;
        Ok(())
    }

    pub async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>, AuthError> {
        Ok(self.accounts.list_users(after, limit).await?)
    }

    /// Disables an account and revokes all its sessions.
    pub async fn disable_user(&self, user_id: &UserId) -> Result<UserRecord, AuthError> {
        let mut user = self
            .accounts
            .user(user_id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        user.disabled = true;
        self.accounts.update_user(&user).await?;
        self.revoke_all(&user.id, None).await?;
        self.storage.flush().await?;
        Ok(user)
    }

    /// Takes a login attempt off the counts (a success, or one that never ran); a
    /// failure to do so only leaves it counted until it leaves its window.
    async fn refund(&self, attempt: Attempt) {
        if let Err(e) = self.limiter.succeeded(attempt).await {
            tracing::warn!(error = %e, "refunding a login attempt failed");
        }
    }

    /// Removes expired sessions; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, AuthError> {
        let now = now_ms();
        let mut removed = 0;
        for (hash, session) in self.accounts.all_sessions().await? {
            if self.is_expired(&session, now) && self.accounts.delete_session(&hash).await?.is_some() {
                removed += 1;
            }
        }
        self.limiter.sweep().await?;
        Ok(removed)
    }
}
