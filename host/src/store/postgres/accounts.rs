//! [`AccountStore`] on PostgreSQL: `users` (username unique), `sessions` (by token
//! hash, indexed by user), `identities`, `verified_emails`.

use sqlx::Row;

use super::{from_json, is_unique_violation, to_json, Contended, Pg};
use crate::domain::UserId;
use crate::store::{
    AccountError, AccountStore, LinkedIdentity, SessionRecord, StoreError, TokenHash, UserRecord,
};

pub struct PgAccounts {
    pg: Pg,
}

impl PgAccounts {
    pub fn new(pg: &Pg) -> Self {
        Self { pg: pg.clone() }
    }

    async fn user_where(&self, sql: &str, binds: &[&str]) -> Result<Option<UserRecord>, StoreError> {
        let mut q = sqlx::query_scalar::<_, serde_json::Value>(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_optional(self.pg.pool()).await?.map(from_json).transpose()
    }

    /// One attempt at creating `user`, with its identities when `with_identities`.
    async fn try_create(
        &self,
        user: &UserRecord,
        with_identities: bool,
        verified_email: Option<&str>,
    ) -> Result<(), AccountError> {
        let mut tx = self.pg.pool().begin().await.map_err(StoreError::from)?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(user.id.as_str())
        .bind(&user.username)
        .bind(to_json(user)?)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if inserted.rows_affected() == 0 {
            return Err(AccountError::UsernameTaken);
        }
        let identities = if with_identities {
            &user.identities[..]
        } else {
            &[]
        };
        for identity in identities {
            let inserted = sqlx::query(
                "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&identity.issuer)
            .bind(&identity.subject)
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if inserted.rows_affected() == 0 {
                return Err(AccountError::IdentityTaken);
            }
        }
        if let Some(email) = verified_email {
            remember_email(&mut tx, email, user.id.as_str()).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn try_link(
        &self,
        user_id: &str,
        identity: &LinkedIdentity,
        verified_email: Option<&str>,
    ) -> Result<UserRecord, AccountError> {
        let mut tx = self.pg.pool().begin().await.map_err(StoreError::from)?;
        let record: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let Some(record) = record else {
            return Err(AccountError::UserNotFound);
        };
        let mut user: UserRecord = from_json(record)?;
        sqlx::query(
            "INSERT INTO identities (issuer, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let owner: String =
            sqlx::query_scalar("SELECT user_id FROM identities WHERE issuer = $1 AND subject = $2")
                .bind(&identity.issuer)
                .bind(&identity.subject)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        if owner != user_id {
            return Err(AccountError::IdentityTaken);
        }
        user.remember_identity(identity);
        if let Some(email) = verified_email {
            remember_email(&mut tx, email, user_id).await?;
        }
        sqlx::query("UPDATE users SET record = $2 WHERE id = $1")
            .bind(user_id)
            .bind(to_json(&user)?)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(user)
    }
}

/// Records who a trusted provider vouched `email` for, unless someone has it already.
async fn remember_email(tx: &mut sqlx::PgConnection, email: &str, user_id: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO verified_emails (email, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(email)
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(())
}

impl Contended for AccountError {
    fn contended(&self) -> bool {
        matches!(self, AccountError::Store(e) if e.contended())
    }
}

fn session_row(row: &sqlx::postgres::PgRow) -> Result<(TokenHash, SessionRecord), StoreError> {
    let hash: Vec<u8> = row.try_get("token_hash")?;
    let hash: TokenHash = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt("session key is not 32 bytes".into()))?;
    Ok((hash, from_json(row.try_get("record")?)?))
}

#[async_trait::async_trait]
impl AccountStore for PgAccounts {
    async fn create_user(&self, user: &UserRecord) -> Result<(), AccountError> {
        self.pg
            .retrying("create user", || self.try_create(user, false, None))
            .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("SELECT record FROM users WHERE id = $1", &[id.as_str()])
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where("SELECT record FROM users WHERE username = $1", &[username])
            .await
    }

    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET record = $2 WHERE id = $1")
            .bind(user.id.as_str())
            .bind(to_json(user)?)
            .execute(self.pg.pool())
            .await?;
        Ok(())
    }

    async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>, StoreError> {
        let rows: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM users WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.pg.pool())
                .await?;
        rows.into_iter().map(from_json).collect()
    }

    async fn insert_session(&self, hash: &TokenHash, session: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, record) VALUES ($1, $2, $3)")
            .bind(&hash[..])
            .bind(session.user_id.as_str())
            .bind(to_json(session)?)
            .execute(self.pg.pool())
            .await
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Corrupt("two sessions with one token hash".into()),
                false => e.into(),
            })?;
        Ok(())
    }

    async fn session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let record: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM sessions WHERE token_hash = $1")
                .bind(&hash[..])
                .fetch_optional(self.pg.pool())
                .await?;
        record.map(from_json).transpose()
    }

    async fn touch_session(&self, hash: &TokenHash, last_seen_at: i64) -> Result<(), StoreError> {
        // One statement: never resurrects a deleted session, never moves time back.
        sqlx::query(
            "UPDATE sessions
                SET record = jsonb_set(record, '{last_seen_at}',
                    to_jsonb(GREATEST((record->>'last_seen_at')::BIGINT, $2)))
              WHERE token_hash = $1",
        )
        .bind(&hash[..])
        .bind(last_seen_at)
        .execute(self.pg.pool())
        .await?;
        Ok(())
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let record: Option<serde_json::Value> =
            sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = $1 RETURNING record")
                .bind(&hash[..])
                .fetch_optional(self.pg.pool())
                .await?;
        record.map(from_json).transpose()
    }

    async fn user_sessions(&self, user_id: &UserId) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        sqlx::query("SELECT token_hash, record FROM sessions WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_all(self.pg.pool())
            .await?
            .iter()
            .map(session_row)
            .collect()
    }

    async fn all_sessions(&self) -> Result<Vec<(TokenHash, SessionRecord)>, StoreError> {
        sqlx::query("SELECT token_hash, record FROM sessions")
            .fetch_all(self.pg.pool())
            .await?
            .iter()
            .map(session_row)
            .collect()
    }

    async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where(
            "SELECT u.record FROM identities i JOIN users u ON u.id = i.user_id
              WHERE i.issuer = $1 AND i.subject = $2",
            &[issuer, subject],
        )
        .await
    }

    async fn user_by_verified_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.user_where(
            "SELECT u.record FROM verified_emails e JOIN users u ON u.id = e.user_id WHERE e.email = $1",
            &[email],
        )
        .await
    }

    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        verified_email: Option<&str>,
    ) -> Result<(), AccountError> {
        self.pg
            .retrying("create user", || self.try_create(user, true, verified_email))
            .await
    }

    async fn link_identity(
        &self,
        user_id: &UserId,
        identity: &LinkedIdentity,
        verified_email: Option<&str>,
    ) -> Result<UserRecord, AccountError> {
        self.pg
            .retrying("link identity", || {
                self.try_link(user_id.as_str(), identity, verified_email)
            })
            .await
    }
}
