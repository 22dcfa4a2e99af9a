//! Failed-login windows in the shared database, so that replicas limit as one: a
//! guesser spreading attempts over every replica meets the same per-username and
//! per-address limits as one hitting a single process. An attempt is a row, counted when
//! it starts and deleted when the login succeeds. The count and the insert run in one
//! serializable transaction, so parallel guesses on several replicas cannot both slip
//! under the limit (one of them reruns, see [`Pg::retrying`]). Rows older than the
//! longest window are swept.

use std::net::IpAddr;
use std::time::Duration;

use super::Pg;
use crate::auth::{rate_key, Attempt, LoginAttempts};
use crate::config::RateLimits;
use crate::store::StoreError;

pub struct PgLoginAttempts {
    pg: Pg,
    limits: RateLimits,
}

impl PgLoginAttempts {
    pub fn new(pg: &Pg, limits: RateLimits) -> Self {
        Self {
            pg: pg.clone(),
            limits,
        }
    }

    /// One attempt at counting: `Ok(Err(wait))` when a limit is reached. Four round
    /// trips: BEGIN (serializable), one query over the three windows, the insert, COMMIT.
    async fn try_begin(&self, username: &str, ip: &str) -> Result<Result<String, Duration>, StoreError> {
        let mut tx = self
            .pg
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE")
            .await?;
        // Per window, the attempt that must leave it before another may start: the
        // limit-th newest inside it; the longest of those waits (GREATEST skips NULLs:
        // windows under their limit). Per username per minute and per hour, per address
        // per minute.
        let leaves_in: Option<f64> = sqlx::query_scalar(
            "SELECT GREATEST(
                 (SELECT EXTRACT(EPOCH FROM (at + interval '60 seconds' - now()))::FLOAT8
                    FROM login_attempts WHERE username = $1 AND at > now() - interval '60 seconds'
                   ORDER BY at DESC OFFSET $3 LIMIT 1),
                 (SELECT EXTRACT(EPOCH FROM (at + interval '3600 seconds' - now()))::FLOAT8
                    FROM login_attempts WHERE username = $1 AND at > now() - interval '3600 seconds'
                   ORDER BY at DESC OFFSET $4 LIMIT 1),
                 (SELECT EXTRACT(EPOCH FROM (at + interval '60 seconds' - now()))::FLOAT8
                    FROM login_attempts WHERE ip = $2 AND at > now() - interval '60 seconds'
                   ORDER BY at DESC OFFSET $5 LIMIT 1))",
        )
        .bind(username)
        .bind(ip)
        .bind(i64::from(self.limits.per_username_per_minute.max(1)) - 1)
        .bind(i64::from(self.limits.per_username_per_hour.max(1)) - 1)
        .bind(i64::from(self.limits.per_ip_per_minute.max(1)) - 1)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(secs) = leaves_in {
            return Ok(Err(
                Duration::from_secs_f64(secs.max(0.0)).max(Duration::from_secs(1))
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO login_attempts (id, username, ip, at) VALUES ($1, $2, $3, now())")
            .bind(&id)
            .bind(username)
            .bind(ip)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }
}

#[async_trait::async_trait]
impl LoginAttempts for PgLoginAttempts {
    async fn begin(&self, username: &str, ip: IpAddr) -> Result<Result<Attempt, Duration>, StoreError> {
        let key = rate_key(ip);
        let shown = key.to_string();
        let counted = self
            .pg
            .retrying("login attempt", || self.try_begin(username, &shown))
            .await?;
        Ok(counted.map(|row| Attempt::stored(username, key, row)))
    }

    async fn succeeded(&self, attempt: Attempt) -> Result<(), StoreError> {
        if let Some(row) = attempt.row() {
            sqlx::query("DELETE FROM login_attempts WHERE id = $1")
                .bind(row)
                .execute(self.pg.pool())
                .await?;
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM login_attempts WHERE at < now() - interval '1 hour'")
            .execute(self.pg.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
