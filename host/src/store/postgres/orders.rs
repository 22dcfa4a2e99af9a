//! [`OrderStore`] on PostgreSQL. A reservation inserts the order, takes each line's
//! units with a conditional `UPDATE stock … WHERE units >= wanted` and counts them on
//! the customer's purchase counters, all in one transaction: stock never goes below
//! zero and no unit is counted twice, on any number of replicas. Rows are always locked
//! in the same order (the order, then stock and counters by sku), so reservations,
//! saves and discards do not deadlock each other; whatever contention remains
//! (serialization failures on CockroachDB-like databases) is retried by
//! [`Pg::retrying`].

use std::collections::BTreeMap;

use sqlx::PgConnection;

use super::{from_json, to_json, Pg};
use crate::domain::{OrderId, UserId};
use crate::store::{OrderFilter, OrderRecord, OrderStatus, OrderStore, ReserveError, StoreError};

pub struct PgOrders {
    pg: Pg,
}

impl PgOrders {
    pub fn new(pg: &Pg) -> Self {
        Self { pg: pg.clone() }
    }
}

impl super::Contended for ReserveError {
    fn contended(&self) -> bool {
        matches!(self, ReserveError::Store(StoreError::Busy(_)))
    }
}

/// Each sku's units in the order, by sku (the lock order).
fn units(order: &OrderRecord) -> BTreeMap<&str, i64> {
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for (sku, n) in order.units() {
        *wanted.entry(sku).or_default() += i64::try_from(n).unwrap_or(i64::MAX);
    }
    wanted
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Puts an order's units back in stock and takes them off the customer's counters.
async fn return_units(tx: &mut PgConnection, order: &OrderRecord) -> Result<(), StoreError> {
    for (sku, n) in units(order) {
        // A product deleted meanwhile gets its stock row back, as in sled.
        sqlx::query(
            "INSERT INTO stock (sku, units) VALUES ($1, $2)
             ON CONFLICT (sku) DO UPDATE SET units = stock.units + EXCLUDED.units",
        )
        .bind(sku)
        .bind(n)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE user_purchases SET units = GREATEST(units - $3, 0) WHERE user_id = $1 AND sku = $2",
        )
        .bind(order.user_id.as_str())
        .bind(sku)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The stored order's version and flag, locked for this transaction.
async fn lock_order(tx: &mut PgConnection, id: &OrderId) -> Result<Option<(i64, bool)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT version, stock_released FROM orders WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(tx)
            .await?,
    )
}

/// An order id a row holds in a column.
fn stored_id(id: &str) -> Result<OrderId, StoreError> {
    OrderId::parse(id).map_err(|e| StoreError::Corrupt(format!("{e}: {id:?}")))
}

/// `{created_at:020}/{id}`: the position format the sled backend uses too.
fn position(created_at: i64, id: &str) -> String {
    format!("{created_at:020}/{id}")
}

fn parse_position(p: &str) -> Option<(i64, &str)> {
    let (at, id) = p.split_once('/')?;
    Some((at.parse().ok()?, id))
}

/// Writes a new order's row (and its payment's index entry, if it has one); whether it
/// was new. For reservations, and for `plinth store copy`.
pub async fn insert_order(tx: &mut PgConnection, order: &OrderRecord) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO orders (id, user_id, created_at, status, unsettled, version, stock_released, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(order.id.as_str())
    .bind(order.user_id.as_str())
    .bind(order.created_at)
    .bind(order.status.as_str())
    .bind(order.is_unsettled())
    .bind(version(order.version))
    .bind(order.stock_released)
    .bind(to_json(order)?)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    index_payment(tx, order).await?;
    Ok(true)
}

/// Records which order a payment plugin's charge belongs to.
async fn index_payment(tx: &mut PgConnection, order: &OrderRecord) -> Result<(), StoreError> {
    if let Some(p) = &order.payment {
        sqlx::query(
            "INSERT INTO order_payments (plugin, provider_id, order_id) VALUES ($1, $2, $3)
             ON CONFLICT (plugin, provider_id) DO UPDATE SET order_id = EXCLUDED.order_id",
        )
        .bind(&p.provider)
        .bind(&p.provider_id)
        .bind(order.id.as_str())
        .execute(tx)
        .await?;
    }
    Ok(())
}

impl PgOrders {
    async fn try_reserve(&self, order: &OrderRecord) -> Result<(), ReserveError> {
        let mut tx = self.pg.pool().begin().await.map_err(StoreError::from)?;
        if !insert_order(&mut tx, order).await? {
            return Err(ReserveError::Exists(order.id.clone()));
        }
        for (sku, n) in units(order) {
            let left: Option<i64> = sqlx::query_scalar(
                "UPDATE stock SET units = units - $2 WHERE sku = $1 AND units >= $2 RETURNING units",
            )
            .bind(sku)
            .bind(n)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if left.is_none() {
                let available: Option<i64> = sqlx::query_scalar("SELECT units FROM stock WHERE sku = $1")
                    .bind(sku)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                return Err(ReserveError::OutOfStock {
                    sku: sku.to_string(),
                    available: available.map_or(0, |n| u64::try_from(n).unwrap_or(0)),
                });
            }
            sqlx::query(
                "INSERT INTO user_purchases (user_id, sku, units) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, sku) DO UPDATE SET units = user_purchases.units + EXCLUDED.units",
            )
            .bind(order.user_id.as_str())
            .bind(sku)
            .bind(n)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// One attempt at a save; the stored `stock_released` after it.
    async fn try_save(&self, order: &OrderRecord, release: bool) -> Result<bool, StoreError> {
        let mut tx = self.pg.pool().begin().await?;
        let Some((stored_version, stored_released)) = lock_order(&mut tx, &order.id).await? else {
            return Err(StoreError::Conflict(format!("order {}", order.id)));
        };
        if stored_version != version(order.version) {
            return Err(StoreError::Conflict(format!("order {}", order.id)));
        }
        let give_back = release && !stored_released;
        if give_back {
            return_units(&mut tx, order).await?;
        }
        let mut next = order.clone();
        next.version = order.version + 1;
        next.stock_released = stored_released || give_back;
        sqlx::query(
            "UPDATE orders SET status = $2, unsettled = $3, version = $4, stock_released = $5, record = $6
              WHERE id = $1",
        )
        .bind(order.id.as_str())
        .bind(next.status.as_str())
        .bind(next.is_unsettled())
        .bind(version(next.version))
        .bind(next.stock_released)
        .bind(to_json(&next)?)
        .execute(&mut *tx)
        .await?;
        index_payment(&mut tx, order).await?;
        tx.commit().await?;
        Ok(next.stock_released)
    }

    async fn try_discard(&self, order: &OrderRecord) -> Result<(), StoreError> {
        let mut tx = self.pg.pool().begin().await?;
        if let Some((stored_version, stored_released)) = lock_order(&mut tx, &order.id).await? {
            if stored_version != version(order.version) {
                return Err(StoreError::Conflict(format!("order {}", order.id)));
            }
            sqlx::query("DELETE FROM orders WHERE id = $1")
                .bind(order.id.as_str())
                .execute(&mut *tx)
                .await?;
            if !stored_released {
                return_units(&mut tx, order).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn page(
        &self,
        user: Option<&str>,
        status: Option<OrderStatus>,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<(i64, String)>), StoreError> {
        let (at, id) = before.unwrap_or((i64::MAX, ""));
        // With no position, everything; `(created_at, id) < (MAX, "")` would exclude
        // nothing real either, but say it plainly.
        let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
            "SELECT created_at, id, record FROM orders
              WHERE ($1::TEXT IS NULL OR user_id = $1)
                AND ($2::TEXT IS NULL OR status = $2)
                AND ($3 OR (created_at, id) < ($4, $5))
              ORDER BY created_at DESC, id DESC LIMIT $6",
        )
        .bind(user)
        .bind(status.map(OrderStatus::as_str))
        .bind(before.is_none())
        .bind(at)
        .bind(id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1)
        .fetch_all(self.pg.pool())
        .await?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(limit.min(rows.len()));
        let mut last = None;
        for (created_at, id, record) in rows.into_iter().take(limit) {
            out.push(from_json(record)?);
            last = Some((created_at, id));
        }
        Ok((out, if more { last } else { None }))
    }
}

#[async_trait::async_trait]
impl OrderStore for PgOrders {
    async fn purchased(&self, user_id: &UserId, skus: &[&str]) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT sku, units FROM user_purchases WHERE user_id = $1 AND sku = ANY($2)")
                .bind(user_id.as_str())
                .bind(skus)
                .fetch_all(self.pg.pool())
                .await?;
        let held: BTreeMap<String, i64> = rows.into_iter().collect();
        Ok(skus
            .iter()
            .map(|sku| {
                let n = held.get(*sku).copied().unwrap_or(0);
                (sku.to_string(), u64::try_from(n).unwrap_or(0))
            })
            .collect())
    }

    async fn reserve(&self, order: &OrderRecord) -> Result<(), ReserveError> {
        self.pg.retrying("reserve", || self.try_reserve(order)).await
    }

    async fn save(&self, order: &mut OrderRecord, release: bool) -> Result<(), StoreError> {
        let snapshot = order.clone();
        let released = self
            .pg
            .retrying("order save", || self.try_save(&snapshot, release))
            .await?;
        order.version += 1;
        order.stock_released = released;
        Ok(())
    }

    async fn discard(&self, order: &OrderRecord) -> Result<(), StoreError> {
        self.pg
            .retrying("order discard", || self.try_discard(order))
            .await
    }

    async fn get(&self, id: &OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let record: Option<serde_json::Value> = sqlx::query_scalar("SELECT record FROM orders WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pg.pool())
            .await?;
        record.map(from_json).transpose()
    }

    async fn by_payment(&self, plugin: &str, provider_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let record: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT o.record FROM order_payments p JOIN orders o ON o.id = p.order_id
              WHERE p.plugin = $1 AND p.provider_id = $2",
        )
        .bind(plugin)
        .bind(provider_id)
        .fetch_optional(self.pg.pool())
        .await?;
        let order: Option<OrderRecord> = record.map(from_json).transpose()?;
        // The order's recorded payment decides, as in sled.
        Ok(order.filter(|o| o.paid_through(plugin, provider_id)))
    }

    async fn unsettled_where(
        &self,
        created_before: i64,
        limit: usize,
        wanted: OrderFilter<'_>,
    ) -> Result<Vec<OrderId>, StoreError> {
        const BATCH: i64 = 500;
        let mut out = Vec::new();
        let mut after: (i64, String) = (i64::MIN, String::new());
        while out.len() < limit {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT created_at, id FROM orders
                  WHERE unsettled AND created_at <= $1 AND (created_at, id) > ($2, $3)
                  ORDER BY created_at, id LIMIT $4",
            )
            .bind(created_before)
            .bind(after.0)
            .bind(&after.1)
            .bind(BATCH)
            .fetch_all(self.pg.pool())
            .await?;
            let exhausted = (rows.len() as i64) < BATCH;
            for (created_at, id) in rows {
                if out.len() >= limit {
                    break;
                }
                let order_id = stored_id(&id)?;
                if wanted(&order_id) {
                    out.push(order_id);
                }
                after = (created_at, id);
            }
            if exhausted {
                break;
            }
        }
        Ok(out)
    }

    async fn page_for_user(
        &self,
        user_id: &UserId,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<Vec<u8>>), StoreError> {
        // Positions are `{user_id}/{created_at:020}/{id}`: one of another user's never
        // reads this user's orders (nor theirs).
        let prefix = format!("{user_id}/");
        let before = match before {
            None => None,
            Some(b) => {
                let b = std::str::from_utf8(b).ok();
                match b.and_then(|b| b.strip_prefix(&prefix)).and_then(parse_position) {
                    Some(p) => Some(p),
                    None => return Ok((Vec::new(), None)),
                }
            }
        };
        let (orders, next) = self.page(Some(user_id.as_str()), None, before, limit).await?;
        Ok((
            orders,
            next.map(|(at, id)| format!("{prefix}{}", position(at, &id)).into_bytes()),
        ))
    }

    async fn page_all(
        &self,
        status: Option<OrderStatus>,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<Vec<u8>>), StoreError> {
        let before = match before {
            None => None,
            Some(b) => match std::str::from_utf8(b).ok().and_then(parse_position) {
                Some(p) => Some(p),
                None => return Ok((Vec::new(), None)),
            },
        };
        let (orders, next) = self.page(None, status, before, limit).await?;
        Ok((orders, next.map(|(at, id)| position(at, &id).into_bytes())))
    }

    async fn stock(&self, sku: &str) -> Result<u64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT units FROM stock WHERE sku = $1")
            .bind(sku)
            .fetch_optional(self.pg.pool())
            .await?;
        Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }
}
