//! The PostgreSQL backend: every store trait on one shared database, so several
//! `plinth serve` replicas can run on it. Written for what PostgreSQL and the
//! distributed databases that speak its protocol (CockroachDB, YugabyteDB) have in
//! common: plain tables, `INSERT … ON CONFLICT`, `SELECT … FOR UPDATE`, `RETURNING`,
//! transactions that may fail with a serialization error at any isolation level. No
//! LISTEN/NOTIFY, no advisory locks, no sequences whose order must match commit order.
//!
//! Every transaction runs through [`Pg::retrying`]: a serialization failure or a
//! deadlock (SQLSTATE 40001, 40P01) rolls back and runs again after a jittered backoff,
//! a bounded number of times, then fails as `StoreError::Busy` (a 503 with the request
//! id). Records are stored as JSON documents next to the columns that carry keys,
//! uniqueness and indexes, with the same serde codec the sled backend uses.

mod accounts;
mod catalog;
mod contacts;
pub mod driving;
mod idempotency;
mod kv;
pub mod leases;
mod login_attempts;
mod migrate;
mod orders;
mod pending;
pub mod testing;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use accounts::PgAccounts;
pub use catalog::PgCatalog;
pub use contacts::PgContacts;
pub use idempotency::{insert_claim, PgIdempotency};
pub use kv::PgKv;
pub use login_attempts::PgLoginAttempts;
pub use migrate::{migrate, schema_version, MIGRATIONS};
pub use orders::{insert_order, PgOrders};
pub use pending::PgPending;

use super::codec::{from_json, to_json};
use super::StoreError;
use crate::config::PostgresConfig;

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// Attempts of one transaction before it fails as busy.
const MAX_ATTEMPTS: u32 = 8;
/// Backoff before the second attempt; doubles per attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// The shared database: a connection pool and the retry counter.
#[derive(Clone)]
pub struct Pg {
    pool: PgPool,
    retries: Arc<AtomicU64>,
}

impl Pg {
    /// Connects (one connection is opened now, so a wrong URL or a database that is down
    /// fails here, naming the URL without its password).
    pub async fn connect(settings: &PostgresConfig) -> Result<Self, StoreError> {
        let shown = redact(&settings.url);
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|e| StoreError::Unavailable(format!("bad database URL {shown}: {e}")))?
            .application_name("plinth");
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .min_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            // A connection the database dropped (a restart) must be found out before use,
            // but a ping on every acquire is a round trip per statement: only connections
            // idle for a while are pinged. One in steady use would have failed in use
            // already, and a failed connection is closed, not returned to the pool.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_IF_IDLE_FOR {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to {shown}: {e}")))?;
        Ok(Self {
            pool,
            retries: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Transactions run again after a serialization failure or deadlock, since start.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Whether the database answers now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs `attempt` (one whole transaction) until it commits or fails for another
    /// reason than contention; contention past [`MAX_ATTEMPTS`] is `StoreError::Busy`.
    pub async fn retrying<T, E, Fut>(&self, what: &str, mut attempt: impl FnMut() -> Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Contended,
    {
        let mut backoff = FIRST_BACKOFF;
        for n in 1.. {
            match attempt().await {
                Err(e) if e.contended() && n < MAX_ATTEMPTS => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(what, attempt = n, "transaction contended; retrying");
                    // Full jitter: replicas that collided once do not collide again in step.
                    let pause = rand::random_range(Duration::ZERO..=backoff);
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
        unreachable!("the loop returns by its last attempt")
    }
}

/// Errors that may say "the transaction lost to another one; run it again".
pub trait Contended {
    fn contended(&self) -> bool;
}

impl Contended for StoreError {
    fn contended(&self) -> bool {
        matches!(self, StoreError::Busy(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // serialization_failure, deadlock_detected
                Some("40001" | "40P01") => StoreError::Busy(db.message().to_string()),
                // connection_exception (08xxx), admin_shutdown, crash_shutdown,
                // cannot_connect_now: the database went away under the request.
                Some(code) if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") => {
                    StoreError::Unavailable(db.message().to_string())
                }
                _ => StoreError::Database(e.to_string()),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// Whether a database error is a unique-key violation (SQLSTATE 23505).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// The URL with its password (and any `password=` query parameter) replaced by `***`:
/// what error messages and logs may show.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "(an unparsable database URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(
            redact("postgres://plinth:s3cret@db.internal:5432/shop?sslmode=require"),
            "postgres://plinth:***@db.internal:5432/shop?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/shop?user=u&password=s3cret"),
            "postgres://db/shop?user=u&password=***"
        );
        assert_eq!(redact("postgres://127.0.0.1/test"), "postgres://127.0.0.1/test");
        assert!(!redact("not a url s3cret").contains("s3cret"));
    }
}
