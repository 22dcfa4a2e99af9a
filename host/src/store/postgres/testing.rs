//! For tests: a fresh, migrated schema on the test PostgreSQL per call. The server is
//! `PLINTH_TEST_DATABASE_URL`, else 127.0.0.1:5432 (database `test`). Where none
//! answers, the PostgreSQL half of a test is skipped with a loud note, unless
//! `PLINTH_REQUIRE_POSTGRES=1` (CI), which makes it a failure.

use std::time::Duration;

use super::{migrate, Pg};
use crate::config::PostgresConfig;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server tests use.
pub fn server_url() -> String {
    std::env::var("PLINTH_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into())
}

fn required() -> bool {
    std::env::var("PLINTH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A URL whose connections use a new empty schema of their own (as `search_path`),
/// or `None` (skip) when no server answers and none is required.
pub async fn fresh_schema_url() -> Option<String> {
    let base = server_url();
    let admin = match Pg::connect(&settings(&base)).await {
        Ok(pg) => pg,
        Err(e) if !required() => {
            eprintln!("\n*** PostgreSQL not reachable ({e}): skipping its half of this test ***\n");
            return None;
        }
        Err(e) => panic!("PLINTH_REQUIRE_POSTGRES=1 but PostgreSQL is not reachable: {e}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    forget_old_schemas(&admin, now).await;
    let schema = format!("t_{now}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(admin.pool())
        .await
        .expect("create a test schema");
    admin.pool().close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// `url` with every transaction serializable by default, as on CockroachDB (whose only
/// level that is): the connection option, so the shared test database is untouched.
pub fn serializable(url: &str) -> String {
    format!("{url}%20-c%20default_transaction_isolation%3Dserializable")
}

/// A connected, migrated pool on a fresh schema, or `None` (skip).
pub async fn fresh() -> Option<Pg> {
    let url = fresh_schema_url().await?;
    let pg = Pg::connect(&settings(&url))
        .await
        .expect("connect to the test schema");
    migrate(&pg, None).await.expect("migrate the test schema");
    Some(pg)
}

pub fn settings(url: &str) -> PostgresConfig {
    PostgresConfig {
        url: url.to_string(),
        pool_size: 8,
        acquire_timeout: Duration::from_secs(5),
    }
}

/// Drops the schemas of test runs more than an hour old (a test cannot drop its own:
/// its server may still be using it when the test's future ends).
async fn forget_old_schemas(admin: &Pg, now: u64) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::TEXT FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'",
    )
    .fetch_all(admin.pool())
    .await
    .unwrap_or_default();
    for name in names {
        let made: Option<u64> = name.split('_').nth(1).and_then(|t| t.parse().ok());
        if made.is_none_or(|t| t + 3600 < now) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(admin.pool())
                .await;
        }
    }
}
