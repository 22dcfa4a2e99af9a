//! `plinth store copy --from sled:DIR --to postgres:URL`: moves an existing install to
//! the shared database. Reads every sled tree the host keeps (server stopped: sled locks
//! its directory), writes each area in one transaction, derives the indexes the
//! PostgreSQL schema keeps as columns or tables (usernames, order payments, kv usage),
//! then counts each area on both sides. A target that already holds data is refused
//! unless the caller says to write into it. Logins in progress, login windows and
//! leases are not copied: they are short-lived and rebuilt by use.

use std::path::Path;

use sqlx::PgConnection;

use super::codec::decode;
use super::orders::{tables as order_tables, trees as order_trees};
use super::postgres::Pg;
use super::{idempotency, IdempotencyRecord, OrderRecord, StoreError};

/// One area's count on each side after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub area: &'static str,
    pub source: u64,
    pub target: u64,
}

/// The tables an install's data lives in: a target with rows in any is not empty.
const DATA_TABLES: &[&str] = &[
    "users",
    "sessions",
    "contacts",
    "plugin_kv",
    "products",
    order_tables::ORDERS,
    idempotency::TABLE,
];

/// Copies the sled database in `dir` into `pg` (migrated first). Refuses a target that
/// holds data unless `into_non_empty`.
pub async fn sled_to_postgres(dir: &Path, pg: &Pg, into_non_empty: bool) -> Result<Vec<Copied>, StoreError> {
    let db = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source,
        })?;
    super::postgres::migrate(pg, None).await?;
    if !into_non_empty {
        for table in DATA_TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pg.pool())
                .await?;
            if n > 0 {
                return Err(StoreError::Database(format!(
                    "the target database is not empty ({table} has {n} rows); pass --into-non-empty to write into it"
                )));
            }
        }
    }
    let mut tx = pg.pool().begin().await?;
    let mut report = Vec::new();
    report.push(copy_users(&db, &mut tx).await?);
    report.push(copy_pairs(&db, &mut tx, "sessions", "sessions").await?);
    report.push(copy_pairs(&db, &mut tx, "identities", "identities").await?);
    report.push(copy_pairs(&db, &mut tx, "verified-emails", "verified_emails").await?);
    report.push(copy_pairs(&db, &mut tx, "contacts", "contacts").await?);
    report.push(copy_kv(&db, &mut tx).await?);
    report.push(copy_pairs(&db, &mut tx, "products", "products").await?);
    report.push(copy_pairs(&db, &mut tx, order_trees::STOCK, order_tables::STOCK).await?);
    report.push(copy_orders(&db, &mut tx).await?);
    report.push(copy_pairs(&db, &mut tx, order_trees::PURCHASES, order_tables::PURCHASES).await?);
    report.push(copy_claims(&db, &mut tx).await?);
    tx.commit().await?;
    for entry in &mut report {
        entry.target = target_count(pg, entry.area).await?;
    }
    Ok(report)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json(what: &str, bytes: &[u8]) -> Result<serde_json::Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, e))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn units(bytes: &[u8]) -> i64 {
    <[u8; 8]>::try_from(bytes).map_or(0, |b| i64::try_from(u64::from_be_bytes(b)).unwrap_or(i64::MAX))
}

async fn copy_users(db: &sled::Db, tx: &mut PgConnection) -> Result<Copied, StoreError> {
    let tree = db.open_tree("users")?;
    let mut n = 0;
    for item in tree.iter() {
        let (id, record) = item?;
        let record = json("a user", &record)?;
        let username = record["username"].as_str().unwrap_or_default().to_string();
        sqlx::query("INSERT INTO users (id, username, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(text(&id))
            .bind(username)
            .bind(record)
            .execute(&mut *tx)
            .await?;
        n += 1;
    }
    Ok(Copied {
        area: "users",
        source: n,
        target: 0,
    })
}

/// Copies a tree whose rows map one to one onto a table.
async fn copy_pairs(
    db: &sled::Db,
    tx: &mut PgConnection,
    tree: &str,
    area: &'static str,
) -> Result<Copied, StoreError> {
    let tree = db.open_tree(tree)?;
    let mut n = 0;
    for item in tree.iter() {
        let (k, v) = item?;
        let q = match area {
            "sessions" => {
                let record = json("a session", &v)?;
                let user_id = record["user_id"].as_str().unwrap_or_default().to_string();
                sqlx::query("INSERT INTO sessions (token_hash, user_id, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(k.to_vec())
                    .bind(user_id)
                    .bind(record)
            }
            "identities" => {
                let (issuer, subject): (String, String) =
                    serde_json::from_slice(&k).map_err(|e| corrupt("an identity key", e))?;
                sqlx::query("INSERT INTO identities (issuer, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(issuer)
                    .bind(subject)
                    .bind(text(&v))
            }
            "verified_emails" => {
                sqlx::query("INSERT INTO verified_emails (email, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(text(&k))
                    .bind(text(&v))
            }
            "contacts" => {
                let record = json("a contact", &v)?;
                let (owner, id) = (
                    record["owner_id"].as_str().unwrap_or_default().to_string(),
                    record["id"].as_str().unwrap_or_default().to_string(),
                );
                sqlx::query("INSERT INTO contacts (owner_id, id, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(owner)
                    .bind(id)
                    .bind(record)
            }
            "products" => sqlx::query("INSERT INTO products (sku, record) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(text(&k))
                .bind(json("a product", &v)?),
            order_tables::STOCK => sqlx::query(
                "INSERT INTO stock (sku, units) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE SET units = EXCLUDED.units",
            )
            .bind(text(&k))
            .bind(units(&v)),
            order_tables::PURCHASES => {
                let key = text(&k);
                let Some((user, sku)) = key.split_once('/') else { continue };
                sqlx::query(
                    "INSERT INTO user_purchases (user_id, sku, units) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, sku) DO UPDATE SET units = EXCLUDED.units",
                )
                .bind(user.to_string())
                .bind(sku.to_string())
                .bind(units(&v))
            }
            other => unreachable!("no copy for {other}"),
        };
        q.execute(&mut *tx).await?;
        n += 1;
    }
    Ok(Copied {
        area,
        source: n,
        target: 0,
    })
}

async fn copy_kv(db: &sled::Db, tx: &mut PgConnection) -> Result<Copied, StoreError> {
    let mut n = 0;
    for name in db.tree_names() {
        let Some(plugin) = std::str::from_utf8(&name)
            .ok()
            .and_then(|n| n.strip_prefix("plugin-kv/"))
        else {
            continue;
        };
        let mut bytes = 0i64;
        for item in db.open_tree(&name)?.iter() {
            let (k, v) = item?;
            bytes += (k.len() + v.len()) as i64;
            sqlx::query(
                "INSERT INTO plugin_kv (plugin, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(plugin)
            .bind(k.to_vec())
            .bind(v.to_vec())
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        sqlx::query(
            "INSERT INTO plugin_kv_usage (plugin, bytes) VALUES ($1, $2)
             ON CONFLICT (plugin) DO UPDATE SET bytes = plugin_kv_usage.bytes + EXCLUDED.bytes",
        )
        .bind(plugin)
        .bind(bytes)
        .execute(&mut *tx)
        .await?;
    }
    Ok(Copied {
        area: "plugin_kv",
        source: n,
        target: 0,
    })
}

/// Orders through the store's codec: the document PostgreSQL gets is the one sled held.
async fn copy_orders(db: &sled::Db, tx: &mut PgConnection) -> Result<Copied, StoreError> {
    let mut n = 0;
    for item in db.open_tree(order_trees::ORDERS)?.iter() {
        let (_, v) = item?;
        let order: OrderRecord = decode(&v).map_err(|e| corrupt("an order", e))?;
        super::postgres::insert_order(tx, &order).await?;
        n += 1;
    }
    Ok(Copied {
        area: order_tables::ORDERS,
        source: n,
        target: 0,
    })
}

/// Idempotency keys (claims and their answers), through the store's codec.
async fn copy_claims(db: &sled::Db, tx: &mut PgConnection) -> Result<Copied, StoreError> {
    let mut n = 0;
    for item in db.open_tree(idempotency::TREE)?.iter() {
        let (k, v) = item?;
        let record: IdempotencyRecord = decode(&v).map_err(|e| corrupt("an idempotency record", e))?;
        super::postgres::insert_claim(tx, &text(&k), &record).await?;
        n += 1;
    }
    Ok(Copied {
        area: idempotency::TABLE,
        source: n,
        target: 0,
    })
}

async fn target_count(pg: &Pg, table: &str) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pg.pool())
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
