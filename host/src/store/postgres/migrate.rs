//! Schema migrations: SQL files compiled into the binary, applied in order, each in its
//! own transaction together with its row in `plinth_schema`. Replicas starting together
//! take turns through the `migrate` lease (a row with an expiry, see [`super::leases`]),
//! so exactly one applies each migration and the others find it done.

use std::time::Duration;

use super::leases::Lease;
use super::Pg;
use crate::store::StoreError;

/// (version, name, SQL), in order. A version is never edited once released: changes go
/// in a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "init", include_str!("migrations/0001_init.sql"))];

/// The schema version this binary brings a database to.
pub fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The tables the migrator itself needs. `IF NOT EXISTS` because every replica runs
/// this; two running it at the same instant may still collide in the catalog (a unique
/// violation on PostgreSQL), which is retried.
const BOOTSTRAP: &str = "
CREATE TABLE IF NOT EXISTS plinth_schema (
    version INT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS plinth_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
";

/// How long the migrating replica holds the lease without renewing it; a replica that
/// died mid-migration (its transaction rolled back) is waited for at most this long.
const LEASE: Duration = Duration::from_secs(60);

/// Applies the migrations this database lacks; returns the versions applied here.
/// Refuses a database migrated by a newer Plinth (a version this binary does not know).
/// `holder` names this process for the lease (a replica's stable name, so one killed
/// mid-migration takes it straight back when restarted); `None` for a one-off.
pub async fn migrate(pg: &Pg, holder: Option<&str>) -> Result<Vec<i32>, StoreError> {
    bootstrap(pg).await?;
    let lease = Lease::wait_for(pg, "migrate", holder, LEASE, Duration::from_secs(300)).await?;
    let result = apply_missing(pg).await;
    lease.release().await;
    result
}

async fn bootstrap(pg: &Pg) -> Result<(), StoreError> {
    for attempt in 1.. {
        match sqlx::raw_sql(BOOTSTRAP).execute(pg.pool()).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 5 && (super::is_unique_violation(&e) || is_duplicate_table(&e)) => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns by its last attempt")
}

fn is_duplicate_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P07"))
}

async fn apply_missing(pg: &Pg) -> Result<Vec<i32>, StoreError> {
    let applied: Vec<i32> = sqlx::query_scalar("SELECT version FROM plinth_schema ORDER BY version")
        .fetch_all(pg.pool())
        .await?;
    let known = schema_version();
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        return Err(StoreError::Database(format!(
            "the database has schema version {newer}, newer than this Plinth knows ({known}); \
             upgrade Plinth"
        )));
    }
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let mut tx = pg.pool().begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO plinth_schema (version, name) VALUES ($1, $2)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, name, "database migration applied");
        done.push(*version);
    }
    Ok(done)
}
