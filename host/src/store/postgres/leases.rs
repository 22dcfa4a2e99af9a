//! Leases: a row per named job with its holder and an expiry, taken with one
//! `INSERT … ON CONFLICT DO UPDATE … WHERE expired`, so it works on any database that
//! speaks PostgreSQL's dialect (no advisory locks). A holder that dies loses the lease
//! when it expires; a live one takes it again (its own) before then. Time is the database's clock, so
//! replicas with skewed clocks still agree.

use std::time::Duration;

use super::Pg;
use crate::store::StoreError;

/// A lease this process holds until it is released or expires.
pub struct Lease {
    pg: Pg,
    name: String,
    holder: String,
}

impl Lease {
    /// Takes `name` for `ttl` if nobody holds it (or the holder's lease ran out).
    /// `holder` names the taker (a random one when `None`); a holder takes back its own
    /// lease even before it lapses.
    pub async fn try_acquire(
        pg: &Pg,
        name: &str,
        holder: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let holder = holder.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        let taken = take(pg, name, &holder, ttl).await?;
        Ok(taken.then(|| Self {
            pg: pg.clone(),
            name: name.to_string(),
            holder,
        }))
    }

    /// Waits (polling) until `name` is free and takes it; gives up after `patience`.
    pub async fn wait_for(
        pg: &Pg,
        name: &str,
        holder: Option<&str>,
        ttl: Duration,
        patience: Duration,
    ) -> Result<Self, StoreError> {
        let until = tokio::time::Instant::now() + patience;
        loop {
            if let Some(lease) = Self::try_acquire(pg, name, holder, ttl).await? {
                return Ok(lease);
            }
            if tokio::time::Instant::now() >= until {
                return Err(StoreError::Busy(format!(
                    "the {name} lease stayed taken for {patience:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Gives the lease up now (best effort: if this fails it simply expires).
    pub async fn release(self) {
        let result = sqlx::query("DELETE FROM plinth_leases WHERE name = $1 AND holder = $2")
            .bind(&self.name)
            .bind(&self.holder)
            .execute(self.pg.pool())
            .await;
        if let Err(e) = result {
            tracing::warn!(lease = %self.name, error = %e, "releasing a lease failed; it will expire");
        }
    }
}

/// Takes (or, for its own holder, extends) the lease `name` for `ttl` from now, if it is
/// free or lapsed: one statement, on the database's clock. Whether `holder` has it now.
pub(super) async fn take(pg: &Pg, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let taken: Option<String> = sqlx::query_scalar(
        "INSERT INTO plinth_leases (name, holder, expires_at)
         VALUES ($1, $2, now() + $3 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE
            SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
            WHERE plinth_leases.expires_at < now() OR plinth_leases.holder = EXCLUDED.holder
         RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(ttl_ms)
    .fetch_optional(pg.pool())
    .await?;
    Ok(taken.is_some())
}
