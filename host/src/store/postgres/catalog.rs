//! [`CatalogStore`] on PostgreSQL: `products`, `stock` and the change feed
//! (`catalog_feed`, positions from the `catalog_feed_head` row), each product change and
//! its feed entry in one transaction.

use sqlx::Row;

use super::{from_json, to_json, Pg};
use crate::store::{CatalogStore, CatalogStoreError, ProductRecord, StoreError};

pub struct PgCatalog {
    pg: Pg,
}

impl PgCatalog {
    pub fn new(pg: &Pg) -> Self {
        Self { pg: pg.clone() }
    }
}

fn units(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn product_row(row: &sqlx::postgres::PgRow) -> Result<(ProductRecord, u64), StoreError> {
    let units: Option<i64> = row.try_get("units")?;
    Ok((
        from_json(row.try_get("record")?)?,
        units.map_or(0, |n| u64::try_from(n).unwrap_or(0)),
    ))
}

/// Sets a product's units on hand.
async fn set_units(tx: &mut sqlx::PgConnection, sku: &str, stock: u64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO stock (sku, units) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE SET units = EXCLUDED.units")
        .bind(sku)
        .bind(units(stock))
        .execute(tx)
        .await?;
    Ok(())
}

/// Appends `sku` at the next feed position. The head row stays locked until the write
/// commits, so a later write gets a later position and becomes visible after it.
async fn append(tx: &mut sqlx::PgConnection, sku: &str) -> Result<(), StoreError> {
    let seq: i64 = sqlx::query_scalar("UPDATE catalog_feed_head SET seq = seq + 1 RETURNING seq")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO catalog_feed (seq, sku) VALUES ($1, $2)")
        .bind(seq)
        .bind(sku)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn position(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl CatalogStore for PgCatalog {
    async fn get(&self, sku: &str) -> Result<Option<(ProductRecord, u64)>, StoreError> {
        sqlx::query(
            "SELECT p.record, s.units FROM products p LEFT JOIN stock s ON s.sku = p.sku WHERE p.sku = $1",
        )
        .bind(sku)
        .fetch_optional(self.pg.pool())
        .await?
        .as_ref()
        .map(product_row)
        .transpose()
    }

    async fn get_many(&self, skus: &[String]) -> Result<Vec<(ProductRecord, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.sku, p.record, s.units FROM products p LEFT JOIN stock s ON s.sku = p.sku \
             WHERE p.sku = ANY($1)",
        )
        .bind(skus)
        .fetch_all(self.pg.pool())
        .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let sku: String = row.try_get("sku")?;
            found.insert(sku, product_row(row)?);
        }
        Ok(skus.iter().filter_map(|sku| found.remove(sku)).collect())
    }

    async fn insert(&self, product: &ProductRecord, stock: u64) -> Result<(), CatalogStoreError> {
        let record = to_json(product)?;
        let attempt = || async {
            let mut tx = self.pg.pool().begin().await?;
            let inserted =
                sqlx::query("INSERT INTO products (sku, record) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(&product.sku)
                    .bind(&record)
                    .execute(&mut *tx)
                    .await?;
            if inserted.rows_affected() == 0 {
                return Ok(false);
            }
            set_units(&mut tx, &product.sku, stock).await?;
            append(&mut tx, &product.sku).await?;
            tx.commit().await?;
            Ok::<bool, StoreError>(true)
        };
        match self.pg.retrying("product insert", attempt).await? {
            true => Ok(()),
            false => Err(CatalogStoreError::Exists),
        }
    }

    async fn replace(&self, product: &ProductRecord, stock: Option<u64>) -> Result<(), StoreError> {
        let record = to_json(product)?;
        let attempt = || async {
            let mut tx = self.pg.pool().begin().await?;
            sqlx::query(
                "INSERT INTO products (sku, record) VALUES ($1, $2)
                 ON CONFLICT (sku) DO UPDATE SET record = EXCLUDED.record",
            )
            .bind(&product.sku)
            .bind(&record)
            .execute(&mut *tx)
            .await?;
            if let Some(stock) = stock {
                set_units(&mut tx, &product.sku, stock).await?;
            }
            append(&mut tx, &product.sku).await?;
            tx.commit().await?;
            Ok(())
        };
        self.pg.retrying("product replace", attempt).await
    }

    async fn delete(&self, sku: &str) -> Result<bool, StoreError> {
        let attempt = || async {
            let mut tx = self.pg.pool().begin().await?;
            let gone = sqlx::query("DELETE FROM products WHERE sku = $1")
                .bind(sku)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            sqlx::query("DELETE FROM stock WHERE sku = $1")
                .bind(sku)
                .execute(&mut *tx)
                .await?;
            if gone {
                append(&mut tx, sku).await?;
            }
            tx.commit().await?;
            Ok(gone)
        };
        self.pg.retrying("product delete", attempt).await
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<(ProductRecord, u64)>, StoreError> {
        sqlx::query(
            "SELECT p.record, s.units FROM products p LEFT JOIN stock s ON s.sku = p.sku
              WHERE p.sku > $1 ORDER BY p.sku LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pg.pool())
        .await?
        .iter()
        .map(product_row)
        .collect()
    }

    async fn count(&self) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
            .fetch_one(self.pg.pool())
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn all(&self) -> Result<Vec<ProductRecord>, StoreError> {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar("SELECT record FROM products ORDER BY sku")
            .fetch_all(self.pg.pool())
            .await?;
        rows.into_iter().map(from_json).collect()
    }

    async fn skus(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT sku FROM products ORDER BY sku")
            .fetch_all(self.pg.pool())
            .await?)
    }

    async fn changes_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, sku FROM catalog_feed WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.pg.pool())
                .await?;
        Ok(rows.into_iter().map(|(seq, sku)| (position(seq), sku)).collect())
    }

    async fn feed_head(&self) -> Result<u64, StoreError> {
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM catalog_feed_head")
            .fetch_one(self.pg.pool())
            .await?;
        Ok(position(seq))
    }

    async fn feed_floor(&self) -> Result<u64, StoreError> {
        let oldest: Option<i64> = sqlx::query_scalar("SELECT min(seq) FROM catalog_feed")
            .fetch_one(self.pg.pool())
            .await?;
        match oldest {
            Some(oldest) => Ok(position(oldest - 1)),
            None => self.feed_head().await,
        }
    }

    async fn trim_feed(&self, seq: u64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM catalog_feed WHERE seq <= $1")
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .execute(self.pg.pool())
            .await?;
        Ok(())
    }
}
