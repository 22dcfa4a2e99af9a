//! [`IdempotencyStore`] on PostgreSQL: one row per key in `idempotency`, the claim
//! decided under the row's lock (`FOR UPDATE`), so replicas agree on who runs a key. The
//! first claim of a key has no row to lock: two replicas racing on it meet at the
//! primary key, and the loser runs again (through [`Pg::retrying`]) to find the
//! winner's claim.

use sqlx::PgConnection;

use super::{from_json, to_json, Pg};
use crate::store::idempotency::{
    Claim, ClaimKey, IdempotencyRecord, IdempotencyStore, NextAction, StoredResponse,
};
use crate::store::StoreError;

pub struct PgIdempotency {
    pg: Pg,
}

impl PgIdempotency {
    pub fn new(pg: &Pg) -> Self {
        Self { pg: pg.clone() }
    }

    async fn try_claim_once(
        &self,
        claim: &Claim,
        now: i64,
        abandoned_after_ms: i64,
    ) -> Result<NextAction, StoreError> {
        let key = claim.key.as_str();
        let mut tx = self.pg.pool().begin().await?;
        let current: Option<(String, Option<serde_json::Value>, i64)> = sqlx::query_as(
            "SELECT request_hash, response, claimed_at FROM idempotency WHERE key = $1 FOR UPDATE",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        match current {
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO idempotency (key, request_hash, order_id, response, created_at, claimed_at)
                     VALUES ($1, $2, $3, NULL, $4, $4) ON CONFLICT DO NOTHING",
                )
                .bind(key)
                .bind(&claim.request_hash)
                .bind(claim.order_id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    // Another request made the key first: run again and see its claim.
                    return Err(StoreError::Busy(format!("idempotency key {key}")));
                }
            }
            Some((stored_hash, _, _)) if stored_hash != claim.request_hash => {
                return Ok(NextAction::Mismatch)
            }
            Some((_, Some(response), _)) => return Ok(NextAction::Replay(from_json(response)?)),
            Some((_, None, claimed_at)) if now - claimed_at < abandoned_after_ms => {
                return Ok(NextAction::Wait)
            }
            Some(_) => {
                sqlx::query("UPDATE idempotency SET claimed_at = $2 WHERE key = $1")
                    .bind(key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(NextAction::Proceed)
    }
}

/// Writes a key's record as it is (for `plinth store copy`); an existing key is kept.
pub async fn insert_claim(
    tx: &mut PgConnection,
    key: &str,
    record: &IdempotencyRecord,
) -> Result<(), StoreError> {
    let response = record.response.as_ref().map(to_json).transpose()?;
    sqlx::query(
        "INSERT INTO idempotency (key, request_hash, order_id, response, created_at, claimed_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(&record.request_hash)
    .bind(record.order_id.as_str())
    .bind(response)
    .bind(record.created_at)
    .bind(record.claimed_at)
    .execute(tx)
    .await?;
    Ok(())
}

fn count(done: sqlx::postgres::PgQueryResult) -> usize {
    usize::try_from(done.rows_affected()).unwrap_or(usize::MAX)
}

#[async_trait::async_trait]
impl IdempotencyStore for PgIdempotency {
    async fn try_claim(
        &self,
        claim: &Claim,
        now: i64,
        abandoned_after_ms: i64,
    ) -> Result<NextAction, StoreError> {
        self.pg
            .retrying("idempotency claim", || {
                self.try_claim_once(claim, now, abandoned_after_ms)
            })
            .await
    }

    async fn save_response(&self, key: &ClaimKey, response: &StoredResponse) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency SET response = $2 WHERE key = $1")
            .bind(key.as_str())
            .bind(to_json(response)?)
            .execute(self.pg.pool())
            .await?;
        Ok(())
    }

    async fn release(&self, key: &ClaimKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency WHERE key = $1")
            .bind(key.as_str())
            .execute(self.pg.pool())
            .await?;
        Ok(())
    }

    async fn release_unfinished(&self) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency WHERE response IS NULL")
            .execute(self.pg.pool())
            .await?;
        Ok(count(done))
    }

    async fn expire(&self, now: i64, max_age_ms: i64) -> Result<usize, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency WHERE response IS NOT NULL AND created_at < $1")
            .bind(now.saturating_sub(max_age_ms))
            .execute(self.pg.pool())
            .await?;
        Ok(count(done))
    }
}
